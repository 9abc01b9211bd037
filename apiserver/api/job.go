package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Job is one run of a job pod group: pods that run to completion, a count
// of successes and failures, and the outcome. The cron controller makes a
// Job for each run of a job workload (one per template, one per schedule
// time, or one by hand with `capstan run`); the job controller runs it.
// A Job copies its workload's template when it is made, so a commit that
// changes the template never changes a run under way.
type Job struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     JobSpec    `json:"spec"`
	Status   JobStatus  `json:"status,omitzero"`
}

// JobSpec is what one run runs and when it has succeeded or failed.
type JobSpec struct {
	Template PodTemplate `json:"template"`
	// Completions is how many pods must succeed (default 1).
	Completions int32 `json:"completions,omitempty"`
	// Parallelism is how many pods run at once (default 1).
	Parallelism int32 `json:"parallelism,omitempty"`
	// BackoffLimit is how many failures (failed pods, and container
	// restarts under restart policy OnFailure) the run tolerates; one
	// more fails it (default 6, as in Kubernetes).
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// ActiveDeadlineSeconds fails a run still going this long after it
	// started (0: no deadline).
	ActiveDeadlineSeconds int64 `json:"activeDeadlineSeconds,omitempty"`
	// ScheduledAt is the schedule time a cron run was made for.
	ScheduledAt time.Time `json:"scheduledAt,omitzero"`
	// TemplateHash is the hash of the workload template the run copied.
	TemplateHash string `json:"templateHash,omitempty"`
}

// JobStatus is the observed state of a run.
type JobStatus struct {
	// Active counts the run's pods that run now. Succeeded and Failed
	// are running totals, as Kubernetes keeps them: a pod's outcome is
	// counted once, when the controller first sees it finished, and
	// deleting a finished pod afterwards changes neither. Failed counts
	// failed pods, container restarts of pods under restart policy
	// OnFailure, and Deleted.
	Active    int32 `json:"active"`
	Succeeded int32 `json:"succeeded"`
	Failed    int32 `json:"failed"`
	// Deleted counts the pods deleted while they ran (evicted from a
	// lost node, or deleted by hand), failures as in Kubernetes.
	Deleted int32 `json:"deleted,omitempty"`
	// Tracked is every pod of the run whose outcome is not counted yet
	// (Kubernetes' uncountedTerminatedPods and job-tracking finalizer
	// in one list): each is recorded before it is made (an intent, with
	// no UID yet), then with its UID once made, and leaves the list in
	// the status write that counts its outcome (succeeded, failed, or
	// deleted before it finished). A pod of the run not listed here has
	// been counted, so a restart of the controller counts nothing twice.
	Tracked []JobPod `json:"tracked,omitempty"`
	// Running is where servers before Tracked kept the pods they last
	// saw running. It is read as part of Tracked (TrackedPods) and
	// cleared at the next status write, so that their stored jobs still
	// load and count their pods.
	Running []JobPod `json:"running,omitempty"`
	// Made is how many pod names the run has used: its pods are named
	// <run>-0 to <run>-(Made-1), and the next is <run>-<Made>, so a
	// deleted pod's name is never made again (its logs and events would
	// mix with the new pod's; Kubernetes gives each pod a random
	// suffix). Runs stored by older servers have none: the highest index
	// of their pods stands for it.
	Made int32 `json:"made,omitempty"`
	// FailuresSinceSuccess counts the failures (failed or deleted pods)
	// since the last pod that succeeded: the retry back-off doubles with
	// each and starts again from 10 s after a success (Kubernetes' pod
	// failure back-off). LastFailure is when the latest of them failed,
	// or was seen deleted: the back-off counts from it.
	FailuresSinceSuccess int32     `json:"failuresSinceSuccess,omitempty"`
	LastFailure          time.Time `json:"lastFailure,omitzero"`
	StartTime            time.Time `json:"startTime,omitzero"`
	CompletionTime       time.Time `json:"completionTime,omitzero"`
	// Conditions: Complete or Failed (True once the run ended), with
	// the reason of a failure (BackoffLimitExceeded, DeadlineExceeded).
	Conditions []Condition `json:"conditions,omitempty"`
}

