package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/schema"
)

// Revision is one side of the comparison: what the ref named and the
// descriptors loaded from its tree.
type Revision struct {
	// Ref is what the user asked for ("main", "HEAD", a SHA).
	Ref string
	// Commit is the SHA the ref resolved to; may be empty.
	Commit string
	// Result is the tree loaded by schema.Load; nil stands for a tree with
	// no descriptors (the descriptor path does not exist there).
	Result *schema.Result
}

// Live is the cluster the dry run places pods on: every node, every pod
// and every persistent volume (of every app), as listed from the API;
// and every App, whose repository owns it.
type Live struct {
	Nodes []*api.Node
	Pods  []*api.Pod
	// Apps say which repository owns each app (the label git sync puts
	// on them): with Input.Repo, an app head declares that another
	// repository owns is refused, as sync refuses it.
	Apps []*api.App
	// Volumes pin the replicas of ordered workloads to the nodes that
	// hold their data, as in the live scheduler.
	Volumes []*api.PersistentVolume
}

// Input is everything Compute looks at.
type Input struct {
	Base, Head Revision
	// ChangedFiles are the files (repository-relative) that differ between
	// base and head under the descriptor path; only counted in the summary.
	ChangedFiles []string
	// Live is nil when no server was reachable: capacity is not checked.
	Live *Live
	// LiveNote says why Live is nil, shown after "capacity not checked";
	// default "no server reachable".
	LiveNote string
	// Prune is the repository's guard against mass deletion (its config's
	// prune settings); the zero value is the default policy.
	Prune gitsync.PrunePolicy
	// Repo is the repository's name in the server's config; "" when not
	// known, and then apps of other repositories are not looked for.
	Repo string
}

// AppStatus is what a change does to one app.
type AppStatus string

// App statuses. Rejected: head declares the app but it is invalid (or the
// tree has errors that may hide it), so sync refuses it and its last good
// revision keeps running, if it has one. NotOwned: head no longer declares the app, but
// another repository (or the API) owns it on the cluster, so sync leaves
// it alone: it is not this repository's to remove.
const (
	AppAdded     AppStatus = "added"
	AppRemoved   AppStatus = "removed"
	AppChanged   AppStatus = "changed"
	AppUnchanged AppStatus = "unchanged"
	AppRejected  AppStatus = "rejected"
	AppNotOwned  AppStatus = "not this repository's"
)

// Op is what happens to an object or a field.
type Op string

// Ops.
const (
	Added   Op = "added"
	Removed Op = "removed"
	Changed Op = "changed"
)

// Plan is what a change does.
type Plan struct {
	Base, Head   Revision
	ChangedFiles []string
	// Errors is every error of head (of apps and of the repository),
	// sorted by file, line and column. Head is valid when it is empty.
	Errors []api.SourceError
	// Apps is every app of base or head, sorted by name.
	Apps []App
	// Held says why sync would hold the commit rather than apply it (it
	// deletes too many of the repository's apps, gitsync.PrunePolicy);
	// "" when it would not.
	Held string
	// Capacity is the scheduling dry run; nil when it was not run, and
	// then CapacityNote says why.
	Capacity     *Capacity
	CapacityNote string
}

// Valid reports whether head has no error: sync would accept every app.
func (p *Plan) Valid() bool { return len(p.Errors) == 0 }

// Count returns how many apps have status s.
func (p *Plan) Count(s AppStatus) int {
	n := 0
	for _, a := range p.Apps {
		if a.Status == s {
			n++
		}
	}
	return n
}

// App is what a change does to one app.
type App struct {
	Name   string
	Status AppStatus
	// Objects are the Workloads and Services added, changed or removed,
	// workloads first, each sorted by name. Empty for a rejected app:
	// nothing of it changes.
	Objects []Object
	// Errors reject the app at head.
	Errors []api.SourceError
	// Note explains a status that needs it ("invalid at base: ...").
	Note string
}

// Object is one Workload or Service added, changed or removed.
type Object struct {
	Kind api.Kind
	Name string
	Op   Op
	// Fields are the changes of a changed object, or a description of an
	// added or removed one (replicas, images, ports).
	Fields []Field
}

