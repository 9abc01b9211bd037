// Package printer renders API objects for people: kubectl-like tables with
// kind-specific columns (NAME, AGE and what matters for the kind), and a
// describe view of one object with its recent events. It is pure: it reads
// objects and a clock and writes text.
package printer
