package plan

import (
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// scenario is one script's state: the two trees and the live cluster.
type scenario struct {
	trees map[string]fstest.MapFS // "base", "head"
	live  *Live
}

// TestPlan runs the golden scenarios in testdata (rewrite the expected
// output with -rewrite). Commands:
//
//	file name=PATH side=(base[,head]) [delete]   input: the file's content
//	node name=N cpu=Q memory=Q [pods=K] [notready] [cordoned] [labels=(k=v,...)]
//	pod app=A name=P workload=W node=N [cpu=Q] [memory=Q] [hostport=K]
//	volume app=A name=V node=N                     a persistent volume on node N
//	app name=A [repo=R] [synced=SHA] [never-applied] a live App, owned by repository R (none: made through the API),
//	                                               running SHA, or nothing (its first commit was rejected)
//	plan [format=text|markdown] [path=DIR] [repo=R]  R: the repository planned
//
// Nodes and pods make the cluster live: plan then dry-runs the scheduling;
// without them it prints that capacity was not checked.
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &scenario{trees: map[string]fstest.MapFS{"base": {}, "head": {}}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "file":
				return s.file(t, d)
			case "node":
				return s.node(t, d)
			case "pod":
				return s.pod(t, d)
			case "volume":
				return s.volume(t, d)
			case "app":
				return s.app(t, d)
			case "plan":
				return s.plan(t, d)
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}

func (s *scenario) file(t *testing.T, d *datadriven.TestData) string {
	var name string
	var sides []string
	d.ScanArgs(t, "name", &name)
	d.ScanArgs(t, "side", &sides)
	for _, side := range sides {
		tree, ok := s.trees[side]
		if !ok {
			t.Fatalf("%s: side %q: want base or head", d.Pos, side)
		}
		if d.HasArg("delete") {
			delete(tree, name)
			continue
		}
		tree[name] = &fstest.MapFile{Data: []byte(d.Input + "\n"), Mode: 0o644}
	}
	return ""
}

func (s *scenario) cluster() *Live {
	if s.live == nil {
		s.live = &Live{}
	}
	return s.live
}

func quantityArg(t *testing.T, d *datadriven.TestData, key string) api.Quantity {
	var v string
	if !d.MaybeScanArgs(t, key, &v) {
		return api.Quantity{}
	}
	q, err := api.ParseQuantity(v)
	if err != nil {
		t.Fatalf("%s: %s=%s: %v", d.Pos, key, v, err)
	}
	return q
}

func (s *scenario) node(t *testing.T, d *datadriven.TestData) string {
	n := api.KindNode.New().(*api.Node)
	d.ScanArgs(t, "name", &n.Metadata.Name)
	n.Status.Allocatable.CPU = quantityArg(t, d, "cpu")
	n.Status.Allocatable.Memory = quantityArg(t, d, "memory")
	d.MaybeScanArgs(t, "pods", &n.Status.Allocatable.Pods)
	if d.HasArg("disk") {
		// The agent's report of the room for volumes on a 100Gi disk.
		n.Status.VolumeStorage = &api.NodeVolumeStorage{Capacity: api.MustParseQuantity("100Gi"), Available: quantityArg(t, d, "disk")}
	}
	ready := api.ConditionTrue
	if d.HasArg("notready") {
		ready = api.ConditionFalse
	}
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: ready}}
	n.Spec.Unschedulable = d.HasArg("cordoned")
	var labels []string
	if d.MaybeScanArgs(t, "labels", &labels) {
		n.Metadata.Labels = map[string]string{}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			n.Metadata.Labels[k] = v
		}
	}
	s.cluster().Nodes = append(s.cluster().Nodes, n)
	return ""
}

func (s *scenario) pod(t *testing.T, d *datadriven.TestData) string {
	p := api.KindPod.New().(*api.Pod)
	var workload string
	d.ScanArgs(t, "app", &p.Metadata.App)
	d.ScanArgs(t, "name", &p.Metadata.Name)
	d.ScanArgs(t, "workload", &workload)
	d.ScanArgs(t, "node", &p.Spec.NodeName)
	p.Metadata.Labels = map[string]string{api.LabelApp: p.Metadata.App, api.LabelWorkload: workload}
	p.Metadata.Owner = &api.OwnerRef{Kind: api.KindWorkload, Name: workload, UID: "uid-" + workload}
	p.Spec.Containers = []api.Container{{Name: "c", Image: "x"}}
	p.Spec.Containers[0].Resources.Requests.CPU = quantityArg(t, d, "cpu")
	p.Spec.Containers[0].Resources.Requests.Memory = quantityArg(t, d, "memory")
	var hostPort int
	if d.MaybeScanArgs(t, "hostport", &hostPort) {
		p.Spec.Containers[0].Ports = []api.ContainerPort{{Name: "p", Port: int32(hostPort), HostPort: int32(hostPort)}}
	}
	p.Status.Phase = api.PodRunning
	s.cluster().Pods = append(s.cluster().Pods, p)
	return ""
}

