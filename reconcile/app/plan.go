package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// AnnotationSpecHash records on each object the hash of the spec the app
// controller last wrote, so a spec that no longer matches it was changed by
// someone else: drift.
const AnnotationSpecHash = "capstan.io/spec-hash"

// Event reasons.
const (
	ReasonDriftReverted = "DriftReverted"
	ReasonNameConflict  = "NameConflict"
)

// Update is an observed object with its spec set back to the desired one;
// it carries the observed resourceVersion, so applying it is a
// compare-and-swap.
type Update struct {
	Object api.Object
	// Drift is set when the object's spec is not the one the controller
	// last wrote: someone changed it through the API, and the update
	// reverts that.
	Drift bool
}

// Plan is what the app controller must do for one App.
type Plan struct {
	Create []api.Object
	Update []Update
	Delete []api.Object
	// Events to record: drift reverted, names taken by objects the App
	// does not own.
	Events []reconcile.Event
}

// Namespace is the app namespace an App's objects live in.
func Namespace(a *api.App) string {
	if a.Metadata.App != "" {
		return a.Metadata.App
	}
	return a.Metadata.Name
}

func owner(a *api.App) *api.OwnerRef {
	return &api.OwnerRef{Kind: api.KindApp, Name: a.Metadata.Name, UID: a.Metadata.UID}
}

// Desired returns the Workloads and Services an App describes, owned by it,
// labelled with the app (and, on pod templates, the workload), with the
// App's source. Services without a selector select their workload's pods.
func Desired(a *api.App) ([]*api.Workload, []*api.Service) {
	ns := Namespace(a)
	var ws []*api.Workload
	for _, aw := range a.Spec.Workloads {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = objectMeta(a, ns, aw.Name)
		w.Spec = deepCopy(aw.Spec)
		if w.Spec.Template.Labels == nil {
			w.Spec.Template.Labels = map[string]string{}
		}
		w.Spec.Template.Labels[api.LabelApp] = ns
		w.Spec.Template.Labels[api.LabelWorkload] = aw.Name
		w.Metadata.Annotations = map[string]string{AnnotationSpecHash: specHash(w.Spec)}
		ws = append(ws, w)
	}
	var ss []*api.Service
	for _, as := range a.Spec.Services {
		s := api.KindService.New().(*api.Service)
		s.Metadata = objectMeta(a, ns, as.Name)
		s.Spec = deepCopy(as.Spec)
		if len(s.Spec.Selector) == 0 {
			s.Spec.Selector = map[string]string{api.LabelApp: ns, api.LabelWorkload: as.Name}
		}
		s.Metadata.Annotations = map[string]string{AnnotationSpecHash: specHash(unallocated(s.Spec))}
		ss = append(ss, s)
	}
	return ws, ss
}

func objectMeta(a *api.App, ns, name string) api.ObjectMeta {
	m := api.ObjectMeta{
		Name:   name,
		App:    ns,
		Labels: map[string]string{api.LabelApp: ns},
		Owner:  owner(a),
	}
	if a.Metadata.Source != nil {
		src := *a.Metadata.Source
		m.Source = &src
	}
	return m
}

func deepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("app: marshal %T: %v", v, err))
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("app: unmarshal %T: %v", v, err))
	}
	return out
}

