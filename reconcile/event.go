package reconcile

import "github.com/capstanhq/capstan/apiserver/api"

// Event is something a plan did that the caller records as an api.Event
// on the object: drift reverted, rollout stalled, pod evicted.
type Event struct {
	Object  api.ObjectRef
	Type    string // api.EventNormal or api.EventWarning
	Reason  string
	Message string
	// Count is how many times it happened since it was last recorded
	// (0: once), for a source that merges repeats before it records.
	Count int32
}
