package apiserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

func pod(app, name, node string) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: app, Labels: map[string]string{"tier": "web"}}
	p.Spec.NodeName = node
	p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1",
		Resources: api.Resources{Requests: api.ResourceList{CPU: api.MustParseQuantity("100m"), Memory: api.MustParseQuantity("32Mi")}}}}
	return p
}

func node(name string) *api.Node {
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = name
	return n
}

// raw sends a request with the given token and returns code and body.
func raw(t *testing.T, c *apiservertest.Cluster, token, method, path string, body []byte) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(method, c.Config.Server+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCRUDThroughClient(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	cl := c.Client

	created, err := cl.Create(ctx, pod("shop", "web-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if created.Meta().UID == "" || created.Meta().ResourceVersion == 0 {
		t.Fatalf("created = %+v", created.Meta())
	}
	if _, err := cl.Create(ctx, pod("shop", "web-1", "")); !client.IsAlreadyExists(err) {
		t.Fatalf("duplicate create: %v", err)
	}
	got, err := cl.Get(ctx, api.KeyOf(created))
	if err != nil || got.Meta().UID != created.Meta().UID {
		t.Fatalf("get: %v %v", got, err)
	}

	// The main resource ignores status; /status ignores the spec.
	p := got.(*api.Pod)
	p.Status.Phase = api.PodRunning
	p.Metadata.Labels["tier"] = "front"
	up, err := cl.Update(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if up.(*api.Pod).Status.Phase != "" || up.Meta().Labels["tier"] != "front" {
		t.Fatalf("update: status %q labels %v", up.(*api.Pod).Status.Phase, up.Meta().Labels)
	}
	sp := api.Clone(up.(*api.Pod))
	sp.Status.Phase = api.PodRunning
	sp.Spec.NodeName = "sneaky"
	st, err := cl.UpdateStatus(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if st.(*api.Pod).Status.Phase != api.PodRunning || st.(*api.Pod).Spec.NodeName != "" {
		t.Fatalf("status update: %+v", st.(*api.Pod))
	}
	// A stale resourceVersion is a conflict.
	if _, err := cl.Update(ctx, p); !client.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}

	objs, rev, err := cl.List(ctx, api.KindPod, client.ListOptions{App: "shop", Labels: map[string]string{"tier": "front"}})
	if err != nil || len(objs) != 1 || rev < st.Meta().ResourceVersion {
		t.Fatalf("list: %d objects rev %d err %v", len(objs), rev, err)
	}
	if _, err := cl.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, api.KeyOf(p)); !client.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestGracefulPodDelete(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	p, err := c.Client.Create(ctx, pod("shop", "web-1", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	// Bound pod: marked, not removed.
	out, err := c.Client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{})
	if err != nil || out.Meta().DeletionRequestedAt == nil {
		t.Fatalf("graceful delete: %v %v", out, err)
	}
	if _, err := c.Client.Get(ctx, api.KeyOf(p)); err != nil {
		t.Fatalf("pod gone before its agent stopped it: %v", err)
	}
	// An update that does not carry the mark keeps it.
	marked := api.Clone(out.(*api.Pod))
	marked.Metadata.DeletionRequestedAt = nil
	marked.Metadata.Labels = map[string]string{"x": "y"}
	if up, err := c.Client.Update(ctx, marked); err != nil || up.Meta().DeletionRequestedAt == nil {
		t.Fatalf("update cleared the deletion mark: %v %v", up, err)
	}
	// Its node removes it for good.
	n1 := c.Token(t, "node:n1")
	if _, err := n1.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Get(ctx, api.KeyOf(p)); !client.IsNotFound(err) {
		t.Fatalf("after node delete: %v", err)
	}
	// Force removes at once.
	p2, _ := c.Client.Create(ctx, pod("shop", "web-2", "n1"))
	if _, err := c.Client.Delete(ctx, api.KeyOf(p2), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Get(ctx, api.KeyOf(p2)); !client.IsNotFound(err) {
		t.Fatalf("after force delete: %v", err)
	}
}

func TestRoles(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	admin, viewer, n1 := c.Client, c.Token(t, "viewer"), c.Token(t, "node:n1")
	mine, _ := admin.Create(ctx, pod("shop", "mine", "n1"))
	theirs, _ := admin.Create(ctx, pod("shop", "theirs", "n2"))

	tests := []struct {
		name    string
		call    func() error
		wantErr func(error) bool
	}{
		{"viewer reads", func() error { _, err := viewer.Get(ctx, api.KeyOf(mine)); return err }, nil},
		{"viewer lists", func() error { _, _, err := viewer.List(ctx, api.KindPod, client.ListOptions{}); return err }, nil},
		{"viewer cannot create", func() error { _, err := viewer.Create(ctx, pod("shop", "x", "")); return err }, client.IsForbidden},
		{"viewer cannot delete", func() error { _, err := viewer.Delete(ctx, api.KeyOf(mine), client.DeleteOptions{}); return err }, client.IsForbidden},
		{"node creates its node", func() error { _, err := n1.Create(ctx, node("n1")); return err }, nil},
		{"node cannot create another node", func() error { _, err := n1.Create(ctx, node("n2")); return err }, client.IsForbidden},
		{"node updates status of its pod", func() error {
			p := api.Clone(mine.(*api.Pod))
			p.Metadata.ResourceVersion = 0
			p.Status.Phase = api.PodRunning
			_, err := n1.UpdateStatus(ctx, p)
			return err
		}, nil},
		{"node cannot update status of another node's pod", func() error {
			p := api.Clone(theirs.(*api.Pod))
			p.Status.Phase = api.PodRunning
			_, err := n1.UpdateStatus(ctx, p)
			return err
		}, client.IsForbidden},
		{"node cannot update a pod's spec", func() error { _, err := n1.Update(ctx, mine); return err }, client.IsForbidden},
		{"node cannot delete another node's pod", func() error { _, err := n1.Delete(ctx, api.KeyOf(theirs), client.DeleteOptions{}); return err }, client.IsForbidden},
		{"node cannot run transactions", func() error {
			_, err := n1.Txn(ctx, []client.TxnOp{{Op: "create", Object: pod("shop", "t", "")}})
			return err
		}, client.IsForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.wantErr == nil && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if tt.wantErr != nil && !tt.wantErr(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{MaxBodyBytes: 64 << 10}})
	tok := c.Config.Token
	viewer, _, _ := c.Server.Tokens().Create("viewer", "", 0, time.Now())
	good, _ := json.Marshal(pod("shop", "ok", ""))
	if code, body := raw(t, c, tok, "POST", "/api/v1/pods", good); code != 201 {
		t.Fatalf("good create: %d %s", code, body)
	}
	huge := bytes.Repeat([]byte("a"), 100<<10)
	hugeJSON := []byte(`{"role":"` + string(huge) + `"}`)
	tests := []struct {
		name, token, method, path string
		body                      []byte
		code                      int
		reason                    string
	}{
		{"malformed json", tok, "POST", "/api/v1/pods", []byte(`{"kind":"Pod",`), 400, "Invalid"},
		{"unknown field", tok, "POST", "/api/v1/pods", []byte(`{"kind":"Pod","metadata":{"name":"a","app":"b"},"bogus":1}`), 400, "Invalid"},
		{"wrong kind in body", tok, "POST", "/api/v1/pods", []byte(`{"kind":"Node","metadata":{"name":"a"}}`), 400, "Invalid"},
		{"invalid object", tok, "POST", "/api/v1/pods", []byte(`{"kind":"Pod","metadata":{"name":"Bad_Name","app":"shop"},"spec":{"containers":[]}}`), 400, "Invalid"},
		{"empty body", tok, "POST", "/api/v1/pods", nil, 400, "BadRequest"},
		{"unknown kind", tok, "GET", "/api/v1/widgets", nil, 404, "UnknownKind"},
		{"not found", tok, "GET", "/api/v1/pods/shop/nope", nil, 404, "NotFound"},
		{"dot dot", tok, "GET", "/api/v1/pods/shop/..", nil, 400, "BadRequest"},
		{"escaped slash", tok, "GET", "/api/v1/pods/shop/a%2Fb", nil, 400, "BadRequest"},
		{"escaped dot dot", tok, "GET", "/api/v1/pods/%2E%2E/x", nil, 400, "BadRequest"},
		{"nul byte", tok, "GET", "/api/v1/pods/shop/a%00b", nil, 400, "BadRequest"},
		{"10 kB name", tok, "GET", "/api/v1/pods/shop/" + strings.Repeat("a", 10<<10), nil, 400, "BadRequest"},
		{"upper-case name", tok, "GET", "/api/v1/pods/shop/Web", nil, 400, "Invalid"},
		{"too many segments", tok, "GET", "/api/v1/pods/shop/a/b/c", nil, 404, "NotFound"},
		{"path names other object", tok, "PUT", "/api/v1/pods/shop/other", good, 400, "BadRequest"},
		{"stale resourceVersion", tok, "PUT", "/api/v1/pods/shop/ok", []byte(`{"kind":"Pod","metadata":{"name":"ok","app":"shop","resourceVersion":999},"spec":{"containers":[{"name":"a","image":"x"}]}}`), 409, "Conflict"},
		{"no token", "", "GET", "/api/v1/pods", nil, 401, "Unauthorized"},
		{"wrong token", "abc.def", "GET", "/api/v1/pods", nil, 401, "Unauthorized"},
		{"malformed token", "garbage", "GET", "/api/v1/pods", nil, 401, "Unauthorized"},
		{"wrong role", viewer, "POST", "/api/v1/pods", good, 403, "Forbidden"},
		{"body over limit", tok, "POST", "/api/v1/pods", huge, 413, "RequestEntityTooLarge"},
		{"token request over limit", tok, "POST", "/tokens", hugeJSON, 413, "RequestEntityTooLarge"},
		{"txn body over limit", tok, "POST", "/api/v1/txn", bytes.Repeat([]byte(" "), 4<<20), 413, "RequestEntityTooLarge"},
		{"bad method", tok, "PATCH", "/api/v1/pods/shop/ok", nil, 405, "MethodNotAllowed"},
		{"bad since", tok, "GET", "/api/v1/pods?watch=true&since=-4", nil, 400, "BadRequest"},
		{"bad label selector", tok, "GET", "/api/v1/pods?labels=nokey", nil, 400, "BadRequest"},
		{"bad txn", tok, "POST", "/api/v1/txn", []byte(`{"ops":[{"op":"explode"}]}`), 400, "BadRequest"},
		{"empty txn", tok, "POST", "/api/v1/txn", []byte(`{"ops":[]}`), 400, "BadRequest"},
		{"log of a pod not on a node", tok, "GET", "/api/v1/pods/shop/ok/log", nil, 409, "Conflict"},
		{"log of an unknown container", tok, "GET", "/api/v1/pods/shop/ok/log?container=nope", nil, 404, "NotFound"},
		{"log with a bad tail", tok, "GET", "/api/v1/pods/shop/ok/log?tail=-3", nil, 400, "BadRequest"},
		{"log with a bad flag", tok, "GET", "/api/v1/pods/shop/ok/log?follow=yes", nil, 400, "BadRequest"},
		{"log with since both ways", tok, "GET", "/api/v1/pods/shop/ok/log?sinceSeconds=5&sinceTime=2026-12-06T10:00:00Z", nil, 400, "BadRequest"},
		{"log with a bad since time", tok, "GET", "/api/v1/pods/shop/ok/log?sinceTime=yesterday", nil, 400, "BadRequest"},
		{"log of a missing pod", tok, "GET", "/api/v1/pods/shop/nope/log", nil, 404, "NotFound"},
		{"log of a node", tok, "GET", "/api/v1/nodes/n1/log", nil, 404, "NotFound"},
		{"update a log", tok, "PUT", "/api/v1/pods/shop/ok/log", good, 405, "MethodNotAllowed"},
		{"exec without upgrade", tok, "POST", "/api/v1/pods/shop/ok/exec?command=ls", nil, 426, "UpgradeRequired"},
		{"exec by a viewer", viewer, "POST", "/api/v1/pods/shop/ok/exec?command=ls", nil, 403, "Forbidden"},
		{"exec by GET", tok, "GET", "/api/v1/pods/shop/ok/exec?command=ls", nil, 405, "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := raw(t, c, tt.token, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("code %d, want %d: %s", code, tt.code, body)
			}
			var st wire.Status
			if err := json.Unmarshal([]byte(body), &st); err != nil || string(st.Reason) != tt.reason || st.Message == "" || st.Code != tt.code {
				t.Fatalf("body %s, want reason %s", body, tt.reason)
			}
			if tt.code == http.StatusRequestEntityTooLarge && !strings.Contains(st.Message, " bytes") {
				t.Errorf("message %q does not name the limit", st.Message)
			}
		})
	}
	// Nothing was lost: the good pod is still there, and the server answers.
	if code, body := raw(t, c, tok, "GET", "/api/v1/pods/shop/ok", nil); code != 200 {
		t.Fatalf("after bad input: %d %s", code, body)
	}
}

func TestTxn(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	if _, err := c.Client.Create(ctx, pod("shop", "taken", "")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Client.Txn(ctx, []client.TxnOp{
		{Op: "create", Object: pod("shop", "a", "")},
		{Op: "create", Object: pod("shop", "taken", "")},
	})
	if !client.IsConflict(err) {
		t.Fatalf("txn with a taken name: %v", err)
	}
	if _, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "a"}); !client.IsNotFound(err) {
		t.Fatalf("failed txn left an object: %v", err)
	}
	out, err := c.Client.Txn(ctx, []client.TxnOp{
		{Op: "create", Object: pod("shop", "a", "")},
		{Op: "delete", Key: "pods/shop/taken"},
	})
	if err != nil || len(out) != 2 || out[1].Meta().ResourceVersion != out[0].Meta().ResourceVersion+1 {
		t.Fatalf("txn: %v %v", out, err)
	}
}

func TestWatchStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{BookmarkInterval: 50 * time.Millisecond}})
	first, _ := c.Client.Create(ctx, pod("shop", "a", ""))
	_, _ = c.Client.Create(ctx, pod("shop", "b", "n1"))
	w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{}, first.Meta().ResourceVersion-1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var names []string
	for len(names) < 2 {
		e, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == "ADDED" {
			names = append(names, e.Object.Meta().Name)
		}
	}
	if fmt.Sprint(names) != "[a b]" {
		t.Fatalf("replayed %v", names)
	}
	// An idle watch gets a bookmark at the current revision.
	for {
		e, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == "BOOKMARK" {
			if e.Revision != c.Store.Revision() {
				t.Fatalf("bookmark %d, store at %d", e.Revision, c.Store.Revision())
			}
			break
		}
	}
	// A node watch sees only its pods.
	nw, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{Node: "n1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	e, err := nw.Next()
	if err != nil || e.Object.Meta().Name != "b" {
		t.Fatalf("node watch: %+v %v", e, err)
	}
}

func TestWatchCompactedIs410(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{Store: store.Options{MaxEvents: 2}})
	for i := 0; i < 5; i++ {
		_, _ = c.Client.Create(ctx, pod("shop", fmt.Sprintf("p%d", i), ""))
	}
	if n, err := c.Store.Compact(); err != nil || n != 3 {
		t.Fatalf("compact: %d %v", n, err)
	}
	code, body := raw(t, c, c.Config.Token, "GET", "/api/v1/pods?watch=true&since=1", nil)
	if code != 410 || !strings.Contains(body, "Expired") {
		t.Fatalf("watch from compacted revision: %d %s", code, body)
	}
}

