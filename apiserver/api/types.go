package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// ResourceList is an amount of each resource the scheduler counts.
type ResourceList struct {
	// CPU in cores: "250m" is a quarter of a core.
	CPU Quantity `json:"cpu,omitzero"`
	// Memory in bytes: "64Mi".
	Memory Quantity `json:"memory,omitzero"`
	// Pods is a count of pods (node capacity only).
	Pods int64 `json:"pods,omitempty"`
}

// Resources are what a container asks for (requests, used to schedule) and
// may not exceed (limits, enforced through cgroups).
type Resources struct {
	Requests ResourceList `json:"requests,omitzero"`
	Limits   ResourceList `json:"limits,omitzero"`
}

// IntOrString holds a number or a name: a port given as 8080 or "http", a
// rollout bound given as 1 or "25%".
type IntOrString struct {
	IntVal   int32
	StrVal   string
	IsString bool
}

// FromInt returns an IntOrString holding a number.
func FromInt(i int32) IntOrString { return IntOrString{IntVal: i} }

// FromString returns an IntOrString holding a name.
func FromString(s string) IntOrString { return IntOrString{StrVal: s, IsString: true} }

// IsZero reports whether v holds neither a number nor a name.
func (v IntOrString) IsZero() bool { return !v.IsString && v.IntVal == 0 }

func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString, v.IntVal = true, 0
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString, v.StrVal = false, ""
	return json.Unmarshal(b, &v.IntVal)
}

// ScaledValue resolves a count or a percentage of total; percentages round
// up when roundUp is set, else down (Kubernetes rounds surge up and
// unavailability down).
func (v IntOrString) ScaledValue(total int, roundUp bool) (int, error) {
	if !v.IsString {
		return int(v.IntVal), nil
	}
	s := v.StrVal
	if len(s) < 2 || s[len(s)-1] != '%' {
		return 0, fmt.Errorf("%q is neither a number nor a percentage", s)
	}
	p, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || p < 0 {
		return 0, fmt.Errorf("%q is not a percentage", s)
	}
	if roundUp {
		return (p*total + 99) / 100, nil
	}
	return p * total / 100, nil
}

// ---- Node and Lease ----

// Node is a machine that runs pods; its agent creates it and keeps its
// status current.
type Node struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   NodeStatus `json:"status,omitzero"`
}

// NodeSpec is what the cluster asks of a node.
type NodeSpec struct {
	// PodCIDR is the range this node's pods take addresses from; the
	// server allocates it.
	PodCIDR string `json:"podCIDR,omitempty"`
	// Unschedulable (cordoned) keeps new pods away.
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// NodeStatus is what the agent observes about its node.
type NodeStatus struct {
	Capacity    ResourceList    `json:"capacity,omitzero"`
	Allocatable ResourceList    `json:"allocatable,omitzero"`
	Addresses   []NodeAddress   `json:"addresses,omitempty"`
	Conditions  []Condition     `json:"conditions,omitempty"`
	Info        NodeInfo        `json:"info,omitzero"`
	DaemonPorts NodeDaemonPorts `json:"daemonPorts,omitzero"`
	// AgentCert was the hash of the agent's self-signed serving key, which
	// the API server pinned. Deprecated and ignored: the server now checks
	// that the agent's certificate was issued by the cluster CA to this
	// node's name, since a node must not choose whom the server trusts.
	AgentCert string `json:"agentCert,omitempty"`
}

// NodeAddress is one address of a node.
type NodeAddress struct {
	Type    string `json:"type"` // InternalIP, Hostname
	Address string `json:"address"`
}

// NodeInfo describes the software on a node.
type NodeInfo struct {
	AgentVersion   string `json:"agentVersion,omitempty"`
	OS             string `json:"os,omitempty"`
	Arch           string `json:"arch,omitempty"`
	KernelVersion  string `json:"kernelVersion,omitempty"`
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
}

// NodeDaemonPorts are the ports the agent listens on.
type NodeDaemonPorts struct {
	Agent int32 `json:"agent,omitempty"`
}

// Node condition types.
const (
	NodeReady = "Ready"
)

// Lease is a small object renewed often: agents heartbeat by renewing the
// Lease named after their node, a cheap write that leaves the Node alone.
type Lease struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     LeaseSpec  `json:"spec"`
	Status   struct{}   `json:"status,omitzero"`
}