// TrackedPods is every pod the run tracks: Tracked and what an older
// server left in Running.
func (s *JobStatus) TrackedPods() []JobPod {
	return slices.Concat(s.Tracked, s.Running)
}

// JobPod names one pod of a run: a pod made again under the same name
// has another UID. An empty UID is an intent: the pod is about to be
// made.
type JobPod struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
	// Restarts is how many container restarts of the pod (under restart
	// policy OnFailure) Failed counts already; nil in the records of
	// older servers, which counted all of them.
	Restarts *int32 `json:"restarts,omitempty"`
}

// Job condition types and reasons.
const (
	JobComplete = "Complete"
	JobFailed   = "Failed"

	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonJobDeadlineExceeded  = "DeadlineExceeded"
	ReasonCompleted            = "Completed"
)

// DefaultBackoffLimit is a Job's backoff limit when none is given.
const DefaultBackoffLimit = 6

// JobPolicy makes a workload a job: its pods run to completion, in runs
// (Jobs). With a Schedule it is a cron job.
type JobPolicy struct {
	Completions           int32  `json:"completions,omitempty"`
	Parallelism           int32  `json:"parallelism,omitempty"`
	BackoffLimit          *int32 `json:"backoffLimit,omitempty"`
	ActiveDeadlineSeconds int64  `json:"activeDeadlineSeconds,omitempty"`
	// Schedule is a cron expression (five fields, or @daily, @every 1h
	// ...; "CRON_TZ=Europe/Paris 0 3 * * *" sets its time zone). Empty:
	// one run per template.
	Schedule string `json:"schedule,omitempty"`
	// TimeZone is the IANA zone of Schedule (default UTC).
	TimeZone string `json:"timeZone,omitempty"`
	// Concurrency is what a new run does while another runs: Forbid
	// (default; the new run waits or is skipped), Allow, or Replace (the
	// running run is stopped).
	Concurrency string `json:"concurrency,omitempty"`
	// HistoryLimit is how many finished runs are kept, with their pods
	// and logs (default 3).
	HistoryLimit *int32 `json:"historyLimit,omitempty"`
	// StartingDeadlineSeconds: a scheduled run that could not start
	// within this long of its time is skipped (0: no deadline), as
	// Kubernetes' startingDeadlineSeconds.
	StartingDeadlineSeconds int64 `json:"startingDeadlineSeconds,omitempty"`
	// Suspend: no run starts, neither on schedule nor for a new
	// template; runs going on are left to end. Schedule times that pass
	// while suspended are skipped: resumed, the schedule counts from
	// then, as one just added. `capstan run` still starts a run.
	Suspend bool `json:"suspend,omitempty"`
}

// Concurrency policies.
const (
	ConcurrencyForbid  = "Forbid"
	ConcurrencyAllow   = "Allow"
	ConcurrencyReplace = "Replace"
)

// DefaultHistoryLimit is how many finished runs a job workload keeps.
const DefaultHistoryLimit = 3

// LabelJob names the Job a pod belongs to.
const LabelJob = "capstan.io/job"

// Meta returns the object's metadata.
func (o *Job) Meta() *ObjectMeta { return &o.Metadata }

// SpecJSON returns the JSON of the spec (see spec.go).
func (o *Job) SpecJSON() ([]byte, error) { return json.Marshal(&o.Spec) }

// JobFinished reports whether a run has ended, and how: JobComplete or
// JobFailed.
func JobFinished(j *Job) (string, bool) {
	for _, t := range []string{JobComplete, JobFailed} {
		if c := FindCondition(j.Status.Conditions, t); c != nil && c.Status == ConditionTrue {
			return t, true
		}
	}
	return "", false
}