func (s *scenario) volume(t *testing.T, d *datadriven.TestData) string {
	v := api.KindVolume.New().(*api.PersistentVolume)
	d.ScanArgs(t, "app", &v.Metadata.App)
	d.ScanArgs(t, "name", &v.Metadata.Name)
	d.ScanArgs(t, "node", &v.Spec.NodeName)
	s.cluster().Volumes = append(s.cluster().Volumes, v)
	return ""
}

func (s *scenario) app(t *testing.T, d *datadriven.TestData) string {
	a := api.KindApp.New().(*api.App)
	d.ScanArgs(t, "name", &a.Metadata.Name)
	a.Metadata.App = a.Metadata.Name
	var repo string
	if d.MaybeScanArgs(t, "repo", &repo) {
		a.Metadata.Labels = map[string]string{gitsync.LabelRepo: repo}
	}
	d.MaybeScanArgs(t, "synced", &a.Status.SyncedCommit)
	if d.HasArg("never-applied") {
		// As sync makes an app whose first commit it rejected.
		a.Status.LastSyncResult, a.Status.AttemptedCommit = api.SyncRejected, "0123456789abcdef"
	}
	s.cluster().Apps = append(s.cluster().Apps, a)
	return ""
}

func load(t *testing.T, fsys fs.FS, dir string) *schema.Result {
	if dir != "" {
		if _, err := fs.Stat(fsys, dir); err != nil {
			return nil
		}
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		fsys = sub
	}
	res, err := schema.Load(fsys, schema.LoadOptions{PathPrefix: dir})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	schema.ResolveFiles(fsys, res, schema.ResolveOptions{PathPrefix: dir}) // as readRevision
	return res
}

// changed lists the paths whose content differs between the trees.
func changed(a, b fstest.MapFS) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(unionKeys(a, b))) {
		fa, fb := a[name], b[name]
		if fa == nil || fb == nil || string(fa.Data) != string(fb.Data) {
			out = append(out, name)
		}
	}
	return out
}

func (s *scenario) plan(t *testing.T, d *datadriven.TestData) string {
	format, dir, repo := "text", "", ""
	d.MaybeScanArgs(t, "format", &format)
	d.MaybeScanArgs(t, "path", &dir)
	d.MaybeScanArgs(t, "repo", &repo)
	p := Compute(Input{
		Base:         Revision{Ref: "main", Commit: "0123456789abcdef", Result: load(t, s.trees["base"], dir)},
		Head:         Revision{Ref: "feature", Commit: "fedcba9876543210", Result: load(t, s.trees["head"], dir)},
		ChangedFiles: changed(s.trees["base"], s.trees["head"]),
		Live:         s.live,
		Repo:         repo,
	})
	switch format {
	case "text":
		return RenderText(p)
	case "markdown":
		return RenderMarkdown(p)
	}
	t.Fatalf("%s: format %q: want text or markdown", d.Pos, format)
	return ""
}

// TestSameRevisionChangesNothing: a plan of a tree against itself is
// valid, has every app unchanged and needs no pod, on any cluster.
func TestSameRevisionChangesNothing(t *testing.T) {
	res := load(t, os.DirFS("../examples/repo"), "")
	if len(res.Apps) == 0 {
		t.Fatal("the example repository declares no app")
	}
	live := &Live{Nodes: []*api.Node{api.KindNode.New().(*api.Node)}}
	p := Compute(Input{Base: Revision{Ref: "a", Result: res}, Head: Revision{Ref: "a", Result: res}, Live: live})
	if !p.Valid() {
		t.Fatalf("errors: %v", p.Errors)
	}
	for _, a := range p.Apps {
		if a.Status != AppUnchanged || len(a.Objects) > 0 {
			t.Errorf("app %s: %s with %d objects, want unchanged", a.Name, a.Status, len(a.Objects))
		}
	}
	if pods, _ := p.Capacity.Pods(); pods != 0 {
		t.Errorf("%d pods to place, want 0", pods)
	}
}

