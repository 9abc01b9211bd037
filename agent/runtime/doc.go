// Package runtime owns the node's containers: the Runtime interface the agent
// drives, and its implementation on containerd (Containerd), plus a
// supervisor for a containerd child process (Process) for nodes without a
// containerd of their own.
//
// A pod on this node is a sandbox and its containers. The sandbox is three
// namespaces bound to files (network from agent/network through CNI, UTS with
// the pod's hostname, IPC), the pod's /etc/hosts, /etc/resolv.conf and
// /etc/hostname, and its volume directories, all under the pod's directory
// <DataDir>/pods/<uid>. There is no pause container: each container joins
// the namespace files by path, so containers restart independently. Every
// containerd container carries labels (pod uid, name, app, container name,
// attempt), and the sandbox is described by sandbox.json, so ListPods
// rebuilds the whole picture after an agent restart without touching a
// running task.
//
// Container output goes through two FIFOs per task that the shim holds
// open; the runtime reads them with containerd's cio and writes the log
// files (one record per line, rotated by size), so no process runs per
// container besides the shim. Close stops reading and keeps the FIFOs; the
// next New reopens them, and what the containers wrote meanwhile waited in
// the pipes (logfifo.go).
//
// Concurrency: a Containerd is safe for concurrent use; each container's
// output is copied by two goroutines of cio's, its log file shared under a
// mutex. Calls for different pods may run at once; calls for one pod must
// be serialised by the caller (the agent's per-pod worker), as must calls
// for one container.
package runtime
