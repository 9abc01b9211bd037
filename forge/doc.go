// Package forge makes pull requests the review surface: for every open
// pull request against a tracked branch it keeps one plan comment (the
// `capstan plan` of its head against its base, found again by a hidden
// marker) and a commit status on its head; on the commits sync applies it
// sets deploy statuses, pending until every changed app's rollout is
// complete (success) or it is refused or stalls (failure).
//
// It talks to the forges through their maintained clients (google/go-github,
// gitlab.com/gitlab-org/api/client-go, code.gitea.io/sdk/gitea) behind the
// small Client interface, to the cluster only through the API (informers
// of Nodes, Pods, Apps, Workloads and Revisions), and to git through
// gitsync.FetchRefs into its own bare clone per repository. It never
// touches the store.
//
// The decisions are pure: Decide (plan.go) turns a plan into a status and
// a comment body, DeployState (deploy.go) turns the API objects of a commit
// into a deploy status, Fit flips are found by comparing statuses. The
// Component applies them.
//
// Concurrency: one goroutine per repository plans its pull requests, one at
// a time (their fetches share one clone); webhooks and informer handlers
// only mark work and wake it, so they never block sync or the API. Forge
// calls are retried with back-off by the transport (retry.go), bounded, and
// a failure is recorded as an Event, never stopping anything else.
package forge