// Field is one field-level change, "frontend/web: image a:v1 -> :v2".
type Field struct {
	// Subject is the workload or service ("frontend"), or the workload
	// and container ("frontend/web").
	Subject string
	// Name is the field: "replicas", "image", "env BACKEND_URL",
	// "port http", "cpu request", "container sidecar", ...
	Name string
	// Op is Added or Removed when the field appears or goes, Changed when
	// its value does, and "" when it describes an added or removed object.
	Op       Op
	Old, New string
	// Note says what the change does beyond its values ("volumes made
	// before keep 1Gi, ..."); printed after them and never cut.
	Note string
	// Diff is a unified diff of a changed file's text ("" otherwise).
	Diff string
}

// Compute compares base and head and, when in.Live is set, dry-runs the
// scheduling of the pods the change needs.
func Compute(in Input) *Plan {
	p := &Plan{Base: in.Base, Head: in.Head, ChangedFiles: in.ChangedFiles}
	base, head := results(in.Base.Result), results(in.Head.Result)
	var repoErrs []api.SourceError
	if in.Head.Result != nil {
		p.Errors = in.Head.Result.AllErrors()
		repoErrs = in.Head.Result.Errors
	}
	names := map[string]bool{}
	for n := range base {
		names[n] = true
	}
	for n := range head {
		names[n] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		b, inBase := base[name]
		h, inHead := head[name]
		p.Apps = append(p.Apps, compareApp(name, b, inBase, h, inHead, repoErrs))
	}
	if in.Live != nil && in.Repo != "" {
		markForeign(p, head, in.Live.Apps, in.Repo)
	}
	if in.Live != nil {
		noteWhatRuns(p, in.Live.Apps, in.Repo)
	}
	if removed := p.Count(AppRemoved); removed > 0 {
		// Sync counts the apps it has; base's are the closest the plan
		// knows.
		if hold, _ := in.Prune.Holds(len(base), removed); hold {
			p.Held = fmt.Sprintf("held: would delete %d of %d apps (an admin must confirm with capstan sync --allow-prune-all)", removed, len(base))
		}
	}
	if in.Live != nil {
		p.Capacity = dryRun(p, in.Base.Result, in.Head.Result, in.Live)
	} else {
		note := in.LiveNote
		if note == "" {
			note = "no server reachable"
		}
		p.CapacityNote = "capacity not checked (" + note + ")"
	}
	return p
}

// markForeign shows the apps that another repository (or the API) owns
// on the live cluster as sync treats them, naming the owner: one head
// declares, valid or not, is refused (nothing of it changes, and it is
// an error of head); one head no longer declares is not removed, as sync prunes only
// its own repository's apps.
func markForeign(p *Plan, head map[string]schema.AppResult, live []*api.App, repo string) {
	owners := map[string]string{}
	for _, a := range live {
		if a.Metadata.App == a.Metadata.Name {
			owners[a.Metadata.Name] = a.Metadata.Labels[gitsync.LabelRepo]
		}
	}
	added := false
	for i := range p.Apps {
		a := &p.Apps[i]
		owner, live := owners[a.Name]
		if !live || owner == repo {
			continue
		}
		who := "repository " + owner
		if owner == "" {
			who = "the API"
		}
		h, inHead := head[a.Name]
		if !inHead {
			if a.Status == AppRemoved {
				*a = App{Name: a.Name, Status: AppNotOwned, Note: "sync leaves it: " + who + " owns it"}
			}
			continue
		}
		// Invalid or not, sync refuses it as another's: that is what
		// the commit does to it.
		se := api.SourceError{Message: gitsync.ForeignAppMessage(a.Name, owner, repo)}
		se.File, se.Line = h.Position()
		*a = App{Name: a.Name, Status: AppRejected, Errors: []api.SourceError{se}, Note: "sync refuses it: " + who + " owns it"}
		p.Errors = append(p.Errors, se)
		added = true
	}
	if added {
		slices.SortStableFunc(p.Errors, func(x, y api.SourceError) int {
			return cmp.Or(cmp.Compare(x.File, y.File), cmp.Compare(x.Line, y.Line), cmp.Compare(x.Column, y.Column))
		})
	}
}

