package printer

import (
	"fmt"
	"io"
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
	if k := api.KeyOf(obj).Kind; k.ClusterScoped() {
		// Event objects live in apps: the recorders only log events about
		// nodes. Say so rather than a bare <none> after an outage.
		fmt.Fprintf(w, "  <not stored for %s: the conditions above say what happened last, the server's log (event lines) the rest>\n", k)
		return nil
	}
	if len(events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
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

// EventsAbout returns the events whose object is obj: same kind, app and
// name, and the same UID when the event names one (events about an
// earlier object of the same name, such as an ordered replica made again,
// are not this one's).
func EventsAbout(obj api.Object, events []api.Object) []*api.Event {
	k := api.KeyOf(obj)
	uid := obj.Meta().UID
	var out []*api.Event
	for _, o := range events {
		e := o.(*api.Event)
		r := e.Spec.Object
		if r.Kind != k.Kind || r.Name != k.Name || r.App != k.App {
			continue
		}
		if r.UID != "" && uid != "" && r.UID != uid {
			continue
		}
		out = append(out, e)
	}
	return out
}
