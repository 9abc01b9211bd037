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
// Container output goes to a logging binary that the containerd shim starts
// (the agent's own executable, invoked as `<exe> capstan-log-driver ...`, see
// RunLogDriver). It is a child of the shim, not of the agent, so logs keep
// flowing while the agent restarts; it rotates files by size.
//
// Concurrency: a Containerd is safe for concurrent use. Calls for different
// pods may run at once; calls for one pod must be serialised by the caller
// (the agent's per-pod worker), as must calls for one container.
package runtime
