// Package nsfile creates Linux namespaces that outlive the thread that made
// them, by bind-mounting /proc/<pid>/task/<tid>/ns/<kind> onto a file, the
// way `ip netns add` does. A pod's network, UTS and IPC namespaces live in
// such files so that its containers can join them by path and restart
// independently, with no pause process holding them.
//
// Concurrency: Create and Remove may be called from any goroutine, for
// different paths at once. Create runs the unshare on a fresh OS thread that
// is thrown away afterwards, so the caller's thread never changes namespace.
package nsfile
