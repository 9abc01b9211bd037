// Package schema owns the descriptor: the CUE schema that users' app
// descriptors must satisfy (embedded in the binary, printed by
// `capstan schema`) and the loader that turns a directory of .cue, .yaml,
// .yml and .json files into one api.App per app, with provenance.
//
// Loading is per app: every file is parsed on its own, the fragments that
// declare the same app are unified with the schema's #App, and each app is
// accepted or rejected with all of its errors, so one broken app never
// blocks the others. Errors are api.SourceError values that print as
// file:line:col: field.path: message.
//
// An app goes through stages in order: parse each file (files.go), unify
// and validate against #App, check names (names.go) and shape CUE's errors
// (cueerrors.go), convert to api.App and run api.Validate (convert.go).
// These stages report problems at descriptor paths only; the last stage
// (position.go) gives every problem its file:line:col. A file's own errors
// (syntax, top level) have no app to wait for: the parser positions them
// with the same code (fromCUE) as it reads the file.
//
// A Loader caches parsed files by content hash and evaluated apps by the
// hashes of the files that declare them, so a commit that changes one app
// re-evaluates only that app.
//
// Concurrency: a Loader serialises its Load calls with a mutex (the CUE
// runtime it holds is not safe for concurrent use). The App objects of a
// Result share their spec with the Loader's cache: read them freely from
// any goroutine, but api.Clone one before changing it. The package has no
// global mutable state.
package schema
