package app

import (
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func depApp(name string, uid string, groups ...api.AppWorkload) *api.App {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: name, App: name, UID: uid}
	a.Spec.Workloads = groups
	return a
}

func group(name string, replicas int32, deps ...string) api.AppWorkload {
	return api.AppWorkload{Name: name, Spec: api.WorkloadSpec{Replicas: replicas, DependsOn: deps,
		Template: api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "x"}}}}}
}

// observedAs is the workload the app controller made for group g of a,
// with its status saying available of its replicas are up to date and
// available.
func observedAs(a *api.App, g string, available int32) *api.Workload {
	ws, _ := Desired(a)
	for _, w := range ws {
		if w.Metadata.Name == g {
			w.Metadata.UID, w.Metadata.Generation = "w-"+g, 1
			w.Status = api.WorkloadStatus{ObservedGeneration: 1, Replicas: w.Spec.Replicas, UpdatedReplicas: w.Spec.Replicas,
				ReadyReplicas: available, AvailableReplicas: available}
			return w
		}
	}
	panic("no group " + g)
}

func waitsText(ws []api.DependencyWait) string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Group+"|"+w.On+"|"+w.Message)
	}
	return strings.Join(out, "\n")
}

func TestWaits(t *testing.T) {
	db := depApp("db", "a-db", group("pg", 2))
	web := depApp("web", "a-web", group("front", 2, "api"), group("api", 1))
	web.Spec.DependsOn = []string{"db"}
	web.Spec.DependsOnSpecs = map[string]string{"db": api.DependencySpecHash(&db.Spec)}
	dbNewer := depApp("db", "a-db", group("pg", 3))

	for _, tc := range []struct {
		name string
		apps map[string]*api.App
		ws   map[string][]*api.Workload
		want string
	}{
		{name: "no dependency app", apps: map[string]*api.App{},
			want: "|db|waiting for db: no such app\nfront|api|front is waiting for api: 0/1 ready (not created yet)"},
		{name: "dependency not ready; the group's dependency not made",
			apps: map[string]*api.App{"db": db}, ws: map[string][]*api.Workload{"db": {observedAs(db, "pg", 1)}},
			want: "|db|waiting for db: 1/2 ready\nfront|api|front is waiting for api: 0/1 ready (not created yet)"},
		{name: "dependency at another revision than the commit's",
			apps: map[string]*api.App{"db": dbNewer}, ws: map[string][]*api.Workload{"db": {observedAs(dbNewer, "pg", 3)}},
			want: "|db|waiting for db: not yet at this commit's revision\nfront|api|front is waiting for api: 0/1 ready (not created yet)"},
		{name: "all ready",
			apps: map[string]*api.App{"db": db},
			ws:   map[string][]*api.Workload{"db": {observedAs(db, "pg", 2)}, "web": {observedAs(web, "api", 1)}}},
		{name: "the group's dependency at an older spec",
			apps: map[string]*api.App{"db": db},
			ws: map[string][]*api.Workload{"db": {observedAs(db, "pg", 2)}, "web": {func() *api.Workload {
				w := observedAs(web, "api", 1)
				w.Metadata.Annotations[AnnotationSpecHash] = "old"
				return w
			}()}},
			want: "front|api|front is waiting for api: 0/1 ready (not yet at this revision)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Waits(web, func(n string) *api.App { return tc.apps[n] }, func(ns string) []*api.Workload { return tc.ws[ns] })
			if g := waitsText(got); g != tc.want {
				t.Errorf("waits:\n%s\nwant:\n%s", g, tc.want)
			}
		})
	}
}

// TestWaitsForARejectedApp: an app whose first commit was rejected
// exists (to show why) without pod groups; an app that depends on it,
// from another repository (no spec to wait for), waits, as it waited
// while no such app existed.
func TestWaitsForARejectedApp(t *testing.T) {
	db := depApp("db", "a-db")
	db.Status.AttemptedCommit, db.Status.LastSyncResult = "c1", api.SyncRejected
	web := depApp("web", "a-web", group("front", 1))
	web.Spec.DependsOn = []string{"db"}
	got := Waits(web, func(string) *api.App { return db }, func(string) []*api.Workload { return nil })
	if want := "|db|waiting for db: nothing deployed: its first commit was rejected"; waitsText(got) != want {
		t.Errorf("waits:\n%s\nwant:\n%s", waitsText(got), want)
	}
}

func TestHold(t *testing.T) {
	web := depApp("web", "a-web", group("front", 2, "api"), group("api", 1))
	web.Spec.Services = []api.AppService{{Name: "front", Spec: api.ServiceSpec{Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromInt(80)}}}}}
	p := Compute(web, nil, nil)
	p.Hold([]api.DependencyWait{{Group: "front", On: "api", Message: "m"}})
	if got := p.String(); got != "create Workload api\ncreate Service front" {
		t.Errorf("group hold: plan\n%s", got)
	}
	p = Compute(web, nil, nil)
	p.Hold([]api.DependencyWait{{On: "db", Message: "m"}})
	if got := p.String(); got != "create Service front" {
		t.Errorf("app hold: plan\n%s", got)
	}
}

// An everyNode group rolling out a new template still has a ready pod of
// the old one on every node, so it stays Available: a group that depends
// on it must wait until every node runs the new template.
func TestWaitsEveryNodeRollout(t *testing.T) {
	agent := group("agent", 0)
	agent.Spec.EveryNode = true
	web := depApp("web", "a-web", agent, group("api", 1, "agent"))
	observed := func(live, updated, ready int32) *api.Workload {
		ws, _ := Desired(web)
		for _, w := range ws {
			if w.Metadata.Name == "agent" {
				w.Metadata.UID, w.Metadata.Generation = "w-agent", 2
				w.Status = api.WorkloadStatus{ObservedGeneration: 2, Replicas: live, DesiredReplicas: 3, UpdatedReplicas: updated,
					ReadyReplicas: ready, AvailableReplicas: ready}
				avail := api.ConditionTrue
				if ready < 3 {
					avail = api.ConditionFalse
				}
				w.Status.Conditions = []api.Condition{{Type: api.WorkloadAvailable, Status: avail}}
				return w
			}
		}
		panic("no group agent")
	}
	for _, tc := range []struct {
		name                 string
		live, updated, ready int32
		want                 string
	}{
		{name: "old template ready on every node", live: 3, updated: 0, ready: 3,
			want: "api|agent|api is waiting for agent: 0/3 ready"},
		{name: "one node left to roll", live: 3, updated: 2, ready: 3,
			want: "api|agent|api is waiting for agent: 2/3 ready"},
		// The old pod of one node gone, its new one not made yet: the
		// wait counts the 3 nodes, not the 2 pods there are.
		{name: "one node between its old and new pod", live: 2, updated: 1, ready: 2,
			want: "api|agent|api is waiting for agent: 2/3 ready (not Available)"},
		{name: "rolled out", live: 3, updated: 3, ready: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := map[string][]*api.Workload{"web": {observed(tc.live, tc.updated, tc.ready)}}
			got := Waits(web, func(string) *api.App { return nil }, func(ns string) []*api.Workload { return ws[ns] })
			if g := waitsText(got); g != tc.want {
				t.Errorf("waits:\n%s\nwant:\n%s", g, tc.want)
			}
		})
	}
}
