package api

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Bounds on what a writer can make the server keep and hand to every
// watcher. Nodes write their Node, Lease, the status of their pods and
// events, so every string and list of those has a bound, and every kind has
// a bound on its encoded size (MaxObjectBytes).
const (
	// MaxReasonLen bounds condition types and reasons, event reasons and
	// the reasons of container states.
	MaxReasonLen = 256
	// MaxMessageLen bounds human-readable messages (conditions, events,
	// pod and container states), as Kubernetes bounds a condition's.
	MaxMessageLen = 32 << 10
	// MaxConditions bounds the conditions of one object.
	MaxConditions = 32
	// MaxNodeAddresses bounds a node's addresses.
	MaxNodeAddresses = 16
	// maxShortLen bounds identifiers and versions: node info, digests,
	// container IDs, UIDs, commits, phases, reporters.
	maxShortLen = 256
)

// ErrTooLarge marks an object over its kind's size limit.
var ErrTooLarge = errors.New("object too large")

// maxObjectBytes is each kind's limit on its encoded JSON size. The API's
// body limit (3 MiB by default) bounds every request before this.
var maxObjectBytes = map[Kind]int{
	KindNode:      512 << 10,
	KindLease:     64 << 10,
	KindApp:       2 << 20,
	KindWorkload:  1 << 20,
	KindPod:       1 << 20,
	KindService:   256 << 10,
	KindEndpoints: 2 << 20,
	KindRevision:  2 << 20,
	KindEvent:     64 << 10,
	KindVolume:    64 << 10,
	KindSecret:    1 << 20,
	KindJob:       1 << 20,
}

// MaxObjectBytes is the largest encoded object of kind k the API stores.
func MaxObjectBytes(k Kind) int { return maxObjectBytes[k] }

// TooLargeError is an object over its kind's size limit.
type TooLargeError struct {
	Kind  Kind
	Size  int
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s object is %d bytes, more than the %d allowed for %s: shorten its largest fields", e.Kind.Singular(), e.Size, e.Limit, e.Kind)
}

// Unwrap lets errors.Is(err, ErrTooLarge) match.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// validateSize checks obj's encoded size against its kind's limit.
func validateSize(k Kind, obj Object) error {
	limit := maxObjectBytes[k]
	if limit == 0 {
		return nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("%w: encode %s: %w", ErrInvalid, k.Singular(), err)
	}
	return CheckSize(k, len(b))
}

// CheckSize checks the size of an object of kind k's encoding against its
// kind's limit.
func CheckSize(k Kind, size int) error {
	if limit := maxObjectBytes[k]; limit > 0 && size > limit {
		return &TooLargeError{Kind: k, Size: size, Limit: limit}
	}
	return nil
}

// maxLen reports a string longer than n bytes.
func maxLen(errs *ErrorList, path, s string, n int) {
	if len(s) > n {
		errs.add(path, "%d bytes, more than %d", len(s), n)
	}
}

// maxItems reports a list longer than n.
func maxItems(errs *ErrorList, path string, have, n int) bool {
	if have > n {
		errs.add(path, "%d items, more than %d", have, n)
		return false
	}
	return true
}

func validateConditions(errs *ErrorList, conds []Condition, path string) {
	if !maxItems(errs, path, len(conds), MaxConditions) {
		return
	}
	for i, c := range conds {
		p := fmt.Sprintf("%s[%d]", path, i)
		maxLen(errs, p+".type", c.Type, MaxReasonLen)
		maxLen(errs, p+".status", string(c.Status), maxShortLen)
		maxLen(errs, p+".reason", c.Reason, MaxReasonLen)
		maxLen(errs, p+".message", c.Message, MaxMessageLen)
	}
}

