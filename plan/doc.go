// Package plan answers the reviewer's question before a merge: what does
// this change do? It compares the descriptors of two revisions of a
// repository (base and head, each loaded by schema.Load) and reports:
//
//   - the validation result of head, every error as file:line:col;
//   - per app: added, removed, changed, unchanged or rejected, and the
//     Workloads and Services the app controller would create, added,
//     changed or removed, with field-level changes (replicas, images,
//     ports, resources, env, ...);
//   - when the live cluster is given, a scheduling dry run of the pods the
//     change needs, through the scheduler's pure core (see capacity.go for
//     the counting rule).
//
// Compute is pure: it reads its inputs and returns a Plan; RenderText and
// RenderMarkdown turn a Plan into text for a terminal or Markdown for a
// pull-request comment. Nothing here does I/O: `capstan plan`
// (cmd/capstan/plan.go) reads the git trees and lists the live nodes and
// pods, then calls this package.
//
// Concurrency: every function is pure and safe to call from any
// goroutine; a Plan is a plain value.
package plan