// TestEveryTemplateChangeIsNamed: whatever changes in a workload's spec,
// the plan names at least one field, never an empty "changed".
func TestEveryTemplateChangeIsNamed(t *testing.T) {
	base := api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "i:v1"}}}}
	tests := []struct {
		name   string
		change func(*api.WorkloadSpec)
		want   string
	}{
		{"command", func(w *api.WorkloadSpec) { w.Template.Containers[0].Command = []string{"/bin/app", "-v"} }, `c/c: command added (["/bin/app","-v"])`},
		{"working dir", func(w *api.WorkloadSpec) { w.Template.Containers[0].WorkingDir = "/srv" }, "c/c: working dir added (/srv)"},
		{"mount", func(w *api.WorkloadSpec) {
			w.Template.Containers[0].VolumeMounts = []api.VolumeMount{{Name: "spool", MountPath: "/spool", ReadOnly: true}}
		}, "c/c: mount spool added (/spool (read-only))"},
		{"liveness", func(w *api.WorkloadSpec) {
			w.Template.Containers[0].Liveness = &api.Probe{TCP: &api.TCPProbe{Port: api.FromInt(5432)}, PeriodSeconds: 10}
		}, "c/c: liveness added (tcp on 5432, period 10s)"},
		{"node selector", func(w *api.WorkloadSpec) { w.Template.NodeSelector = map[string]string{"disk": "ssd"} }, "c: node selector disk added (ssd)"},
		{"restart policy", func(w *api.WorkloadSpec) { w.Template.RestartPolicy = api.RestartNever }, "c: restart policy added (Never)"},
		{"max surge", func(w *api.WorkloadSpec) { w.Strategy.MaxSurge = api.FromString("50%") }, "c: max surge added (50%)"},
		{"host port", func(w *api.WorkloadSpec) {
			w.Template.Containers[0].Ports = []api.ContainerPort{{Name: "dns", Port: 53, Protocol: api.ProtocolUDP, HostPort: 53}}
		}, "c/c: port dns added (53/UDP host 53)"},
		{"ordered", func(w *api.WorkloadSpec) { w.Ordered = true }, "c: ordered no -> yes"},
		{"persistent volume", func(w *api.WorkloadSpec) {
			w.Template.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi"), Reclaim: api.ReclaimRetain}}}
		}, "c: volume data added (persistent 1Gi, reclaim retain); a replica with no kept volume of that name starts on a new empty one (no data is copied from another volume)"},
		{"container removed", func(w *api.WorkloadSpec) {
			w.Template.Containers = []api.Container{{Name: "d", Image: "i:v1"}}
		}, "c: container c removed (was i:v1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := base
			head.Template.Containers = slices.Clone(base.Template.Containers)
			tt.change(&head)
			var lines []string
			for _, f := range diffWorkload("c", base, head) {
				lines = append(lines, f.Line())
			}
			if !slices.Contains(lines, tt.want) {
				t.Errorf("changes %q lack %q", lines, tt.want)
			}
		})
	}
}

// The plan applies the repository's prune policy as sync does: the
// default holds a commit deleting more than half of the apps, allowAll
// and a larger maxShare let it through.
func TestPlanPruneHold(t *testing.T) {
	apps := func(names ...string) *schema.Result {
		src := ""
		for _, n := range names {
			src += "apps: " + n + ": pods: p: containers: c: image: \"x\"\n"
		}
		res, err := schema.Load(fstest.MapFS{"a.cue": {Data: []byte(src)}}, schema.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	base, head := apps("a", "b", "c"), apps("a")
	for _, tt := range []struct {
		name   string
		policy gitsync.PrunePolicy
		head   *schema.Result
		want   string
	}{
		{"default", gitsync.PrunePolicy{}, head, "held: would delete 2 of 3 apps (an admin must confirm with capstan sync --allow-prune-all)"},
		{"allow all", gitsync.PrunePolicy{AllowAll: true}, head, ""},
		{"max share", gitsync.PrunePolicy{MaxShare: 0.7}, head, ""},
		{"one of three", gitsync.PrunePolicy{}, apps("a", "b"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(Input{Base: Revision{Result: base}, Head: Revision{Result: tt.head}, Prune: tt.policy})
			if p.Held != tt.want {
				t.Errorf("Held = %q, want %q", p.Held, tt.want)
			}
		})
	}
}
