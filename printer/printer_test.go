package printer

import (
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 3 * time.Minute: "3m", 5 * time.Hour: "5h", 72 * time.Hour: "3d",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestPodStatus(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		pod  func(p *api.Pod)
		want string
	}{
		{"unscheduled", func(p *api.Pod) {}, "Pending"},
		{"unschedulable", func(p *api.Pod) {
			p.Status.Conditions = []api.Condition{{Type: api.PodScheduled, Status: api.ConditionFalse}}
		}, "Unschedulable"},
		{"bound, nothing reported", func(p *api.Pod) { p.Spec.NodeName = "n1" }, "ContainerCreating"},
		{"crash loop", func(p *api.Pod) {
			p.Spec.NodeName, p.Status.Phase = "n1", api.PodRunning
			p.Status.Containers = []api.ContainerStatus{{State: api.ContainerState{Waiting: &api.WaitingState{Reason: "CrashLoopBackOff"}}}}
		}, "CrashLoopBackOff"},
		{"oom", func(p *api.Pod) {
			p.Spec.NodeName, p.Status.Phase = "n1", api.PodFailed
			p.Status.Containers = []api.ContainerStatus{{State: api.ContainerState{Terminated: &api.TerminatedState{Reason: "OOMKilled"}}}}
		}, "OOMKilled"},
		{"terminating", func(p *api.Pod) { p.Metadata.DeletionRequestedAt = &now }, "Terminating"},
		{"running", func(p *api.Pod) { p.Spec.NodeName, p.Status.Phase = "n1", api.PodRunning }, "Running"},
	}
	for _, tt := range tests {
		p := api.KindPod.New().(*api.Pod)
		tt.pod(p)
		if got := PodStatus(p); got != tt.want {
			t.Errorf("%s: PodStatus = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNodeAddress(t *testing.T) {
	node := func(name, ip string, ready bool) *api.Node {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = name
		if ip != "" {
			n.Status.Addresses = []api.NodeAddress{{Type: "Hostname", Address: name}, {Type: "InternalIP", Address: ip}}
		}
		st := api.ConditionFalse
		if ready {
			st = api.ConditionTrue
		}
		n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: st}}
		return n
	}
	for _, tc := range []struct {
		name  string
		nodes []*api.Node
		want  string
	}{
		{"none", nil, ""},
		{"the first ready by name", []*api.Node{node("c", "10.0.0.3", true), node("a", "10.0.0.1", false), node("b", "10.0.0.2", true)}, "10.0.0.2"},
		{"none ready", []*api.Node{node("b", "10.0.0.2", false), node("a", "10.0.0.1", false)}, "10.0.0.1"},
		{"no address", []*api.Node{node("a", "", true)}, ""},
	} {
		if got := NodeAddress(tc.nodes); got != tc.want {
			t.Errorf("%s: NodeAddress = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTables(t *testing.T) {
	now := time.Now()
	svc := api.KindService.New().(*api.Service)
	svc.Metadata = api.ObjectMeta{Name: "web", App: "shop", CreatedAt: now.Add(-time.Hour)}
	svc.Spec = api.ServiceSpec{VIP: "10.96.0.1", External: true, Ports: []api.ServicePort{{Port: 80, NodePort: 30080}}}
	ep := api.KindEndpoints.New().(*api.Endpoints)
	ep.Spec.Addresses = []api.EndpointAddress{{IP: "10.88.0.2", Ready: true}, {IP: "10.88.0.3"}}
	var b strings.Builder
	if err := Table(&b, api.KindService, []api.Object{svc}, Options{Now: now, ShowApp: true, Endpoints: map[string]*api.Endpoints{"shop/web": ep}, NodeAddress: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// The node port is shown on the node's address, where it answers.
	for _, want := range []string{"APP", "VIP", "shop", "10.96.0.1", "80:30080/TCP", "1/2", "60m", "EXTERNAL", "10.0.0.5:30080"} {
		if !strings.Contains(out, want) {
			t.Errorf("services table lacks %q:\n%s", want, out)
		}
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	n.Spec.Unschedulable = true
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	b.Reset()
	if err := Table(&b, api.KindNode, []api.Object{n}, Options{Now: now, Wide: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Ready,SchedulingDisabled") || !strings.Contains(b.String(), "POD-CIDR") {
		t.Errorf("nodes table:\n%s", b.String())
	}
	// Volume data the node keeps without its object shows, as the
	// operator's to look at.
	n.Spec.Unschedulable = false
	n.Status.Conditions = append(n.Status.Conditions, api.Condition{Type: api.NodeVolumeDataOrphaned, Status: api.ConditionTrue})
	b.Reset()
	if err := Table(&b, api.KindNode, []api.Object{n}, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Ready,OrphanedVolumes") {
		t.Errorf("nodes table with orphaned volume data:\n%s", b.String())
	}
}

// An app whose repository fails to sync shows the Synced condition's
// reason, not the last result "Applied".
func TestAppsTableShowsSyncedCondition(t *testing.T) {
	now := time.Now()
	ok := api.KindApp.New().(*api.App)
	ok.Metadata = api.ObjectMeta{Name: "blog", App: "blog", CreatedAt: now}
	ok.Status = api.AppStatus{LastSyncResult: api.SyncApplied, Conditions: []api.Condition{{Type: "Synced", Status: api.ConditionTrue, Reason: "Synced"}}}
	bad := api.KindApp.New().(*api.App)
	bad.Metadata = api.ObjectMeta{Name: "shop", App: "shop", CreatedAt: now}
	bad.Status = api.AppStatus{LastSyncResult: api.SyncApplied, LastSyncMessage: "v2",
		Conditions: []api.Condition{{Type: "Synced", Status: api.ConditionFalse, Reason: "SyncFailed", Message: "repo demo: fetch: branch main not found"}}}
	var b strings.Builder
	if err := Table(&b, api.KindApp, []api.Object{ok, bad}, Options{Now: now, Wide: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "Applied") || !strings.Contains(lines[2], "SyncFailed") || strings.Contains(lines[2], "Applied") || !strings.Contains(lines[2], "branch main not found") {
		t.Errorf("apps table:\n%s", b.String())
	}
}

// 'capstan get apps' listed every app twice over: "APP NAME" columns,
// "shop shop". An app is its own app, so its table has no APP column;
// the other app-scoped kinds keep theirs.
func TestAppsTableHasNoAppColumn(t *testing.T) {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{Name: "web", App: "shop"}
	for _, tc := range []struct {
		kind   api.Kind
		obj    api.Object
		header string
	}{{api.KindApp, a, "NAME "}, {api.KindWorkload, w, "APP "}} {
		var b strings.Builder
		if err := Table(&b, tc.kind, []api.Object{tc.obj}, Options{Now: time.Now(), ShowApp: true}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(b.String(), "\n")
		if !strings.HasPrefix(lines[0], tc.header) || tc.kind == api.KindApp && strings.Count(lines[1], "shop") != 1 {
			t.Errorf("%s table, want the header to start with %q:\n%s", tc.kind, tc.header, b.String())
		}
	}
}

// A cell with a newline or a tab (an app's sync errors, one per line; an
// event message) broke its row over several lines or shifted its columns,
// so scripts reading the table misread it. Each object is one line.
func TestTableOneLinePerObject(t *testing.T) {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	a.Status.Conditions = []api.Condition{{Type: "Synced", Status: api.ConditionFalse, Reason: "SyncFailed",
		Message: "a.cue:1:2: apps.shop: bad\nb.cue:3:4: apps.shop: worse\r\n"}}
	e := api.KindEvent.New().(*api.Event)
	e.Metadata = api.ObjectMeta{Name: "e1", App: "shop"}
	e.Spec.Reason, e.Spec.Message = "Failed", "pull\tfailed:\nno such image"
	for _, tc := range []struct {
		kind api.Kind
		obj  api.Object
	}{{api.KindApp, a}, {api.KindEvent, e}} {
		var b strings.Builder
		if err := Table(&b, tc.kind, []api.Object{tc.obj, tc.obj}, Options{Wide: true, ShowApp: true, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 3 || lines[1] != lines[2] {
			t.Errorf("%s: %d lines, want a header and one line per object:\n%s", tc.kind, len(lines), b.String())
		}
		if !strings.Contains(lines[1], "bad b.cue") && !strings.Contains(lines[1], "pull failed: no such image") {
			t.Errorf("%s: the message is not on its row:\n%s", tc.kind, b.String())
		}
	}
}

// get events listed events in the store's order of their names (by
// object, a pod's FailedScheduling before the app's SyncRejected that
// came first); they are listed oldest first, the last seen at the bottom.
func TestEventsTableOldestFirst(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ev := func(name, reason string, ago time.Duration) api.Object {
		e := api.KindEvent.New().(*api.Event)
		e.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		e.Spec = api.EventSpec{Object: api.ObjectRef{Kind: api.KindPod, App: "shop", Name: name}, Type: api.EventWarning, Reason: reason, LastSeen: now.Add(-ago)}
		return e
	}
	objs := []api.Object{ev("a", "Third", time.Minute), ev("b", "First", time.Hour), ev("c", "Second", 10*time.Minute)}
	var b strings.Builder
	if err := Table(&b, api.KindEvent, objs, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n")[1:] {
		reasons = append(reasons, strings.Fields(l)[2])
	}
	if got := strings.Join(reasons, ","); got != "First,Second,Third" {
		t.Errorf("events in order %s, want First,Second,Third:\n%s", got, b.String())
	}
	if objs[0].(*api.Event).Spec.Reason != "Third" {
		t.Error("Table reordered its caller's slice")
	}
}

// An event repeated 10,000 times read "0s" in get events, like one seen
// once (its count only under -o wide), and its object "Pod/web-1", which
// --for and describe did not take; now "5s (x10000 over 17m)" and
// "pod/web-1", as kubectl events prints them.
func TestEventsTableCountAndObject(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	e := api.KindEvent.New().(*api.Event)
	e.Metadata = api.ObjectMeta{Name: "web-1-x", App: "shop"}
	e.Spec = api.EventSpec{Object: api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1"}, Type: api.EventWarning, Reason: "Unhealthy",
		Message: "probe failed", Count: 10000, FirstSeen: now.Add(-17 * time.Minute), LastSeen: now.Add(-5 * time.Second)}
	once := api.Clone(e)
	once.Spec.Count, once.Spec.FirstSeen, once.Spec.Reason = 1, once.Spec.LastSeen, "Killing"
	var b strings.Builder
	if err := Table(&b, api.KindEvent, []api.Object{e, once}, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "5s (x10000 over 17m)") || !strings.Contains(lines[1], " pod/web-1 ") ||
		!strings.HasPrefix(lines[2], "5s ") || strings.Contains(lines[2], "(x") {
		t.Errorf("events table:\n%s\nwant the repeated one's LAST SEEN to be 5s (x10000 over 17m), the other's 5s, OBJECT pod/web-1", b.String())
	}
}

// TestEventsAboutMatchesUID: describe of an ordered replica made again
// (same name, new UID) leaves out the events of the earlier one, and keeps
// events that name no UID.
func TestEventsAboutMatchesUID(t *testing.T) {
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata = api.ObjectMeta{App: "db", Name: "kv-0", UID: "new"}
	ev := func(name, uid, reason string) api.Object {
		return &api.Event{Metadata: api.ObjectMeta{App: "db", Name: name},
			Spec: api.EventSpec{Object: api.ObjectRef{Kind: api.KindPod, App: "db", Name: "kv-0", UID: uid}, Reason: reason}}
	}
	got := EventsAbout(pod, []api.Object{ev("a", "old", "BackOff"), ev("b", "new", "Unhealthy"), ev("c", "", "Evicted"),
		&api.Event{Metadata: api.ObjectMeta{App: "db", Name: "d"}, Spec: api.EventSpec{Object: api.ObjectRef{Kind: api.KindPod, App: "db", Name: "kv-1", UID: "new"}}}})
	var reasons []string
	for _, e := range got {
		reasons = append(reasons, e.Spec.Reason)
	}
	if strings.Join(reasons, ",") != "Unhealthy,Evicted" {
		t.Errorf("events about kv-0 (uid new): %v, want [Unhealthy Evicted]", reasons)
	}
}

// TestDescribeNodeSaysEventsAreNotStored: events about nodes are only
// logged, so describe of a node that was NotReady must not claim there
// were none.
func TestDescribeNodeSaysEventsAreNotStored(t *testing.T) {
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	var b strings.Builder
	if err := Describe(&b, n, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "<none>") || !strings.Contains(out, "server's log") {
		t.Errorf("describe node:\n%s\nwant the Events section to say node events are in the server's log, not <none>", out)
	}
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{App: "a", Name: "p"}
	b.Reset()
	if err := Describe(&b, p, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Events:\n  <none>") {
		t.Errorf("describe pod without events:\n%s\nwant Events: <none>", b.String())
	}
}

// A pull request's preview App says whose preview it is: the head it
// runs, "Preview #N" and, wide, the app, pull request and repository and
// when it goes (it showed <none> for its commit and sync, like an app
// nothing synced).
func TestAppsTableShowsPreview(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop-pr-42", App: "shop-pr-42", CreatedAt: now,
		Labels: map[string]string{api.LabelPreviewOf: "shop", api.LabelPreviewRepo: "deploy", api.LabelPreviewPR: "42"},
		Annotations: map[string]string{api.AnnotationPreviewHead: "0123456789abcdef0123456789abcdef01234567",
			api.AnnotationPreviewExpires: now.Add(72 * time.Hour).Format(time.RFC3339)}}
	a.Status.Health, a.Status.HealthMessage = api.HealthHealthy, "1/1 ready"
	var b strings.Builder
	if err := Table(&b, api.KindApp, []api.Object{a}, Options{Now: now, Wide: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{api.ShortCommit("0123456789abcdef0123456789abcdef01234567"), "Preview #42",
		"preview of shop for pull request #42 of deploy, deleted in 3d; 1/1 ready"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("apps table without %q:\n%s", want, b.String())
		}
	}
}

// get nodes showed no room for volumes, though the scheduler places new
// volumes by it; -o wide shows it as free of capacity, rounded down.
func TestNodesWideVolumeRoom(t *testing.T) {
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	old := api.Clone(n)
	old.Metadata.Name = "n0"
	n.Status.VolumeStorage = &api.NodeVolumeStorage{Capacity: api.MustParseQuantity("50Gi"), Available: api.NewQuantity(39_999_999_999, api.BinarySI)}
	var b strings.Builder
	if err := Table(&b, api.KindNode, []api.Object{old, n}, Options{Wide: true, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[0], "VOLUME-ROOM") || !strings.HasSuffix(strings.TrimSpace(lines[1]), "<none>") || !strings.HasSuffix(strings.TrimSpace(lines[2]), "37.2Gi/50Gi") {
		t.Errorf("nodes table:\n%s", b.String())
	}
	for n, want := range map[int64]string{0: "0", 1023: "1023", 1 << 20: "1Mi", 1<<30 + 1<<29: "1.5Gi", 1<<30 - 1: "1023.9Mi", 3 << 40: "3Ti", -5: "0"} {
		if got := bytesDown(n); got != want {
			t.Errorf("bytesDown(%d) = %q, want %q", n, got, want)
		}
	}
}
