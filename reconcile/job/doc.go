// Package job runs Jobs: one run of a job pod group. For each Job it
// keeps up to parallelism pods running until completions of them
// succeeded, counts failures (failed pods, container restarts under
// restart policy OnFailure, and pods deleted before they finished)
// against the backoff limit, retries each failed or deleted pod after a
// back-off that doubles, fails the run at
// its active deadline, and records the outcome in the Job's status. The
// pods of a finished run are kept, with their logs, until the Job is
// deleted (the cron controller keeps a bounded history).
//
// The decision is Compute, a pure function of the Job, its pods and the
// time; Controller applies it. Pods are named "<job>-<n>", n counting
// up (status.made) and never used twice, so a replacement's logs and
// events are its own, and a create the cache does not show yet is never
// made twice: the second create of a name fails with AlreadyExists. One Job is never
// reconciled by two workers at once (the reconcile queue).
//
// Succeeded and failed are running totals: a pod's outcome is counted
// once, and deleting a finished pod changes neither. What is not counted
// yet is the Job's status.tracked: every pod is recorded there before it
// is made (an intent, no UID), then with its UID, until the status write
// that counts its outcome; a tracked pod missing from the cache is read
// from the API before it counts as deleted. The retry back-off counts
// the failures since the last success.
package job