// LeaseSpec says who holds a lease and until when.
type LeaseSpec struct {
	Holder          string    `json:"holder"`
	RenewTime       time.Time `json:"renewTime"`
	DurationSeconds int32     `json:"durationSeconds,omitempty"`
}

// ---- App ----

// App is one application from a git repository: its workloads and services.
// Git sync writes it; the app controller turns it into Workload and Service
// objects.
type App struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     AppSpec    `json:"spec"`
	Status   AppStatus  `json:"status,omitzero"`
}

// AppSpec is the desired state of an app, as its descriptor says.
type AppSpec struct {
	Workloads []AppWorkload `json:"workloads,omitempty"`
	Services  []AppService  `json:"services,omitempty"`
}

// AppWorkload is one pod group of an app.
type AppWorkload struct {
	Name string       `json:"name"`
	Spec WorkloadSpec `json:"spec"`
}

// AppService is one service of an app.
type AppService struct {
	Name string      `json:"name"`
	Spec ServiceSpec `json:"spec"`
}

// App health values.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
	HealthUnknown     = "Unknown"
)

// Sync results.
const (
	SyncApplied  = "Applied"
	SyncRejected = "Rejected"
	SyncFailed   = "Failed"
	// SyncDeleted records an app pruned because its commit no longer
	// declares it.
	SyncDeleted = "Deleted"
	// SyncHeld records a commit held, not applied, until an admin
	// confirms it (a mass deletion).
	SyncHeld = "Held"
)

// AppStatus is the observed state of an app.
type AppStatus struct {
	// SyncedCommit is the commit the spec came from.
	SyncedCommit string `json:"syncedCommit,omitempty"`
	// AttemptedCommit is the commit the last sync attempt looked at; it
	// differs from SyncedCommit while a newer commit is rejected.
	AttemptedCommit string `json:"attemptedCommit,omitempty"`
	// LastSyncResult is Applied, Rejected, Failed or Held.
	LastSyncResult  string    `json:"lastSyncResult,omitempty"`
	LastSyncTime    time.Time `json:"lastSyncTime,omitzero"`
	LastSyncMessage string    `json:"lastSyncMessage,omitempty"`
	// Health is Healthy, Progressing, Degraded or Unknown.
	Health        string      `json:"health,omitempty"`
	HealthMessage string      `json:"healthMessage,omitempty"`
	Conditions    []Condition `json:"conditions,omitempty"`
}

// ---- Workload ----

// Workload keeps a number of identical pods running and rolls them to a new
// template.
type Workload struct {
	TypeMeta
	Metadata ObjectMeta     `json:"metadata"`
	Spec     WorkloadSpec   `json:"spec"`
	Status   WorkloadStatus `json:"status,omitzero"`
}

// WorkloadSpec is a pod group: how many, of what, rolled how.
type WorkloadSpec struct {
	Replicas int32           `json:"replicas"`
	Template PodTemplate     `json:"template"`
	Strategy RolloutStrategy `json:"strategy,omitzero"`
}

// RolloutStrategy bounds a rolling update.
type RolloutStrategy struct {
	// MaxSurge is how many pods above replicas may exist during a rollout
	// (a count or a percentage; default 25%).
	MaxSurge IntOrString `json:"maxSurge,omitzero"`
	// MaxUnavailable is how many pods below replicas may be unready during a
	// rollout (default 0).
	MaxUnavailable IntOrString `json:"maxUnavailable,omitzero"`
	// ProgressDeadlineSeconds stops a rollout that makes no progress for
	// this long (default 600).
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`
}

// WorkloadStatus is the observed state of a workload.
type WorkloadStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	TemplateHash       string      `json:"templateHash,omitempty"`
	Replicas           int32       `json:"replicas"`
	UpdatedReplicas    int32       `json:"updatedReplicas"`
	ReadyReplicas      int32       `json:"readyReplicas"`
	AvailableReplicas  int32       `json:"availableReplicas"`
	Conditions         []Condition `json:"conditions,omitempty"`
}

// Workload condition types.
const (
	WorkloadProgressing = "Progressing"
	WorkloadAvailable   = "Available"
	WorkloadDegraded    = "Degraded"
)

// ---- Pod ----

// PodTemplate is what each pod of a workload runs.
type PodTemplate struct {
	Labels     map[string]string `json:"labels,omitempty"`
	Containers []Container       `json:"containers"`
	Volumes    []Volume          `json:"volumes,omitempty"`
	// RestartPolicy is Always (default), OnFailure or Never.
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	NodeSelector  map[string]string `json:"nodeSelector,omitempty"`
	// TerminationGracePeriodSeconds is how long a container gets between
	// SIGTERM and SIGKILL (default 30).
	TerminationGracePeriodSeconds int64 `json:"terminationGracePeriodSeconds,omitempty"`
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
// the pod starts and removed with it.
type Volume struct {
	Name string `json:"name"`
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

// ---- Service and Endpoints ----

// Service gives a set of pods a stable virtual IP and DNS name.
type Service struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status,omitzero"`
}

