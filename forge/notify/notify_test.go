package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/internal/testenv"
)

// receiver is a webhook endpoint in the test that answers the codes it is
// given, then 200, and records every body.
type receiver struct {
	mu     sync.Mutex
	codes  []int
	bodies []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		code := 200
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return nil
}

func start(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Generic JSON and Slack-compatible payloads; 503 and 429 retried with
// doubling back-off; a 404 given up at once; kinds filtered per webhook.
func TestNotifierSends(t *testing.T) {
	js := newReceiver(t, 503, 429)
	slack := newReceiver(t)
	gone := newReceiver(t, 404)
	w := &waits{}
	n := New(Options{Config: Config{Webhooks: []Webhook{{URL: js.srv.URL}, {URL: slack.srv.URL, Format: FormatSlack, Kinds: []string{RolloutFailed}}, {URL: gone.srv.URL}}}, Sleep: w.sleep})
	start(t, n)
	m := Message{Kind: SyncRefused, App: "shop", Commit: "0123456789abcdef", Message: "commit \"web v3\" was Rejected: apps/shop.cue:3:12: conflicting values"}
	n.Notify(m)
	n.Notify(Message{Kind: RolloutFailed, App: "shop", Message: "pod group web: made no progress"})
	eventually(t, "both messages on the JSON webhook", func() bool { return len(js.got()) == 4 })
	var first Message
	if err := json.Unmarshal([]byte(js.got()[2]), &first); err != nil || first.Kind != SyncRefused || first.Commit != m.Commit || first.Message != m.Message {
		t.Fatalf("JSON payload %q: %v", js.got()[2], err)
	}
	eventually(t, "the slack message", func() bool { return len(slack.got()) == 1 })
	var s struct{ Text string }
	if err := json.Unmarshal([]byte(slack.got()[0]), &s); err != nil || !strings.Contains(s.Text, "Rollout failed (shop)") {
		t.Fatalf("slack payload %q: %v", slack.got()[0], err)
	}
	eventually(t, "the 404 webhook tried", func() bool { return len(gone.got()) == 2 })
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.d) != 2 || w.d[0] != time.Second || w.d[1] != 2*time.Second {
		t.Errorf("waits %v, want 1s then 2s (a 404 is not retried)", w.d)
	}
}

// A webhook's path is its secret: an error of the connection names the
// host only, as the log does.
func TestSendErrorRedactsURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: the connection is refused
	n := New(Options{Attempts: 1})
	err = n.send(context.Background(), Webhook{URL: "http://" + addr + "/services/T000/B000/SECRETPATH"}, Message{Kind: NodeLost})
	var ue *url.Error
	if err == nil || strings.Contains(err.Error(), "SECRETPATH") || !strings.Contains(err.Error(), addr) || !errors.As(err, &ue) {
		t.Fatalf("error %v: want the host %s without the path, still a *url.Error", err, addr)
	}
}

// A webhook that never answers does not block Notify: the queue keeps the
// newest messages.
func TestNotifyNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	n := New(Options{Config: Config{Webhooks: []Webhook{{URL: srv.URL}}}, Queue: 8})
	start(t, n)
	for i := range 10_000 {
		n.Notify(Message{Kind: NodeLost, Node: "n", Message: string(rune('a' + i%26))})
	}
	s := n.sinks[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 8 || s.dropped == 0 {
		t.Fatalf("queue %d, dropped %d: want at most 8 kept and the rest dropped", len(s.queue), s.dropped)
	}
}