func validateJobSpec(errs *ErrorList, s *JobSpec, path string) {
	validateTemplate(errs, &s.Template, path+".template")
	validateJobCounts(errs, s.Completions, s.Parallelism, s.BackoffLimit, s.ActiveDeadlineSeconds, path)
	if p := s.Template.RestartPolicy; p != RestartOnFailure && p != RestartNever {
		errs.add(path+".template.restartPolicy", "%s: a job's pods run to completion: want OnFailure or Never", quote(p))
	}
}

func validateJobCounts(errs *ErrorList, completions, parallelism int32, backoff *int32, deadline int64, path string) {
	if completions < 0 || completions > MaxReplicas {
		errs.add(path+".completions", "%d: want 0 to %d", completions, MaxReplicas)
	}
	if parallelism < 0 || parallelism > MaxReplicas {
		errs.add(path+".parallelism", "%d: want 0 to %d", parallelism, MaxReplicas)
	}
	if backoff != nil && *backoff < 0 {
		errs.add(path+".backoffLimit", "%d: must not be negative", *backoff)
	}
	if deadline < 0 {
		errs.add(path+".activeDeadlineSeconds", "must not be negative")
	}
}

// validateJobPolicy checks a workload's job policy.
func validateJobPolicy(errs *ErrorList, s *WorkloadSpec, path string) {
	j := s.Job
	if j == nil {
		return
	}
	p := path + ".job"
	validateJobCounts(errs, j.Completions, j.Parallelism, j.BackoffLimit, j.ActiveDeadlineSeconds, p)
	switch j.Concurrency {
	case "", ConcurrencyForbid, ConcurrencyAllow, ConcurrencyReplace:
	default:
		errs.add(p+".concurrency", "%s: want Forbid, Allow or Replace", quote(j.Concurrency))
	}
	if j.HistoryLimit != nil && *j.HistoryLimit < 0 {
		errs.add(p+".historyLimit", "%d: must not be negative", *j.HistoryLimit)
	}
	if j.StartingDeadlineSeconds < 0 {
		errs.add(p+".startingDeadlineSeconds", "must not be negative")
	}
	if j.Schedule == "" && (j.TimeZone != "" || j.StartingDeadlineSeconds != 0) {
		errs.add(p+".schedule", "timeZone and startingDeadlineSeconds need a schedule")
	}
	if len(j.Schedule) > 256 {
		errs.add(p+".schedule", "%d characters, more than 256", len(j.Schedule))
	} else if j.Schedule != "" {
		if _, err := ParseSchedule(j.Schedule, j.TimeZone); err != nil {
			errs.add(p+".schedule", "%v", err)
		}
	}
	if rp := s.Template.RestartPolicy; rp != RestartOnFailure && rp != RestartNever {
		errs.add(path+".template.restartPolicy", "%s: a job's pods run to completion: want OnFailure or Never", quote(rp))
	}
	if s.EveryNode {
		errs.add(path+".everyNode", "a job cannot also run on every node")
	}
}

// JobName is the name of a run of workload: the workload's name, cut so
// that "-suffix" fits a DNS label, then "-suffix".
func JobName(workload, suffix string) string { return SuffixedName(workload, suffix) }

// SuffixedName is name cut so that "-suffix" fits a DNS label (and ends
// in no '-'), then "-suffix": the name of an object made for another
// (a job run, an event).
func SuffixedName(name, suffix string) string {
	max := MaxLabelLen - 1 - len(suffix)
	if len(name) > max {
		name = name[:max]
		for len(name) > 0 && name[len(name)-1] == '-' {
			name = name[:len(name)-1]
		}
	}
	return fmt.Sprintf("%s-%s", name, suffix)
}

// validateBatchSpec checks a workload's everyNode and dependsOn fields.
func validateBatchSpec(errs *ErrorList, s *WorkloadSpec, path string) {
	seen := map[string]bool{}
	for i, d := range s.DependsOn {
		p := fmt.Sprintf("%s.dependsOn[%d]", path, i)
		if !IsDNSLabel(d) {
			errs.add(p, "%s: must be the name of a pod group", quote(d))
		} else if seen[d] {
			errs.add(p, "%s is listed twice", quote(d))
		}
		seen[d] = true
	}
}
