package apiserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
)

// labelFilter gives a watch with a label selector (labels=k=v,...) the
// events its client needs, as Kubernetes' watch cache does for a
// selector: an object that comes to match is ADDED, one that stops
// matching is DELETED, so that it leaves an informer's cache; other
// events pass when their object matches. What an object looked like
// before a change is not in the event: the filter remembers which
// objects match, seeded with a list at revision listed. Events up to
// listed came before that list: an object that stops matching among them
// is sent DELETED whether or not the client had it (an informer ignores
// the delete of an object it does not hold).
type labelFilter struct {
	want     map[string]string
	matching map[api.Key]struct{}
	listed   int64
}

// newLabelFilter seeds a filter for opts.Labels with the objects of kind
// that match opts now.
func (s *Server) newLabelFilter(ctx context.Context, kind api.Kind, opts store.ListOptions) (*labelFilter, error) {
	objs, rev, err := s.store.List(ctx, kind, opts)
	if err != nil {
		return nil, fmt.Errorf("watch %s by labels: list what matches: %w", kind, err)
	}
	keys := make([]api.Key, len(objs))
	for i, o := range objs {
		keys[i] = api.KeyOf(o)
	}
	return newLabelFilter(opts.Labels, keys, rev), nil
}

func newLabelFilter(want map[string]string, matching []api.Key, listed int64) *labelFilter {
	f := &labelFilter{want: want, matching: make(map[api.Key]struct{}, len(matching)), listed: listed}
	for _, k := range matching {
		f.matching[k] = struct{}{}
	}
	return f
}

// typeOf returns the type to send e as, or "" to leave it out; labels
// are those of e's object (after the change; before it for a deletion).
func (f *labelFilter) typeOf(e store.Event, labels map[string]string) store.EventType {
	match := store.MatchLabels(labels, f.want)
	_, had := f.matching[e.Key]
	before := e.Rev <= f.listed
	switch {
	case e.Type == store.Deleted:
		delete(f.matching, e.Key)
		if match || had {
			return store.Deleted
		}
	case match:
		f.matching[e.Key] = struct{}{}
		if e.Type == store.Modified && !had && !before {
			return store.Added
		}
		return e.Type
	default:
		delete(f.matching, e.Key)
		if e.Type == store.Modified && (had || before) {
			return store.Deleted
		}
	}
	return ""
}

// objectLabels reads the labels of an event's object.
func objectLabels(obj []byte) (map[string]string, error) {
	var o struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	err := json.Unmarshal(obj, &o)
	return o.Metadata.Labels, err
}