// TestWatchFromFutureRevisionIs400: a watch from a revision ahead of the
// store is refused with a message saying so (it was accepted and then
// delivered older events).
func TestWatchFromFutureRevisionIs400(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	if _, err := c.Client.Create(ctx, pod("shop", "a", "")); err != nil {
		t.Fatal(err)
	}
	ahead := c.Store.Revision() + 100
	if w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{}, ahead); !client.IsFutureRevision(err) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("client watch from a future revision: %v", err)
	}
	code, body := raw(t, c, c.Config.Token, "GET", fmt.Sprintf("/api/v1/pods?watch=true&since=%d", ahead), nil)
	if code != 400 || !strings.Contains(body, "FutureRevision") || !strings.Contains(body, "ahead of the store's current revision") {
		t.Fatalf("watch from a future revision: %d %s", code, body)
	}
}

func TestHealthMetricsVersion(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	_, _ = c.Client.Create(context.Background(), pod("shop", "a", ""))
	for _, p := range []string{"/healthz", "/readyz", "/version"} {
		if code, body := raw(t, c, "", "GET", p, nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	if code, _ := raw(t, c, "", "GET", "/metrics", nil); code != 401 {
		t.Errorf("metrics without a token: %d", code)
	}
	code, body := raw(t, c, c.Config.Token, "GET", "/metrics", nil)
	if code != 200 || !strings.Contains(body, `capstan_api_requests_total{code="201",kind="pods",verb="post"}`) && !strings.Contains(body, `capstan_api_requests_total{code="201",kind="pods",verb="create"}`) || !strings.Contains(body, "capstan_store_revision 1") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
}

func TestTLS13Only(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}}}
	if resp, err := hc.Get(c.Config.Server + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
}

