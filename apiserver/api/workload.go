package api

import "time"

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
	// Ordered gives replicas stable names (NAME-0, NAME-1, ...), each its
	// own persistent volumes, started and updated one at a time (volume.go).
	Ordered bool `json:"ordered,omitempty"`
	// Job, when set, makes the workload a job or a cron job: its pods run
	// to completion in runs (Jobs); Replicas is unused.
	Job *JobPolicy `json:"job,omitempty"`
	// EveryNode runs one pod on every node that matches the template's
	// node selector, instead of Replicas pods.
	EveryNode bool `json:"everyNode,omitempty"`
	// DependsOn names pod groups of the same app this one waits for: its
	// pods are made or updated only once those are Available.
	DependsOn []string `json:"dependsOn,omitempty"`
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
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	TemplateHash       string `json:"templateHash,omitempty"`
	Replicas           int32  `json:"replicas"`
	// DesiredReplicas is, for an everyNode group, how many nodes want a
	// pod (Kubernetes' desiredNumberScheduled): Replicas counts the pods
	// there are, which is fewer while a node's pod is being replaced or
	// cannot be made.
	DesiredReplicas   int32       `json:"desiredReplicas,omitempty"`
	UpdatedReplicas   int32       `json:"updatedReplicas"`
	ReadyReplicas     int32       `json:"readyReplicas"`
	AvailableReplicas int32       `json:"availableReplicas"`
	Conditions        []Condition `json:"conditions,omitempty"`
	// Schedule is the cron job's schedule (with its time zone, as
	// "CRON_TZ=ZONE EXPR") that LastScheduleTime counts for: a schedule
	// in the spec that differs is new, and its runs count from when it
	// was first seen.
	Schedule string `json:"schedule,omitempty"`
	// LastScheduleTime is the schedule time of a cron job's latest run
	// or, before the first run of a schedule added to an existing group,
	// when that schedule was first seen.
	LastScheduleTime time.Time `json:"lastScheduleTime,omitzero"`
}

// Workload condition types.
const (
	WorkloadProgressing = "Progressing"
	WorkloadAvailable   = "Available"
	WorkloadDegraded    = "Degraded"
)