// specHash is a stable hash of a spec's JSON.
func specHash(spec any) string {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(fmt.Sprintf("app: marshal %T: %v", spec, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// unallocated returns a service spec without what the server allocates.
func unallocated(s api.ServiceSpec) api.ServiceSpec {
	out := deepCopy(s)
	out.VIP = ""
	for i := range out.Ports {
		out.Ports[i].NodePort = 0
	}
	return out
}

// Compute plans one reconcile of App a, given the Workloads and Services
// observed in its namespace (owned by it or not).
func Compute(a *api.App, workloads []*api.Workload, services []*api.Service) Plan {
	var p Plan
	wantW, wantS := Desired(a)

	haveW := map[string]*api.Workload{}
	for _, w := range workloads {
		haveW[w.Metadata.Name] = w
	}
	desiredW := map[string]bool{}
	for _, w := range wantW {
		desiredW[w.Metadata.Name] = true
		p.plan(a, w, haveW[w.Metadata.Name], func(have api.Object) (api.Object, bool) {
			h := have.(*api.Workload)
			if api.EqualJSON(h.Spec, w.Spec) {
				return nil, false
			}
			u := api.Clone(h)
			u.Spec = w.Spec
			return u, true
		})
	}
	haveS := map[string]*api.Service{}
	for _, s := range services {
		haveS[s.Metadata.Name] = s
	}
	desiredS := map[string]bool{}
	for _, s := range wantS {
		desiredS[s.Metadata.Name] = true
		p.plan(a, s, haveS[s.Metadata.Name], func(have api.Object) (api.Object, bool) {
			h := have.(*api.Service)
			want := keepAllocated(s.Spec, h.Spec)
			if api.EqualJSON(h.Spec, want) {
				return nil, false
			}
			u := api.Clone(h)
			u.Spec = want
			return u, true
		})
	}
	// Prune: what the App owns and git no longer has.
	for _, name := range slices.Sorted(maps.Keys(haveW)) {
		if w := haveW[name]; !desiredW[name] && api.OwnedBy(w, api.KindApp, a.Metadata.UID) && !api.Terminating(w) {
			p.Delete = append(p.Delete, w)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(haveS)) {
		if s := haveS[name]; !desiredS[name] && api.OwnedBy(s, api.KindApp, a.Metadata.UID) && !api.Terminating(s) {
			p.Delete = append(p.Delete, s)
		}
	}
	return p
}

// plan decides one desired object: create it, update the observed one
// (diff returns the update, or false when the specs agree), or report a
// conflict with an object the App does not own.
func (p *Plan) plan(a *api.App, want, have api.Object, diff func(have api.Object) (api.Object, bool)) {
	if have == nil || isNil(have) {
		p.Create = append(p.Create, want)
		return
	}
	k := api.KeyOf(want)
	if !api.OwnedBy(have, api.KindApp, a.Metadata.UID) {
		p.Events = append(p.Events, reconcile.Event{Object: api.RefOf(a), Type: api.EventWarning, Reason: ReasonNameConflict,
			Message: fmt.Sprintf("%s %s exists and is not owned by app %s; rename it in git or delete the existing one", k.Kind.Singular(), k.Name, a.Metadata.Name)})
		return
	}
	u, changed := diff(have)
	if !changed {
		return
	}
	// The update carries the App's current provenance.
	u.Meta().Source = want.Meta().Source
	u.Meta().Labels = mergeLabels(have.Meta().Labels, want.Meta().Labels)
	u.Meta().Annotations = mergeLabels(have.Meta().Annotations, want.Meta().Annotations)
	applied := have.Meta().Annotations[AnnotationSpecHash]
	drift := applied != "" && applied != observedSpecHash(have)
	p.Update = append(p.Update, Update{Object: u, Drift: drift})
	if drift {
		commit := "(unknown commit)"
		if src := a.Metadata.Source; src != nil {
			commit = api.ShortCommit(src.Commit)
		}
		p.Events = append(p.Events, reconcile.Event{Object: api.RefOf(have), Type: api.EventWarning, Reason: ReasonDriftReverted,
			Message: fmt.Sprintf("spec of %s %s was changed outside git; reverted to commit %s", k.Kind.Singular(), k.Name, commit)})
	}
}

func observedSpecHash(o api.Object) string {
	switch v := o.(type) {
	case *api.Workload:
		return specHash(v.Spec)
	case *api.Service:
		return specHash(unallocated(v.Spec))
	case *api.Secret:
		return specHash(v.Spec)
	}
	return ""
}

func isNil(o api.Object) bool {
	switch v := o.(type) {
	case *api.Workload:
		return v == nil
	case *api.Service:
		return v == nil
	case *api.Secret:
		return v == nil
	}
	return false
}

func mergeLabels(have, want map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// keepAllocated returns want with what the server allocated in have: the
// VIP and the node ports (matched by port name, else by port number).
func keepAllocated(want, have api.ServiceSpec) api.ServiceSpec {
	out := deepCopy(want)
	if out.VIP == "" && !out.Headless {
		out.VIP = have.VIP
	}
	for i := range out.Ports {
		if out.Ports[i].NodePort != 0 || !out.External {
			continue
		}
		for _, hp := range have.Ports {
			if hp.NodePort != 0 && (hp.Name != "" && hp.Name == out.Ports[i].Name || hp.Name == "" && hp.Port == out.Ports[i].Port) {
				out.Ports[i].NodePort = hp.NodePort
			}
		}
	}
	return out
}

// describe renders a plan for tests and logs.
func (p Plan) String() string {
	var b strings.Builder
	line := func(verb string, o api.Object, extra string) {
		k := api.KeyOf(o)
		fmt.Fprintf(&b, "%s %s %s%s\n", verb, k.Kind.Singular(), k.Name, extra)
	}
	for _, o := range p.Create {
		line("create", o, "")
	}
	for _, u := range p.Update {
		extra := ""
		if u.Drift {
			extra = " (drift)"
		}
		line("update", u.Object, extra)
	}
	for _, o := range p.Delete {
		line("delete", o, "")
	}
	for _, e := range p.Events {
		fmt.Fprintf(&b, "event %s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
