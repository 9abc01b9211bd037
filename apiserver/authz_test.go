package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
)

// A write the role may not make is refused before its body is read: 403
// whatever the body holds, never 400 for a body the caller had no right to
// send.
func TestForbiddenBeforeBody(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	if _, err := c.Client.Create(ctx, node("n2")); err != nil {
		t.Fatal(err)
	}
	viewer, _, _ := c.Server.Tokens().Create("viewer", "", 0, time.Now())
	n1, _, _ := c.Server.Tokens().Create("node:n1", "", 0, time.Now())
	garbage := []byte(`{"kind":"Pod",`)
	tests := []struct{ name, token, method, path string }{
		{"viewer creates", viewer, "POST", "/api/v1/pods"},
		{"viewer updates", viewer, "PUT", "/api/v1/pods/shop/a"},
		{"viewer updates a status", viewer, "PUT", "/api/v1/pods/shop/a/status"},
		{"viewer creates an event", viewer, "POST", "/api/v1/events"},
		{"viewer runs a transaction", viewer, "POST", "/api/v1/txn"},
		{"node creates a pod", n1, "POST", "/api/v1/pods"},
		{"node creates an app", n1, "POST", "/api/v1/apps"},
		{"node updates another node", n1, "PUT", "/api/v1/nodes/n2"},
		{"node updates another node's status", n1, "PUT", "/api/v1/nodes/n2/status"},
		{"node updates a service", n1, "PUT", "/api/v1/services/shop/web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := raw(t, c, tt.token, tt.method, tt.path, garbage); code != 403 {
				t.Fatalf("code %d, want 403: %s", code, body)
			}
		})
	}
}

func event(app, name string, about api.ObjectRef) *api.Event {
	e := api.KindEvent.New().(*api.Event)
	e.Metadata = api.ObjectMeta{Name: name, App: app}
	now := time.Now()
	e.Spec = api.EventSpec{Object: about, Type: api.EventWarning, Reason: "Test", Message: "m", Count: 1, FirstSeen: now, LastSeen: now}
	return e
}

