package api

import (
	"time"
)

// PodTemplate is what each pod of a workload runs.
type PodTemplate struct {
	Labels     map[string]string `json:"labels,omitempty"`
	Containers []Container       `json:"containers"`
	Volumes    []Volume          `json:"volumes,omitempty"`
	// RestartPolicy is Always (default), OnFailure or Never.
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	NodeSelector  map[string]string `json:"nodeSelector,omitempty"`
	// TerminationGracePeriodSeconds is how long a container gets between
	// SIGTERM and SIGKILL: nil is the default, 30; 0 kills at once.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
	// Files are delivered read-only into every container (files.go).
	Files []PodFile `json:"files,omitempty"`
}

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// Pull policies.
const (
	PullIfNotPresent = "IfNotPresent"
	PullAlways       = "Always"
)

// Container is one process tree in a pod.
type Container struct {
	Name            string          `json:"name"`
	Image           string          `json:"image"`
	ImagePullPolicy string          `json:"imagePullPolicy,omitempty"`
	Command         []string        `json:"command,omitempty"`
	Args            []string        `json:"args,omitempty"`
	Env             []EnvVar        `json:"env,omitempty"`
	WorkingDir      string          `json:"workingDir,omitempty"`
	Ports           []ContainerPort `json:"ports,omitempty"`
	Resources       Resources       `json:"resources,omitzero"`
	Readiness       *Probe          `json:"readiness,omitempty"`
	Liveness        *Probe          `json:"liveness,omitempty"`
	VolumeMounts    []VolumeMount   `json:"volumeMounts,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Secret, when set, gives the value from a key of a secret (Value
	// is then empty).
	Secret *SecretKeyRef `json:"secret,omitempty"`
}

// Protocols.
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// ContainerPort is a named port a container listens on.
type ContainerPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
	// HostPort, when set, is published on the node's address.
	HostPort int32 `json:"hostPort,omitempty"`
}

// Volume is a directory shared by the containers of a pod, made empty when
// the pod starts and removed with it; or, when Persistent, the replica's
// persistent volume (volume.go), kept across pods.
type Volume struct {
	Name       string            `json:"name"`
	Persistent *PersistentSource `json:"persistent,omitempty"`
}

// VolumeMount puts a pod volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Probe checks a container: exactly one of HTTP, TCP and Exec.
type Probe struct {
	HTTP                *HTTPProbe `json:"http,omitempty"`
	TCP                 *TCPProbe  `json:"tcp,omitempty"`
	Exec                *ExecProbe `json:"exec,omitempty"`
	InitialDelaySeconds int32      `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32      `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int32      `json:"timeoutSeconds,omitempty"`
	FailureThreshold    int32      `json:"failureThreshold,omitempty"`
	SuccessThreshold    int32      `json:"successThreshold,omitempty"`
}

// HTTPProbe succeeds on a 2xx or 3xx answer to GET path.
type HTTPProbe struct {
	Path string      `json:"path,omitempty"`
	Port IntOrString `json:"port"`
}

// TCPProbe succeeds when a connection opens.
type TCPProbe struct {
	Port IntOrString `json:"port"`
}

// ExecProbe succeeds when the command exits 0.
type ExecProbe struct {
	Command []string `json:"command"`
}

// Pod is one replica: containers that share a node, a network namespace and
// volumes.
type Pod struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
	Status   PodStatus  `json:"status,omitzero"`
}

// PodSpec is the pod's template and its placement.
type PodSpec struct {
	PodTemplate
	// NodeName is set by the scheduler when it binds the pod.
	NodeName string `json:"nodeName,omitempty"`
	// RequiredNode, when set, is the only node the pod may be bound to:
	// the everyNode controller pins each of its pods to its node this way,
	// as the DaemonSet controller does with node affinity. The scheduler
	// tries that node alone, with every filter but the cordon (such a pod
	// tolerates it, as DaemonSet pods do), so a pod that cannot have its
	// host port, CPU or memory there stays Pending and says why.
	RequiredNode string `json:"requiredNode,omitempty"`
}

// TargetNode is the node the pod runs on, or, while it is pending, the
// node it is pinned to (spec.requiredNode); "" for neither.
func (s *PodSpec) TargetNode() string {
	if s.NodeName != "" {
		return s.NodeName
	}
	return s.RequiredNode
}

// Pod phases.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"
	PodUnknown   = "Unknown"
)

// Pod condition types.
const (
	PodScheduled = "Scheduled"
	PodReady     = "Ready"
)

// PodStatus is what the scheduler and the agent observe about a pod.
type PodStatus struct {
	Phase      string            `json:"phase,omitempty"`
	Conditions []Condition       `json:"conditions,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Message    string            `json:"message,omitempty"`
	PodIP      string            `json:"podIP,omitempty"`
	HostIP     string            `json:"hostIP,omitempty"`
	StartedAt  time.Time         `json:"startedAt,omitzero"`
	Containers []ContainerStatus `json:"containers,omitempty"`
}

// ContainerStatus is the observed state of one container.
type ContainerStatus struct {
	Name            string           `json:"name"`
	State           ContainerState   `json:"state"`
	LastTermination *TerminatedState `json:"lastTermination,omitempty"`
	Ready           bool             `json:"ready"`
	RestartCount    int32            `json:"restartCount"`
	Image           string           `json:"image,omitempty"`
	ImageDigest     string           `json:"imageDigest,omitempty"`
	ContainerID     string           `json:"containerID,omitempty"`
}

// ContainerState is exactly one of Waiting, Running and Terminated.
type ContainerState struct {
	Waiting    *WaitingState    `json:"waiting,omitempty"`
	Running    *RunningState    `json:"running,omitempty"`
	Terminated *TerminatedState `json:"terminated,omitempty"`
}

// WaitingState says why a container is not running: ContainerCreating,
// ErrImagePull, ImagePullBackOff, CrashLoopBackOff, ...
type WaitingState struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// RunningState says since when a container runs.
type RunningState struct {
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// TerminatedState says how a container ended: Completed, Error, OOMKilled.
type TerminatedState struct {
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}