// A commit subject with <!channel> pinged the whole Slack channel, and
// <http://x|y> made a link: the text was not escaped. Slack's control
// characters are escaped for Slack (and Mattermost, which parses the same
// sequences); Rocket.Chat, which parses none and shows entities as typed,
// gets the text as it is.
func TestSlackTextEscapes(t *testing.T) {
	for _, tc := range []struct{ name, msg, slack string }{
		{"a channel mention", `commit "<!channel> deploy" was Rejected`, `commit "&lt;!channel&gt; deploy" was Rejected`},
		{"a link", "commit \"see <http://evil.example|the docs>\"", "commit \"see &lt;http://evil.example|the docs&gt;\""},
		{"an ampersand", "web & api: 1 < 2", "web &amp; api: 1 &lt; 2"},
		{"an entity typed", "&lt;!here&gt;", "&amp;lt;!here&amp;gt;"},
		{"plain", "pod group web: made no progress", "pod group web: made no progress"},
	} {
		m := Message{Kind: SyncRefused, App: "shop", Commit: "0123456789abcdef", Message: tc.msg}
		const head = ":warning: *Capstan* Sync refused (shop, commit 0123456789ab): "
		if got := m.SlackText(); got != head+tc.slack {
			t.Errorf("%s: SlackText = %q, want %q", tc.name, got, head+tc.slack)
		}
		if got := m.Text(); got != head+tc.msg {
			t.Errorf("%s: Text = %q, want the message as it is", tc.name, got)
		}
	}
}

// The payload of each format: escaped for slack, as it is for
// rocketchat.
func TestSlackCompatiblePayloads(t *testing.T) {
	slack, rocket := newReceiver(t), newReceiver(t)
	n := New(Options{Config: Config{Webhooks: []Webhook{{URL: slack.srv.URL, Format: FormatSlack}, {URL: rocket.srv.URL, Format: FormatRocketChat}}}})
	start(t, n)
	n.Notify(Message{Kind: RollbackMade, App: "shop", Message: "<!channel> x & y"})
	eventually(t, "both messages", func() bool { return len(slack.got()) == 1 && len(rocket.got()) == 1 })
	for _, tc := range []struct {
		name, body, want string
	}{{"slack", slack.got()[0], "&lt;!channel&gt; x &amp; y"}, {"rocketchat", rocket.got()[0], "<!channel> x & y"}} {
		var p struct{ Text string }
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil || !strings.HasSuffix(p.Text, ": "+tc.want) {
			t.Errorf("%s payload %q (%v): want the text to end with %q", tc.name, tc.body, err, tc.want)
		}
	}
}

// Whatever a message holds, its Slack text has no < or > left for Slack
// to parse, and reads as the message once Slack decodes the entities.
func FuzzSlackText(f *testing.F) {
	for _, s := range []string{"<!channel>", "<http://x|y>", "&amp;", "a & b <c>", "<@U024BE7LH>", "&&lt;<"} {
		f.Add(s)
	}
	unescape := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")
	f.Fuzz(func(t *testing.T, msg string) {
		m := Message{Kind: NodeLost, Node: "n1", Message: msg}
		got := m.SlackText()
		if strings.ContainsAny(got, "<>") {
			t.Fatalf("SlackText(%q) = %q: a < or > is left", msg, got)
		}
		if back := unescape.Replace(got); back != m.Text() {
			t.Fatalf("SlackText(%q) = %q reads %q, want %q", msg, got, back, m.Text())
		}
	})
}

func TestParseConfig(t *testing.T) {
	good := "webhooks:\n  - url: https://hooks.slack.com/services/T/B/X\n    format: slack\n  - url: http://127.0.0.1:9/x\n    events: [rolloutFailed, nodeLost]\n  - url: https://chat.example.com/hooks/ID/TOKEN\n    format: rocketchat\n"
	c, err := ParseConfig([]byte(good))
	if err != nil || len(c.Webhooks) != 3 || c.Webhooks[1].Kinds[1] != NodeLost || c.Webhooks[2].Format != FormatRocketChat {
		t.Fatalf("ParseConfig = %+v, %v", c, err)
	}
	for _, bad := range []string{"webhooks:\n  - url: ftp://x\n", "webhooks:\n  - url: https://x\n    format: xml\n",
		"webhooks:\n  - url: https://x\n    events: [everything]\n", "hooks: []\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("webhooks:\n  - url: https://x/y\n    format: slack\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		for _, w := range c.Webhooks {
			if !strings.HasPrefix(w.URL, "http") {
				t.Fatalf("accepted %q", w.URL)
			}
		}
	})
}

