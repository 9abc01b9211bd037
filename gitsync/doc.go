// Package gitsync owns the git side of sync: it tracks repositories of app
// descriptors, fetches them into a cache under a data directory, checks
// commit signatures, and hands each new head to a consumer-owned Sink as a
// Snapshot (commit metadata plus a read-only fs.FS of the tree at the
// configured path, read straight from git objects). It also makes rollback
// commits (RevertPaths) and answers Diff and TreeAt for `capstan plan`.
//
// gitsync never writes to the API: turning snapshots into App and Revision
// objects is the caller's job.
//
// Triggers are polling (jittered interval), fsnotify on local repositories,
// webhooks (WebhookHandler) and explicit Trigger calls.
//
// Concurrency: a Syncer runs one goroutine per repository; that goroutine is
// the only one that fetches into the repository's cache or calls the Sink for
// it, so there is at most one fetch per repository at a time and Sink.Apply is
// never called concurrently for the same repository (it may be for different
// ones). Trigger, TriggerAll, Status and the webhook handler are safe to call
// from any goroutine; triggers that arrive while a sync runs coalesce into one
// more sync. A Snapshot's FS is safe for concurrent use and stays readable at
// least until the next Apply for the same repository returns.
package gitsync
