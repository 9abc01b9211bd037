package runtime

import (
	"context"
	"io"
	"net/netip"
	"time"
)

// Runtime is what the node agent needs from a container runtime. It is
// owned by the agent and kept small; Containerd implements it.
//
// Identity: a pod is named by its UID, a container by the ID StartContainer
// returns. Everything the agent needs to rebuild its view after a restart is
// recorded in containerd labels and read back by ListPods.
type Runtime interface {
	// EnsureImage makes ref present locally according to policy and returns
	// its digest. Failures wrap ErrImageNotFound, ErrImageUnauthorized or
	// ErrRegistryUnavailable when they can be classified.
	EnsureImage(ctx context.Context, ref string, policy PullPolicy) (ImageInfo, error)
	// CreatePodSandbox makes the pod's namespaces (network through CNI, UTS
	// with the hostname, IPC), its /etc/hosts and /etc/resolv.conf and its
	// volume directories. It is idempotent for a pod that already has one.
	CreatePodSandbox(ctx context.Context, pod PodSpec) (Sandbox, error)
	// StartContainer creates and starts one container inside the sandbox.
	// Its errors (and CreatePodSandbox's) name the pod APP/NAME and the
	// container, as users know them.
	StartContainer(ctx context.Context, sb Sandbox, c ContainerSpec) (ContainerStatus, error)
	// StopContainer sends SIGTERM, waits up to grace, then SIGKILL, and waits
	// for the exit. The exited container keeps its status until removed.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// ContainerStatus reports one container's state, exit code and reason.
	ContainerStatus(ctx context.Context, id string) (ContainerStatus, error)
	// RemoveContainer deletes an exited (or killed) container, its task,
	// snapshot and log files. Use it for old attempts the agent no longer
	// needs to report.
	RemoveContainer(ctx context.Context, id string) error
	// RemovePod kills and removes every container of the pod, detaches and
	// removes its namespaces and deletes its directory. Idempotent. Its
	// errors (and PodContainers') leave the pod for the caller to name, as
	// users know it: the caller has its APP/NAME, the runtime only its UID.
	RemovePod(ctx context.Context, podUID string) error
	// ListPods rebuilds the state of every pod from containerd labels and the
	// pod directories, without changing anything.
	ListPods(ctx context.Context) ([]PodState, error)
	// PodContainers reports every container of one pod, ordered by name
	// and attempt (the newest attempt of a name last).
	PodContainers(ctx context.Context, podUID string) ([]ContainerStatus, error)
	// Exec runs cmd inside a running container and returns its exit code;
	// a program that cannot run gives 127 (not found) or 126 (not
	// executable) with an error wrapping ErrCommand, as shells do.
	Exec(ctx context.Context, id string, cmd []string, stdio ExecIO) (int, error)
	// Exits reports, by container ID, every container whose main process
	// exits, until ctx ends or the connection to containerd breaks; then
	// the channel is closed and exits may have been missed: subscribe
	// again and look at every container.
	Exits(ctx context.Context) <-chan string
}

// PullPolicy says when EnsureImage contacts the registry.
type PullPolicy string

// Pull policies.
const (
	// PullIfNotPresent pulls only when the image is not stored locally.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullAlways resolves the reference every time and pulls what changed.
	PullAlways PullPolicy = "Always"
)

// ImageInfo describes a local image.
type ImageInfo struct {
	Ref    string // the reference as given
	Name   string // the normalised name containerd stores
	Digest string // manifest digest, "sha256:..."
	Pulled bool   // whether this call fetched it
}

// PodSpec is what the runtime needs to know about a pod.
type PodSpec struct {
	UID      string // unique, stable across agent restarts; required
	Name     string // pod name; also the hostname unless Hostname is set
	App      string // the pod's app (namespace)
	Hostname string
	// DNS is written to /etc/resolv.conf; an invalid Server address means
	// the host's resolv.conf is copied instead.
	DNS DNSConfig
	// Volumes are empty directories shared by the pod's containers and
	// removed with the pod.
	Volumes []string
	// Ports are host ports to publish (needs the network's PortMap option).
	Ports []PortMapping
	// Files are delivered read-only into every container (files.go).
	Files []PodFile
}