func TestRestartReusesPKIAndAdminToken(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	if _, err := c.Client.Create(ctx, pod("shop", "a", "")); err != nil {
		t.Fatal(err)
	}
	cfg := *c.Config
	c.Stop()
	c2 := apiservertest.Start(t, apiservertest.Options{DataDir: c.DataDir})
	if c2.Config.CA != cfg.CA || c2.Config.Token != cfg.Token {
		t.Fatal("restart made a new CA or admin token")
	}
	if _, err := c2.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "a"}); err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
}

func TestEventsExpire(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{EventTTL: time.Hour}})
	for i, age := range []time.Duration{2 * time.Hour, time.Minute} {
		e := api.KindEvent.New().(*api.Event)
		e.Metadata = api.ObjectMeta{Name: fmt.Sprintf("ev%d", i), App: "shop"}
		e.Spec = api.EventSpec{Type: api.EventNormal, Reason: "Test", Count: 1, FirstSeen: time.Now().Add(-age), LastSeen: time.Now().Add(-age)}
		if _, err := c.Client.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c.Server.ReapEvents(ctx); err != nil || n != 1 {
		t.Fatalf("reaped %d, %v; want the old one", n, err)
	}
	objs, _, _ := c.Client.List(ctx, api.KindEvent, client.ListOptions{})
	if len(objs) != 1 || objs[0].Meta().Name != "ev1" {
		t.Fatalf("left %v", objs)
	}
}

