// Package app is the app controller: it turns an App (written by git sync)
// into the Workloads and Services it describes, owned by the App, prunes
// the ones git no longer has, reverts manual edits (drift), and rolls the
// health of the app up from its workloads and pods.
//
// Compute and Health (plan.go, health.go) are the pure decision core; the
// Controller (controller.go) feeds them from informers and applies the plan
// through the API client.
//
// Only objects owned by the App (Metadata.Owner kind apps with the App's
// UID) are ever updated or deleted; anything else in the app's namespace is
// left alone, even when its name collides with a desired object.
//
// Concurrency: Compute and Health are pure functions.
package app