func validateMetaSizes(errs *ErrorList, m *ObjectMeta) {
	if m.Owner != nil {
		maxLen(errs, "metadata.owner.name", m.Owner.Name, MaxSubdomainLen)
		maxLen(errs, "metadata.owner.uid", m.Owner.UID, maxShortLen)
	}
	if m.Source != nil {
		maxLen(errs, "metadata.source.repo", m.Source.Repo, maxStringFieldLength)
		maxLen(errs, "metadata.source.commit", m.Source.Commit, maxShortLen)
		maxLen(errs, "metadata.source.path", m.Source.Path, maxStringFieldLength)
	}
}

func validateNodeStatusSizes(errs *ErrorList, st *NodeStatus) {
	if maxItems(errs, "status.addresses", len(st.Addresses), MaxNodeAddresses) {
		for i, a := range st.Addresses {
			p := fmt.Sprintf("status.addresses[%d]", i)
			maxLen(errs, p+".type", a.Type, MaxLabelLen)
			maxLen(errs, p+".address", a.Address, MaxSubdomainLen)
		}
	}
	validateConditions(errs, st.Conditions, "status.conditions")
	for _, f := range []struct{ name, v string }{
		{"agentVersion", st.Info.AgentVersion}, {"os", st.Info.OS}, {"arch", st.Info.Arch},
		{"kernelVersion", st.Info.KernelVersion}, {"runtimeVersion", st.Info.RuntimeVersion},
	} {
		maxLen(errs, "status.info."+f.name, f.v, maxShortLen)
	}
	maxLen(errs, "status.agentCert", st.AgentCert, maxShortLen)
}

func validatePodStatusSizes(errs *ErrorList, st *PodStatus) {
	maxLen(errs, "status.phase", st.Phase, maxShortLen)
	maxLen(errs, "status.reason", st.Reason, MaxReasonLen)
	maxLen(errs, "status.message", st.Message, MaxMessageLen)
	maxLen(errs, "status.podIP", st.PodIP, maxShortLen)
	maxLen(errs, "status.hostIP", st.HostIP, maxShortLen)
	validateConditions(errs, st.Conditions, "status.conditions")
	if !maxItems(errs, "status.containers", len(st.Containers), MaxContainersPerPod) {
		return
	}
	for i, c := range st.Containers {
		p := fmt.Sprintf("status.containers[%d]", i)
		maxLen(errs, p+".name", c.Name, MaxLabelLen)
		maxLen(errs, p+".image", c.Image, maxStringFieldLength)
		maxLen(errs, p+".imageDigest", c.ImageDigest, maxShortLen)
		maxLen(errs, p+".containerID", c.ContainerID, maxShortLen)
		if w := c.State.Waiting; w != nil {
			maxLen(errs, p+".state.waiting.reason", w.Reason, MaxReasonLen)
			maxLen(errs, p+".state.waiting.message", w.Message, MaxMessageLen)
		}
		validateTerminatedSizes(errs, c.State.Terminated, p+".state.terminated")
		validateTerminatedSizes(errs, c.LastTermination, p+".lastTermination")
	}
}

func validateTerminatedSizes(errs *ErrorList, t *TerminatedState, path string) {
	if t == nil {
		return
	}
	maxLen(errs, path+".reason", t.Reason, MaxReasonLen)
	maxLen(errs, path+".message", t.Message, MaxMessageLen)
}

func validateEventSizes(errs *ErrorList, s *EventSpec) {
	maxLen(errs, "spec.reason", s.Reason, MaxReasonLen)
	maxLen(errs, "spec.message", s.Message, MaxMessageLen)
	maxLen(errs, "spec.reporter", s.Reporter, maxShortLen)
	maxLen(errs, "spec.object.kind", string(s.Object.Kind), MaxLabelLen)
	maxLen(errs, "spec.object.app", s.Object.App, MaxLabelLen)
	maxLen(errs, "spec.object.name", s.Object.Name, MaxSubdomainLen)
	maxLen(errs, "spec.object.uid", s.Object.UID, maxShortLen)
}
