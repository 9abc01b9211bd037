package scheduler

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the scheduler.
var (
	// ErrUnschedulable marks a pod that fits on no node right now.
	ErrUnschedulable = errors.New("unschedulable")
	// ErrAlreadyBound marks a pod that already has a node.
	ErrAlreadyBound = errors.New("pod is already bound to a node")
)

// Reason is one cause of rejection and how many nodes it rejected.
type Reason struct {
	Reason string
	Nodes  int
}

// UnschedulableError says why no node could take a pod. It matches
// ErrUnschedulable with errors.Is.
type UnschedulableError struct {
	Pod     string
	Message string
	Reasons []Reason
}

func (e *UnschedulableError) Error() string {
	return fmt.Sprintf("pod %s: %s", e.Pod, e.Message)
}

// Unwrap lets errors.Is(err, ErrUnschedulable) match.
func (e *UnschedulableError) Unwrap() error { return ErrUnschedulable }

// unschedulableMessage renders "0/5 nodes available: 3 insufficient memory,
// 2 not ready". reasons must already be sorted.
func unschedulableMessage(total int, reasons []Reason) string {
	if total == 0 {
		return "0/0 nodes available: no nodes registered"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes available: ", total)
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", r.Nodes, r.Reason)
	}
	return b.String()
}