func results(r *schema.Result) map[string]schema.AppResult {
	out := map[string]schema.AppResult{}
	if r != nil {
		for _, a := range r.Apps {
			out[a.Name] = a
		}
	}
	return out
}

// compareApp decides one app, as git sync would apply it: an invalid app
// at head is rejected whole; an app missing from head is removed only when
// head's tree has no repository-level error (a file that does not parse
// may declare it).
func compareApp(name string, b schema.AppResult, inBase bool, h schema.AppResult, inHead bool, repoErrs []api.SourceError) App {
	a := App{Name: name}
	var baseApp *api.App
	if inBase {
		if b.Valid() {
			baseApp = b.App
		} else {
			a.Note = "invalid at base: compared with an empty app"
		}
	}
	switch {
	case inHead && !h.Valid() && !inBase:
		a.Status, a.Errors, a.Note = AppRejected, h.Errors, noteRejectedNew
		return a
	case inHead && !h.Valid() && !b.Valid():
		a.Status, a.Errors, a.Note = AppRejected, h.Errors, noteRejectedBoth
		return a
	case inHead && !h.Valid():
		a.Status, a.Errors, a.Note = AppRejected, h.Errors, noteRejectedRuns
		return a
	case !inHead && len(repoErrs) > 0:
		a.Status, a.Errors, a.Note = AppRejected, repoErrs, "missing at head while files fail to parse: not removed"
		return a
	case !inHead:
		a.Status = AppRemoved
		a.Objects = diffObjects(baseApp, nil)
		return a
	case !inBase:
		a.Status = AppAdded
	}
	a.Objects = append(diffApp(name, baseApp, h.App), diffObjects(baseApp, h.App)...)
	a.Note = dependsNote(a.Note, h.App)
	if a.Status == "" {
		a.Status = AppChanged
		if len(a.Objects) == 0 {
			a.Status = AppUnchanged
		}
	}
	return a
}

// What sync does with an app invalid at head, and what of it runs then.
const (
	noteRejectedNew  = "sync refuses it; it is new, so nothing of it is deployed until a commit makes it valid"
	noteRejectedRuns = "sync refuses it; the last good revision keeps running"
	noteRejectedBoth = "sync refuses it; it is invalid at base too, so what runs of it is the last revision that applied, if one ever did"
	// noteNothingRuns: the cluster has no revision of the app that applied.
	noteNothingRuns = "sync refuses it; no commit of it has applied on the cluster, so nothing of it is deployed until a commit makes it valid"
)

// noteWhatRuns tells, for each app rejected at head, what of it runs
// on the live cluster rather than what base suggests: base may never
// have applied (invalid there too, or rejected when it was new), and then
// nothing of the app runs. Apps of another repository are left as
// markForeign says.
func noteWhatRuns(p *Plan, live []*api.App, repo string) {
	apps := map[string]*api.App{}
	for _, a := range live {
		if a.Metadata.App == a.Metadata.Name {
			apps[a.Metadata.Name] = a
		}
	}
	for i := range p.Apps {
		a := &p.Apps[i]
		if a.Note != noteRejectedRuns && a.Note != noteRejectedBoth {
			continue
		}
		cur, ok := apps[a.Name]
		switch {
		case ok && repo != "" && cur.Metadata.Labels[gitsync.LabelRepo] != repo:
		case !ok || cur.Status.NeverApplied():
			a.Note = noteNothingRuns
		case cur.Status.SyncedCommit != "":
			a.Note = fmt.Sprintf("sync refuses it; the last good revision (commit %s) keeps running", api.ShortCommit(cur.Status.SyncedCommit))
		}
	}
}

