// Package sandbox evaluates app descriptors in a child process where time
// and memory bounds can be enforced, so that a hostile or broken commit
// (a structure that doubles forty times, a comprehension over a million
// elements) costs its own apps, never the process that loads it.
//
// An Evaluator owns one child: the same binary started again with the
// environment marker ChildEnv; the binary's main (and the TestMain of any
// test binary that uses an Evaluator) calls Main first, which serves
// evaluation requests on stdin/stdout when the marker is set. The child
// keeps a schema.Loader between requests, so a commit that changes one
// app evaluates that app only; the parent sends the content of files it
// has not sent before.
//
// Bounds, per step (the parse of one file or the evaluation of one app,
// announced by the child before it starts):
//   - CPU time: the parent reads the child's CPU time from /proc and kills
//     it when a step uses more than Options.Timeout; as a backstop the
//     child sets its RLIMIT_CPU soft limit to its usage so far plus the
//     timeout (rounded up to seconds) before each step and exits on
//     SIGXCPU;
//   - wall clock: the parent kills the child when a step runs longer than
//     Options.WallTimeout (a loaded machine stretches wall-clock time, not
//     CPU time, so this bound is wider);
//   - memory: the parent kills the child when its resident memory
//     exceeds Options.Memory; the child's Go heap limit is set just below
//     it and, as a backstop, its address space (RLIMIT_AS) may grow by
//     twice as much beyond its size at start-up.
//
// A step that exceeds a bound, or crashes the child, is refused: its key
// (the file's content hash, or the app's inputs) is recorded with the
// message "evaluation exceeded 2s / 512 MiB in bomb.cue" (in StateFile when
// set, so a restarted server does not evaluate it again), the child is
// started afresh and the load continues without it. The apps the refused
// input declares are rejected with the message; the others load as usual.
//
// Concurrency: an Evaluator serialises its Load calls; use one per
// repository to evaluate repositories in parallel. Close stops the child.
package sandbox
