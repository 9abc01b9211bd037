package app

import (
	"maps"
	"slices"

	"github.com/capstanhq/capstan/apiserver/api"
)

// DesiredSecrets returns the Secrets an App describes, owned by it. Their
// values stay sealed: the controller copies them from the App and never
// opens them.
func DesiredSecrets(a *api.App) []*api.Secret {
	ns := Namespace(a)
	var out []*api.Secret
	for _, as := range a.Spec.Secrets {
		s := api.KindSecret.New().(*api.Secret)
		s.Metadata = objectMeta(a, ns, as.Name)
		s.Spec = deepCopy(as.Spec)
		s.Metadata.Annotations = map[string]string{AnnotationSpecHash: specHash(s.Spec)}
		out = append(out, s)
	}
	return out
}

// ComputeSecrets plans the Secrets of App a given those observed in its
// namespace: create, update (reverting drift), prune.
func ComputeSecrets(a *api.App, have []*api.Secret) Plan {
	var p Plan
	byName := map[string]*api.Secret{}
	for _, s := range have {
		byName[s.Metadata.Name] = s
	}
	desired := map[string]bool{}
	for _, s := range DesiredSecrets(a) {
		desired[s.Metadata.Name] = true
		var h api.Object
		if cur := byName[s.Metadata.Name]; cur != nil {
			h = cur
		}
		p.plan(a, s, h, func(have api.Object) (api.Object, bool) {
			h := have.(*api.Secret)
			if api.EqualJSON(h.Spec, s.Spec) {
				return nil, false
			}
			u := api.Clone(h)
			u.Spec = s.Spec
			return u, true
		})
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if s := byName[name]; !desired[name] && api.OwnedBy(s, api.KindApp, a.Metadata.UID) && !api.Terminating(s) {
			p.Delete = append(p.Delete, s)
		}
	}
	return p
}

// then appends q's steps after p's: secrets are written before the
// workloads whose pods read them.
func (p Plan) then(q Plan) Plan {
	p.Create = append(p.Create, q.Create...)
	p.Update = append(p.Update, q.Update...)
	p.Delete = append(p.Delete, q.Delete...)
	p.Events = append(p.Events, q.Events...)
	return p
}
