package printer

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"sigs.k8s.io/yaml"
)

// Describe writes one object's fields as YAML, then the events about it,
// newest last.
func Describe(w io.Writer, obj api.Object, events []*api.Event, now time.Time) error {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nEvents:")
	if len(events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Spec.LastSeen.Before(events[j].Spec.LastSeen) })
	objs := make([]api.Object, len(events))
	for i, e := range events {
		objs[i] = e
	}
	var b strings.Builder
	if err := Table(&b, api.KindEvent, objs, Options{Now: now, Wide: true}); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
	return nil
}

// EventsAbout returns the events whose object is obj.
func EventsAbout(obj api.Object, events []api.Object) []*api.Event {
	k := api.KeyOf(obj)
	var out []*api.Event
	for _, o := range events {
		e := o.(*api.Event)
		if e.Spec.Object.Kind == k.Kind && e.Spec.Object.Name == k.Name && e.Spec.Object.App == k.App {
			out = append(out, e)
		}
	}
	return out
}
