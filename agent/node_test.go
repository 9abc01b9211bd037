package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/version"
)

func TestParseMemTotal(t *testing.T) {
	got, err := parseMemTotal(strings.NewReader("MemFree: 1 kB\nMemTotal:       24576000 kB\n"))
	if err != nil || got != 24576000*1024 {
		t.Errorf("parseMemTotal = %d, %v", got, err)
	}
	if _, err := parseMemTotal(strings.NewReader("MemFree: 1 kB\n")); err == nil {
		t.Error("no MemTotal accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	good := func() Options { return Options{Client: c.Client, NodeName: "n1", Address: "192.0.2.7"} }
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string // substring of the error; empty for none
	}{
		{"defaults are valid", func(*Options) {}, ""},
		{"client required", func(o *Options) { o.Client = nil }, "API client is required"},
		{"bad node name", func(o *Options) { o.NodeName = "Not_A_Name" }, "not a DNS subdomain"},
		{"bad label", func(o *Options) { o.Labels = map[string]string{"a b": "c"} }, "label"},
		{"bad address", func(o *Options) { o.Address = "::1" }, "not an IPv4"},
		{"relative data dir", func(o *Options) { o.DataDir = "data" }, "absolute"},
		{"bad pod CIDR", func(o *Options) { o.PodCIDR = "10.1.2.3" }, "pod CIDR"},
		{"back-off max below initial", func(o *Options) { o.Backoff = Backoff{Initial: time.Minute, Max: time.Second} }, "back-off"},
		{"tiny heartbeat", func(o *Options) { o.HeartbeatInterval = time.Millisecond }, "heartbeat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.mutate(&o)
			_, err := New(o)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("New = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// Registration creates the Node with the host's resources, labels and a
// Ready condition; a second registration (agent restart) keeps other
// labels and the transition time; the heartbeat is a Lease write that
// leaves the Node alone.
func TestRegisterAndHeartbeat(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Network: apiserver.NetworkOptions{PodCIDR: "10.99.0.0/16"}}})
	ctx := context.Background()
	nodeClient := c.Token(t, "node:n1")
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a, err := New(Options{Client: nodeClient, NodeName: "n1", Address: "192.0.2.7", PodCIDR: "10.99.150.0/24",
		Labels: map[string]string{"zone": "a"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.register(ctx, false, "AgentStarting", "starting")
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "10.99.150.0/24" || n.Metadata.Labels["zone"] != "a" || n.Status.Capacity.Pods != DefaultMaxPods ||
		n.Status.Capacity.CPU.MilliValue() < 1000 || n.Status.Capacity.Memory.Value() < 1<<20 {
		t.Errorf("registered node = %+v", n)
	}
	if len(n.Status.Addresses) == 0 || n.Status.Addresses[0] != (api.NodeAddress{Type: "InternalIP", Address: "192.0.2.7"}) {
		t.Errorf("addresses = %+v", n.Status.Addresses)
	}
	if cond := api.FindCondition(n.Status.Conditions, api.NodeReady); cond == nil || cond.Status != api.ConditionFalse {
		t.Errorf("ready condition = %+v, want False while starting", cond)
	}

	// An admin labels the node; the agent restarts and becomes ready.
	upd := api.Clone(n)
	upd.Metadata.Labels["team"] = "x"
	if _, err := c.Client.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	n, err = a.register(ctx, true, "AgentReady", "ready")
	if err != nil {
		t.Fatal(err)
	}
	cond := api.FindCondition(n.Status.Conditions, api.NodeReady)
	if n.Metadata.Labels["team"] != "x" || cond == nil || cond.Status != api.ConditionTrue || !cond.LastTransitionTime.Equal(now) {
		t.Errorf("after restart: labels %v, ready %+v", n.Metadata.Labels, cond)
	}
	rv := n.Metadata.ResourceVersion
	// Registering again with nothing new writes nothing.
	if n, err = a.register(ctx, true, "AgentReady", "ready"); err != nil || n.Metadata.ResourceVersion != rv {
		t.Errorf("idempotent register: rv %d -> %d, %v", rv, n.Metadata.ResourceVersion, err)
	}

	for range 2 {
		now = now.Add(5 * time.Second)
		if err := a.renewLease(ctx); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.Client.Get(ctx, api.Key{Kind: api.KindLease, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if ls := l.(*api.Lease).Spec; ls.Holder != "n1" || !ls.RenewTime.Equal(now) || ls.DurationSeconds != 20 {
		t.Errorf("lease = %+v", ls)
	}
	if got, err := c.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"}); err != nil || got.Meta().ResourceVersion != rv {
		t.Errorf("heartbeat rewrote the node: rv %d -> %v (%v)", rv, got.Meta().ResourceVersion, err)
	}
}

// procStart identifies a live process and reports a missing one.
func TestProcStart(t *testing.T) {
	self, ok := procStart(uint32(os.Getpid()))
	if !ok || self == 0 {
		t.Fatalf("procStart(self) = %d, %v", self, ok)
	}
	if again, ok := procStart(uint32(os.Getpid())); !ok || again != self {
		t.Errorf("start time changed: %d then %d", self, again)
	}
	if _, ok := procStart(1 << 30); ok {
		t.Error("a PID beyond pid_max is alive")
	}
}

// A token for another node is refused at once, with what to do.
func TestRegisterWithWrongTokenFailsFast(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	a, err := New(Options{Client: c.Token(t, "node:other"), NodeName: "n1", Address: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = a.registerRetrying(ctx, false, "AgentStarting", "")
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "node:n1") {
		t.Errorf("register with another node's token: %v (ctx %v), want a fast refusal naming node:n1", err, ctx.Err())
	}
}

// A --pod-cidr outside the server's pod network is refused at once, with
// the server's reason and what to do (not a hint about the token).
func TestRegisterWithForeignPodCIDRFailsFast(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	a, err := New(Options{Client: c.Token(t, "node:n1"), NodeName: "n1", Address: "192.0.2.7", PodCIDR: "10.99.150.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = a.registerRetrying(ctx, false, "AgentStarting", "")
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "spec.podCIDR: 10.99.150.0/24 is not a /24 block of the cluster's pod network 10.88.0.0/16") ||
		!strings.Contains(err.Error(), "without --pod-cidr") || strings.Contains(err.Error(), "check the token") {
		t.Errorf("register with a pod CIDR outside the pod network: %v (ctx %v), want a fast refusal saying why", err, ctx.Err())
	}
}

// A restarted agent whose --labels differ from its Node's labels still
// registers: it changes the labels a node may change, and leaves the
// others to the admin (the server would refuse the whole update).
func TestRegisterKeepsAdminLabels(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	nodeClient := c.Token(t, "node:n1")
	a, err := New(Options{Client: nodeClient, NodeName: "n1", Address: "192.0.2.7", Labels: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.register(ctx, false, "AgentStarting", "starting")
	if err != nil {
		t.Fatal(err)
	}
	upd := api.Clone(n)
	upd.Metadata.Labels["zone"] = "b"
	if _, err := c.Client.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	a.opts.Labels = map[string]string{"zone": "a", "rack": "3", api.NodeLabelPrefix + "disk": "ssd"}
	n, err = a.register(ctx, true, "AgentReady", "ready")
	if err != nil {
		t.Fatalf("register after the admin relabelled the node: %v", err)
	}
	if l := n.Metadata.Labels; l["zone"] != "b" || l["rack"] != "" || l[api.NodeLabelPrefix+"disk"] != "ssd" || l[api.LabelHostname] != "n1" {
		t.Errorf("labels = %v", l)
	}
}

// A heartbeat the server refuses for the node's credentials (the node
// deleted, the server restored from a backup made before the node
// joined) says what to do, not only that it failed: retrying never helps.
func TestHeartbeatRefusedSaysJoinAgain(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := *c.Config
	cfg.Token = "capstan-node-unknown-to-this-server"
	cl, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	a, err := New(Options{Client: cl, NodeName: "n1", Address: "192.0.2.7", HeartbeatInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { a.heartbeat(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(logs.String(), "restart the agent with --token")
	}) {
		t.Fatalf("no advice to join again within 30s; the log:\n%s", logs.String())
	}
}

// Version skew (docs/cluster.md#upgrading): an agent newer than its API
// server is refused before it registers, saying to upgrade the servers
// first; an older agent registers and shows its version on the Node.
func TestRegisterChecksServerVersion(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Version: version.Info{Version: "v1.4.2"}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		agent string
		want  string // substring of the error; empty for none
	}{
		{"v1.5.0", "agent v1.5.0 is newer than the API server v1.4.2: upgrade the servers first"},
		{"v2.0.0", "a different major version"},
		{"v1.3.7", ""},
		{"v1.4.2", ""},
	} {
		a, err := New(Options{Client: c.Token(t, "node:n1"), NodeName: "n1", Address: "192.0.2.7", Version: tc.agent})
		if err != nil {
			t.Fatal(err)
		}
		n, err := a.registerRetrying(ctx, false, "AgentStarting", "")
		if tc.want != "" {
			if err == nil || ctx.Err() != nil || !errors.Is(err, version.ErrSkew) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("agent %s, server v1.4.2: register = %v (ctx %v), want a fast refusal containing %q", tc.agent, err, ctx.Err(), tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("agent %s, server v1.4.2: %v", tc.agent, err)
		}
		if n.Status.Info.AgentVersion != tc.agent {
			t.Errorf("agent %s: the Node shows agentVersion %q", tc.agent, n.Status.Info.AgentVersion)
		}
	}
}
