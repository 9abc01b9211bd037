// Package nsfile creates Linux namespaces that outlive the thread that made
// them, by bind-mounting /proc/thread-self/ns/<kind> onto a file, the way
// `ip netns add` does. A pod's network, UTS and IPC namespaces live in such
// files so that its containers can join them by path and restart
// independently, with no pause process holding them.
//
// Threads: Create unshares on an OS thread locked to a goroutine of its
// own, never the process's main thread, and moves that thread back into its
// own namespace (kept open from before the unshare) once the new one is
// bound; only then is the thread unlocked and reused. A thread that cannot
// go back stays locked and ends with its goroutine. So no thread of the
// process stays in a namespace it made: the caller's thread never changes
// namespace, and /proc/PID/ns/<kind> (the main thread's) keeps naming the
// process's own.
//
// Concurrency: Create and Remove may be called from any goroutine, for
// different paths at once.
package nsfile
