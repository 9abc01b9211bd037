// Package demo seeds the data directory of `capstan up` with the newcomer's
// demo: the example deployment repository as a git repository of its own
// (Repo), and the example images pushed from tarballs into the embedded
// registry (PushImages). Both are idempotent, so a restart of `capstan up`
// keeps the user's commits and pushes nothing the registry already holds.
//
// Functions here do file, process (git) and network I/O and hold no state;
// they are safe to call from any goroutine, one call per directory.
package demo