// diffObjects compares the objects the app controller would create from
// base and from head (either may be nil).
func diffObjects(base, head *api.App) []Object {
	bw, bs := desired(base)
	hw, hs := desired(head)
	var out []Object
	out = append(out, diffKind(api.KindWorkload, bw, hw, func(name string, o, n *api.Workload) []Field {
		return diffWorkload(name, o.Spec, n.Spec)
	}, describeWorkload)...)
	for i := range out {
		if o := &out[i]; o.Op == Removed {
			o.Fields = append(o.Fields, dataLoss(o.Name, bw[o.Name].Spec.Template.Volumes)...)
		}
	}
	out = append(out, diffKind(api.KindService, bs, hs, func(name string, o, n *api.Service) []Field {
		return diffService(name, o.Spec, n.Spec)
	}, describeService)...)
	out = append(out, diffKind(api.KindSecret, desiredSecrets(base), desiredSecrets(head), diffSecret, describeSecret)...)
	return out
}

func desired(a *api.App) (map[string]*api.Workload, map[string]*api.Service) {
	ws, ss := map[string]*api.Workload{}, map[string]*api.Service{}
	if a == nil {
		return ws, ss
	}
	w, s := app.Desired(a)
	for _, x := range w {
		ws[x.Metadata.Name] = x
	}
	for _, x := range s {
		ss[x.Metadata.Name] = x
	}
	return ws, ss
}

// specOf returns what the app controller compares: the spec.
func specOf(o api.Object) any {
	switch v := o.(type) {
	case *api.Workload:
		return v.Spec
	case *api.Service:
		return v.Spec
	case *api.Secret:
		return v.Spec.Versions // the sealed data differs at every seal
	}
	return nil
}

func diffKind[T api.Object](kind api.Kind, base, head map[string]T,
	diff func(name string, o, n T) []Field, describe func(name string, o T) []Field) []Object {
	names := map[string]bool{}
	for n := range base {
		names[n] = true
	}
	for n := range head {
		names[n] = true
	}
	var out []Object
	for _, name := range slices.Sorted(maps.Keys(names)) {
		o, inBase := base[name]
		n, inHead := head[name]
		switch {
		case !inBase:
			out = append(out, Object{Kind: kind, Name: name, Op: Added, Fields: describe(name, n)})
		case !inHead:
			out = append(out, Object{Kind: kind, Name: name, Op: Removed, Fields: describe(name, o)})
		case !api.EqualJSON(specOf(o), specOf(n)):
			fields := diff(name, o, n)
			if len(fields) == 0 {
				// A difference no field diff names: say so rather than
				// hide it.
				fields = []Field{{Subject: name, Name: "spec", Op: Changed}}
			}
			out = append(out, Object{Kind: kind, Name: name, Op: Changed, Fields: fields})
		}
	}
	return out
}

// diffApp lists the changes of the app's own settings (rollback,
// preview, dependsOn) as one object of kind App; nil when they are equal. An added
// app shows the settings it sets.
func diffApp(name string, base, head *api.App) []Object {
	var b, h api.AppSpec
	if base != nil {
		b = base.Spec
	}
	if head != nil {
		h = head.Spec
	}
	var fields []Field
	str := func(p *api.AppPreview) string {
		if p == nil || !p.Enabled {
			return ""
		}
		return fmt.Sprintf("enabled, ttl %s, %d replicas", p.TTL, p.Replicas)
	}
	for _, f := range []struct{ name, old, new string }{
		{"rollback", b.Rollback, h.Rollback},
		{"preview", str(b.Preview), str(h.Preview)},
		// Sync writes the App when its dependencies change: its pod
		// groups then wait for other apps (or no longer do).
		{"depends on", strings.Join(b.DependsOn, ", "), strings.Join(h.DependsOn, ", ")},
	} {
		switch {
		case f.old == f.new:
		case f.old == "":
			fields = append(fields, Field{Subject: name, Name: f.name, Op: Added, New: f.new})
		case f.new == "":
			fields = append(fields, Field{Subject: name, Name: f.name, Op: Removed, Old: f.old})
		default:
			fields = append(fields, Field{Subject: name, Name: f.name, Op: Changed, Old: f.old, New: f.new})
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return []Object{{Kind: api.KindApp, Name: name, Op: Changed, Fields: fields}}
}