// Every answer says nosniff, so that no browser renders a log line or an
// object's field as HTML.
func TestNoSniff(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tt := range []struct{ name, token, path string }{
		{"list", c.Config.Token, "/api/v1/pods"},
		{"error", "", "/api/v1/pods"},
		{"not found", c.Config.Token, "/api/v1/pods/shop/nope"},
		{"health", "", "/healthz"},
		{"ca", "", "/cacert"},
		{"unknown path", "", "/nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", c.Config.Server+tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("X-Content-Type-Options %q (code %d)", got, resp.StatusCode)
			}
		})
	}
}

// A watch with labels= sends only what matches, and an informer by labels
// loses an object that stops matching and gains one that starts.
func TestWatchByLabels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{BookmarkInterval: time.Hour}})
	db := client.ListOptions{Labels: map[string]string{"tier": "db"}}
	w, err := c.Client.Watch(ctx, api.KindPod, db, c.Store.Revision())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	inf := client.NewInformer(c.Client, api.KindPod, db, nil)
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	web := pod("shop", "web", "")
	if _, err := c.Client.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	p := pod("shop", "db", "")
	p.Metadata.Labels = map[string]string{"tier": "db"}
	created, err := c.Client.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	next := func(wantType, wantName string) {
		t.Helper()
		e, err := w.Next()
		if err != nil || e.Type != wantType || e.Object.Meta().Name != wantName {
			t.Fatalf("watch by labels: %s %v, want %s %s", e.Type, err, wantType, wantName)
		}
	}
	next("ADDED", "db") // and not the tier=web pod before it
	eventually(t, "the informer holds the tier=db pod", func() bool { _, ok := inf.Get("shop/db"); return ok })

	moved := created.(*api.Pod)
	moved.Metadata.Labels = map[string]string{"tier": "web"}
	back, err := c.Client.Update(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	next("DELETED", "db")
	eventually(t, "the informer drops the pod that stopped matching", func() bool { _, ok := inf.Get("shop/db"); return !ok })
	if _, ok := inf.Get("shop/web"); ok {
		t.Fatal("the informer by tier=db holds the tier=web pod")
	}

	again := back.(*api.Pod)
	again.Metadata.Labels = map[string]string{"tier": "db"}
	if _, err := c.Client.Update(ctx, again); err != nil {
		t.Fatal(err)
	}
	next("ADDED", "db")
	eventually(t, "the informer takes the pod back", func() bool { _, ok := inf.Get("shop/db"); return ok })
}