// ref names the pod as its users know it (podRef).
func (p PodSpec) ref() string { return podRef(p.App, p.Name, p.UID) }

// Ref names the sandbox's pod as its users know it, APP/NAME; the UID
// when the name is not known (a stale pod found without its sandbox).
func (sb Sandbox) Ref() string { return podRef(sb.App, sb.PodName, sb.PodUID) }

// podRef is how errors and logs name a pod: APP/NAME, as the CLI and the
// API do; a user never sees the UID, which goes in logs as "uid".
func podRef(app, name, uid string) string {
	switch {
	case name == "":
		return uid
	case app == "":
		return name
	}
	return app + "/" + name
}

// DNSConfig points a pod at the cluster DNS.
type DNSConfig struct {
	Server netip.Addr
	Zone   string
}

// PortMapping publishes a container port on the node.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string
}

// Sandbox is a pod's set of namespaces and files on this node.
type Sandbox struct {
	PodUID    string
	PodName   string
	App       string
	Hostname  string
	IP        netip.Addr
	NetNSPath string
	UTSPath   string
	IPCPath   string
	// Dir holds the pod's hosts, resolv.conf, volumes and logs.
	Dir string
	// Files are mounted read-only into every container.
	Files []SandboxFile `json:",omitempty"`
}

// ContainerSpec describes one container to start.
type ContainerSpec struct {
	Name  string // unique within the pod; required
	Image string // reference, made present with EnsureImage first
	// Attempt counts restarts of this container, from 0; together with Name
	// it makes the container ID unique.
	Attempt int
	Command []string // replaces the image entrypoint when set
	Args    []string // replaces the image cmd when set
	Env     []string // KEY=value, added to and overriding the image's
	WorkDir string   // replaces the image's working directory when set
	// Mounts bind pod volumes into the container.
	Mounts []VolumeMount
	// CPUMillis limits CPU time through the CFS quota (1000 = one core);
	// 0 means no limit.
	CPUMillis int64
	// MemoryBytes is the hard memory limit; exceeding it gets the container
	// OOM-killed. 0 means no limit.
	MemoryBytes int64
	// StopSignal overrides SIGTERM for StopContainer, e.g. "SIGINT".
	StopSignal string
}

// VolumeMount mounts a pod volume at Path in a container.
type VolumeMount struct {
	Volume string
	// Source, when set, is the host directory to mount (a persistent
	// volume) instead of the pod's scratch volume directory.
	Source   string
	Path     string
	ReadOnly bool
}

// State of a container.
type State string

// Container states.
const (
	StateCreated State = "Created"
	StateRunning State = "Running"
	StateExited  State = "Exited"
	StateUnknown State = "Unknown"
)

// Exit reasons, as Kubernetes spells them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// ContainerStatus is the observed state of one container.
type ContainerStatus struct {
	ID         string
	PodUID     string
	Name       string
	Attempt    int
	Image      string
	ImageID    string // digest the container runs
	State      State
	PID        uint32
	ExitCode   int
	Reason     string // for exited containers: Completed, Error or OOMKilled
	StartedAt  time.Time
	FinishedAt time.Time
	LogPath    string
}

// PodState is a pod as found on the node.
type PodState struct {
	Sandbox    Sandbox
	Containers []ContainerStatus
	// Stale is set when the sandbox cannot be used any more: its namespaces
	// are gone (the node rebooted) or it was never completed. Remove the pod
	// (which also frees its address) and create it again.
	Stale bool
}

// ExecIO carries an exec's standard streams; nil ones are discarded. When
// Stdin ends, the process sees end of file.
type ExecIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // not used with TTY: the terminal merges it into Stdout
	// TTY runs the process on a pseudo-terminal.
	TTY bool
	// Resize changes the terminal's size (columns, rows) while the process
	// runs; only with TTY.
	Resize <-chan [2]uint16
}