func TestDetect(t *testing.T) {
	since := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	rev := func(result string, at time.Time) *api.Revision {
		r := api.KindRevision.New().(*api.Revision)
		r.Metadata = api.ObjectMeta{Name: "r", App: "shop"}
		r.Spec = api.RevisionSpec{Commit: "abc", Result: result, SyncedAt: at, Message: "web v3\n\nbody",
			Errors: []api.SourceError{{File: "apps/shop.cue", Line: 3, Column: 12, Message: "conflicting values"}}}
		return r
	}
	wl := func(degraded bool, at time.Time) *api.Workload {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = api.ObjectMeta{Name: "web", App: "shop", Source: &api.Source{Repo: "https://git.example.com/deploy.git", Commit: "abc"}}
		if degraded {
			w.Status.Conditions = []api.Condition{{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Message: "made no progress", LastTransitionTime: at}}
		}
		return w
	}
	node := func(ready bool) *api.Node {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = "n1"
		st := api.ConditionFalse
		if ready {
			st = api.ConditionTrue
		}
		n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: st, Message: "no heartbeat for 40s"}}
		return n
	}
	later := since.Add(time.Minute)
	for _, tc := range []struct {
		name     string
		old, obj api.Object
		kind     string
		msg      string
		commit   string
	}{
		{"rejected revision", nil, rev(api.SyncRejected, later), SyncRefused, `commit "web v3" was Rejected: apps/shop.cue:3:12: conflicting values`, "abc"},
		{"applied revision", nil, rev(api.SyncApplied, later), "", "", ""},
		{"old rejected revision", nil, rev(api.SyncRejected, since.Add(-time.Hour)), "", "", ""},
		// The commit whose spec the pod group stalls on.
		{"rollout stalls", wl(false, later), wl(true, later), RolloutFailed, "pod group web: made no progress", "abc"},
		{"still stalled", wl(true, later), wl(true, later), "", "", ""},
		{"stalled before the start", nil, wl(true, since.Add(-time.Hour)), "", "", ""},
		{"node lost", node(true), node(false), NodeLost, "no heartbeat for 40s; its pods are replaced elsewhere after the eviction timeout", ""},
		{"node back", node(false), node(true), "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := Detect(tc.old, tc.obj, since)
			if ok != (tc.kind != "") || m.Kind != tc.kind || m.Message != tc.msg || m.Commit != tc.commit {
				t.Fatalf("Detect = %+v, %v; want %s %q of commit %q", m, ok, tc.kind, tc.msg, tc.commit)
			}
		})
	}
}

// Watch reports a sync refused and a node lost from a real API server.
func TestWatch(t *testing.T) {
	rcv := newReceiver(t)
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := context.Background()
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	o, err := c.Create(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	nt := New(Options{Config: Config{Webhooks: []Webhook{{URL: rcv.srv.URL}}}})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { Watch(wctx, c, nt, time.Now, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: "shop-1", App: "shop"}
	r.Spec = api.RevisionSpec{Repo: "deploy", Commit: "abc", Result: api.SyncRejected, SyncedAt: time.Now().Add(time.Second), Message: "web v3"}
	if _, err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the syncRefused notification", func() bool {
		for _, b := range rcv.got() {
			if strings.Contains(b, `"kind":"syncRefused"`) {
				return true
			}
		}
		return false
	})
	lost := api.Clone(o.(*api.Node))
	lost.Status.Conditions[0].Status = api.ConditionFalse
	if _, err := c.UpdateStatus(ctx, lost); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the nodeLost notification", func() bool {
		for _, b := range rcv.got() {
			if strings.Contains(b, `"kind":"nodeLost"`) && strings.Contains(b, `"node":"n1"`) {
				return true
			}
		}
		return false
	})
}
