package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

// startEtcd runs a one-member etcd (Debian's etcd-server) in the root
// namespace on the hosts' network, its data under Base (the sweep removes
// it after a crash), until the test ends; it returns the client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	testenv.RequireBinaries(t, "etcd")
	dir := filepath.Join(Base, "etcd")
	client, peer := "http://"+subnet+"1:23790", "http://127.0.0.1:23800"
	logf, err := os.Create(filepath.Join(Base, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("etcd", "--name", "e2e", "--data-dir", dir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "e2e="+peer)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start etcd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		os.RemoveAll(dir)
	})
	testenv.Eventually(t, 30*time.Second, "etcd to answer on "+client, func() bool {
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("e2e: etcd exited:\n%s", b)
		default:
		}
		return exec.Command("etcdctl", "--endpoints", client, "endpoint", "health").Run() == nil
	})
	return client
}

// podState is what a restart would change in a pod: its UID, and each
// container's ID, start time and restart count.
func podState(p *api.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.Metadata.Name, p.Metadata.UID)
	for _, cs := range p.Status.Containers {
		fmt.Fprintf(&b, " %s:%s:%d", cs.Name, cs.ContainerID, cs.RestartCount)
		if cs.State.Running != nil {
			fmt.Fprintf(&b, ":%s", cs.State.Running.StartedAt.Format(time.RFC3339Nano))
		}
	}
	return b.String()
}

// TestStoreMigrate is the acceptance test of capstan store migrate: a
// cluster running pods on real containerd moves from bbolt to etcd (the
// server restarted on it) and back, and no pod restarts: every pod keeps
// its UID, containers and restart count, the service its VIP, and the
// cluster takes writes on each new store (a scale-up runs new pods).
func TestStoreMigrate(t *testing.T) {
	c := New(t, Options{Hosts: 2})
	etcd := startEtcd(t)
	c.DeployEcho(4)
	pods := waitSpread(t, c, 4, 3*time.Minute, func(map[string][]*api.Pod) bool { return true })
	vip := c.EchoVIP()
	want := map[string]string{}
	for _, p := range pods {
		want[p.Metadata.Name] = podState(p)
	}
	unchanged := func(where string) {
		t.Helper()
		got := map[string]string{}
		for _, p := range c.Pods() {
			got[p.Metadata.Name] = podState(p)
		}
		for name, w := range want {
			if got[name] != w {
				t.Fatalf("%s: pod %s is %q, was %q: it restarted or was replaced", where, name, got[name], w)
			}
		}
		if got := c.EchoVIP(); got != vip {
			t.Fatalf("%s: the echo service's VIP is %s, was %s", where, got, vip)
		}
		from := ReadyPods(c.Pods())["h0"][0]
		c.WaitFor("an answer through the VIP "+where, time.Minute, func() bool {
			_, _, err := c.Get(from, vip+":80")
			return err == nil
		})
	}
	scale := func(replicas int32, where string) {
		t.Helper()
		c.WaitFor("the workload scaled to "+fmt.Sprint(replicas)+" "+where, time.Minute, func() bool {
			o, err := c.Admin.Get(context.Background(), api.Key{Kind: api.KindWorkload, App: EchoApp, Name: "echo"})
			if err != nil {
				return false
			}
			w := o.(*api.Workload)
			w.Spec.Replicas = replicas
			_, err = c.Admin.Update(context.Background(), w)
			return err == nil
		})
		waitSpread(t, c, int(replicas), 3*time.Minute, func(map[string][]*api.Pod) bool { return true })
	}

	out, err := c.CLI(c.AdminConfigPath(), "store", "migrate", "--to", "etcd", "--etcd-endpoints", etcd)
	if err != nil || !strings.Contains(out, "--store etcd --etcd-endpoints "+etcd) {
		t.Fatalf("store migrate --to etcd: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	c.RestartServer("--store", "etcd", "--etcd-endpoints", etcd)
	for _, h := range c.Hosts {
		h.WaitReady()
	}
	unchanged("on etcd")
	scale(5, "on etcd")
	for _, p := range c.Pods() {
		if _, ok := want[p.Metadata.Name]; !ok {
			want[p.Metadata.Name] = podState(p)
		}
	}

	// And back to bbolt, the old file moved away first.
	server := filepath.Join(Base, "server")
	if err := os.Rename(filepath.Join(server, "capstan.db"), filepath.Join(server, "capstan.db.before-etcd")); err != nil {
		t.Fatal(err)
	}
	if out, err := c.CLI(c.AdminConfigPath(), "store", "migrate", "--to", "bbolt"); err != nil || !strings.Contains(out, "--store bbolt") {
		t.Fatalf("store migrate --to bbolt: %v\n%s", err, out)
	}
	c.RestartServer()
	for _, h := range c.Hosts {
		h.WaitReady()
	}
	unchanged("back on bbolt")
	scale(6, "back on bbolt")
	unchanged("after the scale-up on bbolt")
}
