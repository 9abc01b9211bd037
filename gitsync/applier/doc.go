// Package applier turns git snapshots into App objects: it is the Sink of
// gitsync's Syncer. For each snapshot it evaluates the descriptors in the
// bounded evaluation sandbox (schema/sandbox: one child process per
// repository; a file or app over the bounds is rejected alone, and
// recorded under Options.DataDir so a restart does not evaluate it
// again), then applies each app on its own: a changed valid app lands as
// its App (spec, and status with the sync result and the Synced
// condition) and a Revision in one transaction; an invalid app gets a
// Rejected Revision listing every error with file:line, in one
// transaction with its status, and its running App is left alone (a new
// one is created without pod groups, to show why nothing of it runs), so
// one broken app never blocks the others. Apps that git no longer declares
// are deleted (their workloads and services go with them through their
// owner). Apps that did not change are not written at all.
//
// Concurrency: the Syncer calls Apply and Report for one repository at a
// time. Within a call, up to Options.Workers apps are written at once
// (valid apps while the rest of the commit is still evaluated). The
// applier compares git with an informer's cache of the Apps (started by
// the first sync, stopped by Close), updated per repository with its own
// writes the informer has not seen yet, behind a mutex. A write that loses a
// compare-and-swap to another writer (the app controller writes the
// health of the same App) is retried on the fresh App.
package applier