// ServiceSpec selects pods and names the ports to expose.
type ServiceSpec struct {
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports"`
	// External exposes the service on every node through a node port.
	External bool `json:"external,omitempty"`
	// Headless services get no VIP; DNS answers with the pod IPs.
	Headless bool `json:"headless,omitempty"`
	// VIP is the virtual IP, allocated by the server from the service CIDR
	// and kept for the service's life.
	VIP string `json:"vip,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
	// TargetPort is the pods' port, by number or by container port name;
	// default: the same as Port.
	TargetPort IntOrString `json:"targetPort,omitzero"`
	// NodePort is allocated by the server for external services.
	NodePort int32 `json:"nodePort,omitempty"`
}

// ServiceStatus is empty for now; the VIP and node ports live in the spec,
// as in Kubernetes, because clients address the service by them.
type ServiceStatus struct{}

// Endpoints lists the pods behind a service, kept by the endpoints
// controller.
type Endpoints struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     EndpointsSpec `json:"spec"`
	Status   struct{}      `json:"status,omitzero"`
}

// EndpointsSpec is every pod that matches the service's selector.
type EndpointsSpec struct {
	Addresses []EndpointAddress `json:"addresses,omitempty"`
}

// EndpointAddress is one pod behind a service.
type EndpointAddress struct {
	IP    string         `json:"ip"`
	Node  string         `json:"node,omitempty"`
	Pod   string         `json:"pod"`
	Ready bool           `json:"ready"`
	Ports []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort maps a service port name to the pod's port.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// ---- Revision and Event ----

// Revision records one sync attempt of one app: the commit and the result.
type Revision struct {
	TypeMeta
	Metadata ObjectMeta   `json:"metadata"`
	Spec     RevisionSpec `json:"spec"`
	Status   struct{}     `json:"status,omitzero"`
}

// RevisionSpec is the record of a sync attempt.
type RevisionSpec struct {
	Repo           string        `json:"repo"`
	Commit         string        `json:"commit"`
	Author         string        `json:"author,omitempty"`
	Message        string        `json:"message,omitempty"`
	CommittedAt    time.Time     `json:"committedAt,omitzero"`
	SyncedAt       time.Time     `json:"syncedAt,omitzero"`
	Result         string        `json:"result"`
	Errors         []SourceError `json:"errors,omitempty"`
	HistoryRewrite bool          `json:"historyRewrite,omitempty"`
}

// SourceError is a problem in a file of the repository.
type SourceError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (e SourceError) String() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			s += ":" + strconv.Itoa(e.Column)
		}
	}
	if e.Path != "" {
		if s != "" {
			s += ": "
		}
		s += e.Path
	}
	if s != "" {
		s += ": "
	}
	return s + e.Message
}

// Event says what happened to an object and why.
type Event struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     EventSpec  `json:"spec"`
	Status   struct{}   `json:"status,omitzero"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// EventSpec is one deduplicated happening: the same reason on the same
// object counts up instead of adding events.
type EventSpec struct {
	Object    ObjectRef `json:"object"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Reporter  string    `json:"reporter,omitempty"`
	Count     int32     `json:"count"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// ObjectRef points at an object.
type ObjectRef struct {
	Kind Kind   `json:"kind"`
	App  string `json:"app,omitempty"`
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
}

// Meta implementations.

func (o *Node) Meta() *ObjectMeta      { return &o.Metadata }
func (o *Lease) Meta() *ObjectMeta     { return &o.Metadata }
func (o *App) Meta() *ObjectMeta       { return &o.Metadata }
func (o *Workload) Meta() *ObjectMeta  { return &o.Metadata }
func (o *Pod) Meta() *ObjectMeta       { return &o.Metadata }
func (o *Service) Meta() *ObjectMeta   { return &o.Metadata }
func (o *Endpoints) Meta() *ObjectMeta { return &o.Metadata }
func (o *Revision) Meta() *ObjectMeta  { return &o.Metadata }
func (o *Event) Meta() *ObjectMeta     { return &o.Metadata }