// A node records events only about itself, the pods bound to it and the
// persistent volumes on it.
func TestNodeEvents(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	n1 := c.Token(t, "node:n1")
	for _, p := range []*api.Pod{pod("shop", "mine", "n1"), pod("shop", "theirs", "n2"), pod("shop", "pending", "")} {
		if _, err := c.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []struct{ name, node string }{{"db-0-data", "n1"}, {"db-1-data", "n2"}} {
		pv := api.KindVolume.New().(*api.PersistentVolume)
		pv.Metadata = api.ObjectMeta{App: "shop", Name: v.name}
		ordinal, _ := strconv.Atoi(v.name[3:4])
		pv.Spec = api.VolumeSpec{Workload: "db", Volume: "data", Ordinal: int32(ordinal), Size: api.MustParseQuantity("1Gi"), Reclaim: api.ReclaimRetain, NodeName: v.node}
		if _, err := c.Client.Create(ctx, pv); err != nil {
			t.Fatal(err)
		}
	}
	podRef := func(app, name string) api.ObjectRef { return api.ObjectRef{Kind: api.KindPod, App: app, Name: name} }
	volRef := func(name string) api.ObjectRef { return api.ObjectRef{Kind: api.KindVolume, App: "shop", Name: name} }
	// An event the scheduler made about another node's pod.
	if _, err := c.Client.Create(ctx, event("shop", "theirs-sched", podRef("shop", "theirs"))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ev      *api.Event
		allowed bool
	}{
		{"its node", event("shop", "n1-a", api.ObjectRef{Kind: api.KindNode, Name: "n1"}), true},
		{"a pod bound to it", event("shop", "mine-a", podRef("shop", "mine")), true},
		{"another node", event("shop", "n2-a", api.ObjectRef{Kind: api.KindNode, Name: "n2"}), false},
		{"a pod bound elsewhere", event("shop", "theirs-a", podRef("shop", "theirs")), false},
		{"an unscheduled pod", event("shop", "pending-a", podRef("shop", "pending")), false},
		{"a missing pod", event("shop", "ghost-a", podRef("shop", "ghost")), false},
		{"its pod, event in another app", event("other", "mine-b", podRef("shop", "mine")), false},
		{"a persistent volume on it (grown)", event("shop", "vol-a", volRef("db-0-data")), true},
		{"a persistent volume on another node", event("shop", "vol-b", volRef("db-1-data")), false},
		{"a missing persistent volume", event("shop", "vol-c", volRef("db-2-data")), false},
		{"an app", event("shop", "app-a", api.ObjectRef{Kind: api.KindApp, App: "shop", Name: "shop"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n1.Create(ctx, tt.ev)
			if tt.allowed && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if !tt.allowed && !client.IsForbidden(err) {
				t.Fatalf("want 403, got %v", err)
			}
		})
	}
	// It may count its own event up, but not take over another one by
	// rewriting it to be about its own pod.
	mine, err := c.Client.Get(ctx, api.Key{Kind: api.KindEvent, App: "shop", Name: "mine-a"})
	if err != nil {
		t.Fatal(err)
	}
	up := api.Clone(mine.(*api.Event))
	up.Spec.Count++
	if _, err := n1.Update(ctx, up); err != nil {
		t.Fatalf("node counts its own event up: %v", err)
	}
	theirs, err := c.Client.Get(ctx, api.Key{Kind: api.KindEvent, App: "shop", Name: "theirs-sched"})
	if err != nil {
		t.Fatal(err)
	}
	hijack := api.Clone(theirs.(*api.Event))
	hijack.Spec.Object = podRef("shop", "mine")
	hijack.Spec.Message = "forged"
	if _, err := n1.Update(ctx, hijack); !client.IsForbidden(err) {
		t.Fatalf("node rewrote another's event: %v", err)
	}
	hijack.Spec.Object = podRef("shop", "theirs")
	if _, err := n1.Update(ctx, hijack); !client.IsForbidden(err) {
		t.Fatalf("node updated an event about another node's pod: %v", err)
	}
}

// A node cannot make the server keep (and send every watcher) a huge
// status: a long field is 400 naming the field and its limit, an object over
// its kind's cap 413 naming the cap.
func TestNodeStatusSizeLimits(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	n1 := c.Token(t, "node:n1")
	cur, err := n1.Create(ctx, node("n1"))
	if err != nil {
		t.Fatal(err)
	}
	long := api.Clone(cur.(*api.Node))
	long.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, Message: strings.Repeat("m", api.MaxMessageLen+1)}}
	_, err = n1.UpdateStatus(ctx, long)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 400 || len(se.Fields) != 1 || se.Fields[0].Path != "status.conditions[0].message" ||
		!strings.Contains(se.Fields[0].Message, fmt.Sprint(api.MaxMessageLen)) {
		t.Fatalf("over-long condition message: %v", err)
	}
	huge := api.Clone(cur.(*api.Node))
	for i := range api.MaxConditions {
		huge.Status.Conditions = append(huge.Status.Conditions, api.Condition{Type: fmt.Sprintf("C%d", i), Status: api.ConditionTrue, Message: strings.Repeat("m", api.MaxMessageLen)})
	}
	_, err = n1.UpdateStatus(ctx, huge)
	if !errors.As(err, &se) || se.Code != 413 || se.Reason != "RequestEntityTooLarge" || !strings.Contains(se.Message, fmt.Sprint(api.MaxObjectBytes(api.KindNode))) {
		t.Fatalf("node status over the cap: %v", err)
	}
	if got, err := c.Client.Get(ctx, api.KeyOf(cur)); err != nil || len(got.(*api.Node).Status.Conditions) != 0 {
		t.Fatalf("refused status was stored: %v", err)
	}
	ev := event("shop", "big", api.ObjectRef{Kind: api.KindNode, Name: "n1"})
	ev.Spec.Message = strings.Repeat("m", api.MaxMessageLen+1)
	if _, err := n1.Create(ctx, ev); !errors.As(err, &se) || se.Code != 400 || se.Fields[0].Path != "spec.message" {
		t.Fatalf("over-long event message: %v", err)
	}
}

