// Package cron makes the runs (Jobs) of job workloads: a workload with a
// job policy and no schedule gets one run per pod template (a commit that
// changes the template starts a new run; one that does not, none); a
// workload with a schedule gets one run per schedule time, with
// Kubernetes' CronJob semantics: concurrency Forbid, Allow or Replace;
// after a server restart only the latest missed time runs, and only
// within startingDeadlineSeconds of it; finished runs beyond the history
// limit are deleted, with their pods.
//
// The decision is Compute, a pure function of the workload, its runs and
// the time; Controller applies it and asks its queue to look again at the
// next schedule time, on the manager's clock (a fake one in tests). A run
// is named after its workload and its template hash or schedule time
// ("nightly-29541600"), so making it twice fails with AlreadyExists.
// One workload is never reconciled by two workers at once.
package cron
