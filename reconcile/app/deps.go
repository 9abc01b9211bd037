package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// This file is where dependencies (dependsOn) are evaluated, for apps and
// for the pod groups of an app: Waits says what is not yet Available, and
// Plan.Hold keeps the app controller from making or updating what waits.

// Waits returns what app a and its pod groups wait for. appNamed looks an
// App up by name (nil when there is none); workloadsIn returns the
// Workloads of an app namespace. A dependency app is ready when its spec
// is the one a's commit declared (AppSpec.DependsOnSpecs; any spec for a
// dependency of another repository) and each of its pod groups is
// Available at that spec; a pod group is ready when it is Available at
// the spec a declares for it.
func Waits(a *api.App, appNamed func(string) *api.App, workloadsIn func(string) []*api.Workload) []api.DependencyWait {
	var waits []api.DependencyWait
	for _, dep := range a.Spec.DependsOn {
		if why := appWait(a, dep, appNamed(dep), workloadsIn); why != "" {
			waits = append(waits, api.DependencyWait{On: dep, Message: fmt.Sprintf("waiting for %s: %s", dep, why)})
		}
	}
	want, _ := Desired(a)
	wantBy := map[string]*api.Workload{}
	for _, w := range want {
		wantBy[w.Metadata.Name] = w
	}
	haveBy := map[string]*api.Workload{}
	for _, w := range workloadsIn(Namespace(a)) {
		if api.OwnedBy(w, api.KindApp, a.Metadata.UID) {
			haveBy[w.Metadata.Name] = w
		}
	}
	for _, aw := range a.Spec.Workloads {
		for _, dep := range aw.Spec.DependsOn {
			ready, total, why := groupReady(wantBy[dep], haveBy[dep])
			if why != "" {
				waits = append(waits, api.DependencyWait{Group: aw.Name, On: dep,
					Message: fmt.Sprintf("%s is waiting for %s: %s", aw.Name, dep, readyText(ready, total, why))})
			}
		}
	}
	return waits
}

func appWait(a *api.App, name string, dep *api.App, workloadsIn func(string) []*api.Workload) string {
	if dep == nil {
		return "no such app"
	}
	if dep.Status.NeverApplied() {
		return "nothing deployed: its first commit was rejected"
	}
	if want, ok := a.Spec.DependsOnSpecs[name]; ok && api.DependencySpecHash(&dep.Spec) != want {
		return "not yet at this commit's revision"
	}
	want, _ := Desired(dep)
	haveBy := map[string]*api.Workload{}
	for _, w := range workloadsIn(Namespace(dep)) {
		if api.OwnedBy(w, api.KindApp, dep.Metadata.UID) {
			haveBy[w.Metadata.Name] = w
		}
	}
	var ready, total int32
	var first string
	for _, w := range want {
		r, t, why := groupReady(w, haveBy[w.Metadata.Name])
		ready, total = ready+r, total+t
		if why != "" && first == "" {
			first = w.Metadata.Name + ": " + why
		}
	}
	if first == "" {
		return ""
	}
	if total > 0 {
		return fmt.Sprintf("%d/%d ready", ready, total)
	}
	return first
}

func readyText(ready, total int32, why string) string {
	if total > 0 && (why == "" || why == rollingOut) {
		return fmt.Sprintf("%d/%d ready", ready, total)
	}
	if total > 0 {
		return fmt.Sprintf("%d/%d ready (%s)", ready, total, why)
	}
	return why
}

const rollingOut = "rolling out"

// groupReady says whether workload have is Available at the spec of
// want: its ready and desired pod counts, and what is missing ("" when
// ready).
func groupReady(want, have *api.Workload) (ready, total int32, why string) {
	if want == nil {
		return 0, 0, "no such pod group"
	}
	total = want.Spec.Replicas
	if want.Spec.Job != nil {
		total = 1
	}
	if have == nil {
		return 0, total, "not created yet"
	}
	st := have.Status
	switch {
	case want.Spec.EveryNode:
		total = max(st.DesiredReplicas, 1)
	case want.Spec.Job != nil:
		total = 1 // the run of its template
	}
	if have.Metadata.Annotations[AnnotationSpecHash] != want.Metadata.Annotations[AnnotationSpecHash] {
		return 0, total, "not yet at this revision"
	}
	if st.ObservedGeneration < have.Metadata.Generation {
		return 0, total, "change not yet observed"
	}
	avail := api.FindCondition(st.Conditions, api.WorkloadAvailable)
	if want.Spec.Job != nil || want.Spec.EveryNode {
		if avail == nil || avail.Status != api.ConditionTrue {
			msg := "not Available"
			if avail != nil && avail.Message != "" {
				msg = avail.Message
			}
			return st.ReadyReplicas, total, msg
		}
		if want.Spec.EveryNode && st.UpdatedReplicas < st.Replicas {
			// Old pods still ready on every node keep it Available
			// while it rolls: ready means the new template everywhere.
			return min(st.ReadyReplicas, st.UpdatedReplicas), total, rollingOut
		}
		return st.ReadyReplicas, total, ""
	}
	if st.UpdatedReplicas < total || st.AvailableReplicas < total || st.Replicas > total {
		return min(st.AvailableReplicas, st.UpdatedReplicas), total, rollingOut
	}
	return st.AvailableReplicas, total, ""
}

// Hold removes from p the creates and updates of workloads that wait:
// every one when the whole app waits, else those of waiting groups.
// Services, prunes and events stay.
func (p *Plan) Hold(waits []api.DependencyWait) {
	if len(waits) == 0 {
		return
	}
	held := map[string]bool{}
	all := false
	for _, w := range waits {
		if w.Group == "" {
			all = true
		}
		held[w.Group] = true
	}
	holds := func(o api.Object) bool {
		_, isW := o.(*api.Workload)
		return isW && (all || held[o.Meta().Name])
	}
	p.Create = slices.DeleteFunc(p.Create, holds)
	p.Update = slices.DeleteFunc(p.Update, func(u Update) bool { return holds(u.Object) })
}

// WaitsMessage joins the waits' messages.
func WaitsMessage(waits []api.DependencyWait) string {
	var msgs []string
	for _, w := range waits {
		msgs = append(msgs, w.Message)
	}
	return strings.Join(msgs, "; ")
}
