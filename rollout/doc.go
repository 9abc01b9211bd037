// Package rollout decides and renders the progress of an app's rollout for
// `capstan rollout status`: per pod group (workload), how many pods run the
// current template (updated), are ready and are available, of how many are
// desired, and whether the rollout is complete, still progressing, stalled
// (the workload controller's progress deadline passed) or failed (the
// health rollup, over the pods of each group's current template, finds
// crash-looping, unpullable or unschedulable pods).
//
// Evaluate is a pure function of the App, its Workloads and its Pods as
// the API returns them; Render writes a Report as text. Neither does I/O beyond the
// writer it is given, and both are safe for concurrent use.
package rollout