// A node cannot make itself the home of pods pinned to other nodes (and of
// their secrets): updating its own Node it cannot take another host name
// or an admin's label, nor uncordon itself; it registers without Capstan's
// labels but with those it joins with.
func TestNodeUpdatesItself(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	n1 := c.Token(t, "node:n1")
	reg := node("n1")
	reg.Metadata.Labels = map[string]string{"capstan.io/hostname": "n1", "capstan.io/os": "linux", "zone": "a"}
	for _, bad := range []map[string]string{{"capstan.io/hostname": "n2"}, {"capstan.io/hollow": "true"}} {
		n := node("n1")
		n.Metadata.Labels = bad
		if _, err := n1.Create(ctx, n); !client.IsForbidden(err) || !strings.Contains(err.Error(), "--labels") {
			t.Fatalf("register with %v: %v, want 403", bad, err)
		}
	}
	if _, err := n1.Create(ctx, reg); err != nil {
		t.Fatalf("register with the labels it joins with: %v", err)
	}
	// The admin cordons it and pins pods elsewhere by a label of theirs.
	cur, err := c.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	adm := api.Clone(cur.(*api.Node))
	adm.Spec.Unschedulable = true
	if _, err := c.Client.Update(ctx, adm); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
	}{
		{"another node's host name", map[string]string{"capstan.io/hostname": "n2", "capstan.io/os": "linux", "zone": "a"}},
		{"an admin's label", map[string]string{"capstan.io/hostname": "n1", "capstan.io/os": "linux", "zone": "a", "secure": "true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := node("n1")
			up.Metadata.Labels = tt.labels
			if _, err := n1.Update(ctx, up); !client.IsForbidden(err) || !strings.Contains(err.Error(), "an admin changes the others") {
				t.Fatalf("got %v, want 403", err)
			}
		})
	}
	// What it may change goes through; its cordon stays.
	up := node("n1")
	up.Metadata.Labels = map[string]string{"capstan.io/hostname": "n1", "capstan.io/os": "linux", "zone": "a", "node.capstan.io/disk": "ssd"}
	out, err := n1.Update(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*api.Node); !got.Spec.Unschedulable || got.Metadata.Labels["node.capstan.io/disk"] != "ssd" || got.Spec.PodCIDR == "" {
		t.Fatalf("after the node's update: %+v", got)
	}
	// The admin may uncordon it and set any label.
	adm = api.Clone(out.(*api.Node))
	adm.Spec.Unschedulable = false
	adm.Metadata.Labels["secure"] = "true"
	if out, err := c.Client.Update(ctx, adm); err != nil || out.(*api.Node).Spec.Unschedulable {
		t.Fatalf("admin: %v %v", out, err)
	}
}

// movingPod is a store that, right after the Get that authorizes a node's
// write to a pod, deletes the pod and makes it again under its name on
// another node, as a pod of an ordered workload can be.
type movingPod struct {
	store.Backend
	armed atomic.Bool
	to    string
}

func (s *movingPod) Get(ctx context.Context, k api.Key) (api.Object, error) {
	obj, err := s.Backend.Get(ctx, k)
	if err != nil || k.Kind != api.KindPod || !s.armed.CompareAndSwap(true, false) {
		return obj, err
	}
	if _, err := s.Backend.Delete(ctx, k, 0); err != nil {
		return nil, err
	}
	p := api.Clone(obj.(*api.Pod))
	p.Metadata.ResourceVersion, p.Metadata.UID = 0, ""
	p.Spec.NodeName = s.to
	if _, err := s.Backend.Create(ctx, p); err != nil {
		return nil, err
	}
	return obj, nil
}

