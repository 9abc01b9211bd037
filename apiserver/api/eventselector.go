package api

import (
	"fmt"
	"strconv"
	"strings"
)

// EventSelector picks events, as kubectl's event field selectors do
// (capstan get events --field-selector, --for, --types). The zero value
// picks every event.
type EventSelector struct {
	reqs []eventReq
}

type eventReq struct {
	field string // one of eventFields' values
	value string
	not   bool
}

// eventFields maps the field names a selector takes, in Kubernetes'
// spelling (involvedObject.name) and in Capstan's (object.name), to the
// field they read.
var eventFields = map[string]string{
	"involvedObject.kind": "object.kind", "object.kind": "object.kind",
	"involvedObject.name": "object.name", "object.name": "object.name",
	"involvedObject.namespace": "object.app", "object.app": "object.app",
	"involvedObject.uid": "object.uid", "object.uid": "object.uid",
	"type": "type", "reason": "reason",
	"source": "reporter", "reportingComponent": "reporter", "reporter": "reporter",
	"metadata.name": "metadata.name", "metadata.namespace": "metadata.app", "metadata.app": "metadata.app",
}

// ParseEventSelector reads a field selector, FIELD=VALUE[,FIELD!=VALUE...]
// (== is =), every requirement to hold. Fields: involvedObject.kind
// (a kind in any spelling: Pod, pods, po), involvedObject.name,
// involvedObject.namespace (the app), involvedObject.uid, type, reason,
// source, metadata.name, metadata.namespace; object.* and reporter work too.
func ParseEventSelector(s string) (EventSelector, error) {
	var sel EventSelector
	if s == "" {
		return sel, nil
	}
	for _, term := range strings.Split(s, ",") {
		f, v, not, ok := cutRequirement(term)
		field, known := eventFields[f]
		switch {
		case !ok || f == "":
			return EventSelector{}, fmt.Errorf("field selector: %s: want FIELD=VALUE or FIELD!=VALUE[,...]", quoteCut(term))
		case !known:
			return EventSelector{}, fmt.Errorf("field selector: field %s: events have involvedObject.kind, involvedObject.name, involvedObject.namespace, involvedObject.uid, type, reason, source, metadata.name, metadata.namespace", quoteCut(f))
		}
		if field == "object.kind" {
			k, ok := ParseKind(v)
			if !ok {
				return EventSelector{}, fmt.Errorf("field selector: %s: no kind %s (kinds: pods, workloads, apps, ...)", f, quoteCut(v))
			}
			v = string(k)
		}
		sel.reqs = append(sel.reqs, eventReq{field: field, value: v, not: not})
	}
	return sel, nil
}

// cutRequirement splits "f=v", "f==v" or "f!=v".
func cutRequirement(term string) (field, value string, not, ok bool) {
	if f, v, found := strings.Cut(term, "!="); found {
		return f, v, true, true
	}
	f, v, found := strings.Cut(term, "=")
	return f, strings.TrimPrefix(v, "="), false, found
}

func quoteCut(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.QuoteToASCII(s)
}

// For adds a requirement that the event be about ref (its kind and name,
// and its app when set).
func (s *EventSelector) For(ref ObjectRef) {
	s.reqs = append(s.reqs, eventReq{field: "object.kind", value: string(ref.Kind)}, eventReq{field: "object.name", value: ref.Name})
	if ref.App != "" {
		s.reqs = append(s.reqs, eventReq{field: "object.app", value: ref.App})
	}
}

// Empty reports whether s picks every event.
func (s EventSelector) Empty() bool { return len(s.reqs) == 0 }

// Matches reports whether e meets every requirement of s.
func (s EventSelector) Matches(e *Event) bool {
	for _, r := range s.reqs {
		if (eventField(e, r.field) == r.value) == r.not {
			return false
		}
	}
	return true
}

func eventField(e *Event, field string) string {
	switch field {
	case "object.kind":
		return string(e.Spec.Object.Kind)
	case "object.name":
		return e.Spec.Object.Name
	case "object.app":
		return e.Spec.Object.App
	case "object.uid":
		return e.Spec.Object.UID
	case "type":
		return e.Spec.Type
	case "reason":
		return e.Spec.Reason
	case "reporter":
		return e.Spec.Reporter
	case "metadata.name":
		return e.Metadata.Name
	case "metadata.app":
		return e.Metadata.App
	}
	return ""
}

// OfTypes adds a requirement that the event be of one of the types in
// list, comma-separated (Normal, Warning, in any case), as kubectl
// events --types.
func (s *EventSelector) OfTypes(list string) error {
	want := map[string]bool{}
	for _, t := range strings.Split(list, ",") {
		switch {
		case strings.EqualFold(t, EventNormal):
			want[EventNormal] = true
		case strings.EqualFold(t, EventWarning):
			want[EventWarning] = true
		default:
			return fmt.Errorf("event type %s: want Normal or Warning (comma-separated for both)", quoteCut(t))
		}
	}
	if len(want) == 1 {
		for t := range want {
			s.reqs = append(s.reqs, eventReq{field: "type", value: t})
		}
	}
	return nil
}
