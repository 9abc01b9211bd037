// Package applier turns git snapshots into App objects: it is the Sink of
// gitsync's Syncer. For each snapshot it loads the descriptors with the
// schema, then applies each app on its own: a valid app lands as its App
// and a Revision in one transaction; an invalid app gets a Rejected
// Revision listing every error with file:line, and its running App is left
// alone, so one broken app never blocks the others. Apps that git no longer
// declares are deleted (their workloads and services go with them through
// their owner). Apps that did not change are not written at all.
//
// Concurrency: the Syncer calls Apply and Report for one repository at a
// time; an Applier keeps one schema loader per repository behind a mutex.
package applier