// A node's unconditional status write or delete of a pod acts only on the
// pod as bound to it, not on whatever the store holds by then under its
// name.
func TestNodeWritesOnlyItsPod(t *testing.T) {
	ctx := context.Background()
	b, err := store.Open(filepath.Join(t.TempDir(), "capstan.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &movingPod{Backend: b, to: "n2"}
	c := apiservertest.Start(t, apiservertest.Options{Backend: st})
	n1 := c.Token(t, "node:n1")
	for _, name := range []string{"db-0", "db-1"} {
		if _, err := c.Client.Create(ctx, pod("shop", name, "n1")); err != nil {
			t.Fatal(err)
		}
	}
	st.armed.Store(true)
	p := pod("shop", "db-0", "n1")
	p.Status.Phase = api.PodFailed
	if _, err := n1.UpdateStatus(ctx, p); !client.IsConflict(err) || !strings.Contains(err.Error(), `now bound to "n2"`) {
		t.Fatalf("status of a pod moved to n2: %v, want 409", err)
	}
	got, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "db-0"})
	if err != nil || got.(*api.Pod).Spec.NodeName != "n2" || got.(*api.Pod).Status.Phase == api.PodFailed {
		t.Fatalf("n2's pod: %v %v", got, err)
	}
	st.armed.Store(true)
	if _, err := n1.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "db-1"}, client.DeleteOptions{}); !client.IsForbidden(err) {
		t.Fatalf("delete of a pod moved to n2: %v, want 403", err)
	}
	if got, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "db-1"}); err != nil || got.(*api.Pod).Spec.NodeName != "n2" {
		t.Fatalf("n2's pod: %v %v", got, err)
	}
	// Its own pods it still writes and deletes.
	mine := pod("shop", "db-2", "n1")
	if _, err := c.Client.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	mine.Status.Phase = api.PodRunning
	if _, err := n1.UpdateStatus(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Delete(ctx, api.KeyOf(mine), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A node reports the capacity of the persistent volumes on it (their
// status), and of no other: not another node's, nor their spec.
func TestNodeVolumeStatus(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	n1 := c.Token(t, "node:n1")
	vols := map[string]*api.PersistentVolume{}
	for _, v := range []struct{ name, node string }{{"db-0-data", "n1"}, {"db-1-data", "n2"}} {
		pv := api.KindVolume.New().(*api.PersistentVolume)
		pv.Metadata = api.ObjectMeta{App: "shop", Name: v.name}
		ordinal, _ := strconv.Atoi(v.name[3:4])
		pv.Spec = api.VolumeSpec{Workload: "db", Volume: "data", Ordinal: int32(ordinal), Size: api.MustParseQuantity("2Gi"), Reclaim: api.ReclaimRetain, NodeName: v.node}
		out, err := c.Client.Create(ctx, pv)
		if err != nil {
			t.Fatal(err)
		}
		vols[v.name] = out.(*api.PersistentVolume)
	}
	report := func(v *api.PersistentVolume) *api.PersistentVolume {
		u := api.Clone(v)
		u.Status.Capacity = api.MustParseQuantity("1Gi")
		u.Status.Conditions = []api.Condition{{Type: api.VolumeResizePending, Status: api.ConditionTrue, Reason: api.ReasonVolumeNotMounted, Message: "m"}}
		return u
	}
	if _, err := n1.UpdateStatus(ctx, report(vols["db-0-data"])); err != nil {
		t.Fatalf("node reports its volume's capacity: %v", err)
	}
	got, err := c.Client.Get(ctx, api.KeyOf(vols["db-0-data"]))
	if err != nil {
		t.Fatal(err)
	}
	if v := got.(*api.PersistentVolume); v.Status.Capacity.Value() != 1<<30 || v.Spec.Size.Value() != 2<<30 {
		t.Fatalf("stored %+v / %+v: want capacity 1Gi beside size 2Gi", v.Status, v.Spec)
	}
	if _, err := n1.UpdateStatus(ctx, report(vols["db-1-data"])); !client.IsForbidden(err) {
		t.Fatalf("node reported another node's volume: %v, want 403", err)
	}
	spec := api.Clone(got.(*api.PersistentVolume))
	spec.Spec.Size = api.MustParseQuantity("1Ti")
	if _, err := n1.Update(ctx, spec); !client.IsForbidden(err) {
		t.Fatalf("node changed its volume's spec: %v, want 403", err)
	}
	// An admin's spec update keeps the status.
	spec = api.Clone(got.(*api.PersistentVolume))
	spec.Spec.Size = api.MustParseQuantity("4Gi")
	out, err := c.Client.Update(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if v := out.(*api.PersistentVolume); v.Status.Capacity.Value() != 1<<30 {
		t.Fatalf("a spec update lost the status: %+v", v.Status)
	}
}
