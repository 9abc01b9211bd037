package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// vipPoller sends requests to a URL until stopped and counts those that
// fail: what a user of the app sees while commits roll it.
type vipPoller struct {
	requests, failures atomic.Int64
	last               atomic.Value
	stop               chan struct{}
	wg                 sync.WaitGroup
}

func (e *upEnv) pollVIP(url string) *vipPoller {
	p := &vipPoller{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			body, err := e.curl(url)
			p.requests.Add(1)
			if err != nil || !strings.Contains(body, "You've hit") {
				p.failures.Add(1)
				p.last.Store(fmt.Sprintf("%v: %s", err, body))
			}
		}
	}()
	return p
}

// done stops the poller and fails the test if a request failed.
func (p *vipPoller) done(t *testing.T, what string) {
	t.Helper()
	close(p.stop)
	p.wg.Wait()
	t.Logf("%s: %d requests through the VIP, %d failed", what, p.requests.Load(), p.failures.Load())
	if p.failures.Load() > 0 {
		t.Errorf("%s: %d of %d requests failed; last: %v", what, p.failures.Load(), p.requests.Load(), p.last.Load())
	}
}

// app reads an app through the CLI.
func (e *upEnv) app(name string) (*api.App, string) {
	out, err := e.cli("get", "app", name+"/"+name, "-o", "json")
	if err != nil {
		return nil, out
	}
	var a api.App
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		return nil, out
	}
	return &a, out
}

// serviceVIP is the VIP of an app's service.
func (e *upEnv) serviceVIP(name string) string {
	e.t.Helper()
	out, err := e.cli("get", "services", "-A", "-o", "json")
	if err != nil {
		e.t.Fatalf("%v\n%s", err, out)
	}
	var svcs struct{ Items []api.Service }
	if err := json.Unmarshal([]byte(out), &svcs); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if s.Metadata.Name == name {
			return s.Spec.VIP
		}
	}
	e.t.Fatalf("no service %s:\n%s", name, out)
	return ""
}

// TestUpRollbackJourney is the operator's rollback journey on real
// containerd through capstan up: a commit that changed only the
// frontend's config file is rolled back by 'capstan rollback', the
// rollout status command it prints follows the rollback to completion,
// and the pods serve the old greeting again; with rollback: "auto", a commit
// whose image does not exist and one whose CPU request no node can hold
// are reverted in git by the cluster, while the old pods keep answering
// every request, and history and describe say what happened.
func TestUpRollbackJourney(t *testing.T) {
	e := newUpEnv(t, "")
	e.start()
	e.wait("frontend running", 5*time.Minute, func() (bool, string) { return e.running("frontend", 3, "") })
	url := "http://" + e.serviceVIP("frontend") + "/"
	first := gitCmd(t, e.repo, "rev-parse", "HEAD")
	// serves waits until every pod behind the VIP shows the greeting.
	serves := func(greeting string) {
		t.Helper()
		e.wait("every frontend shows "+greeting, 3*time.Minute, func() (bool, string) {
			if ok, out := e.running("frontend", 3, ""); !ok {
				return false, out
			}
			for range 6 {
				if body, err := e.curl(url); err != nil || !strings.Contains(body, "greeting: "+greeting) {
					return false, fmt.Sprintf("%v: %s", err, body)
				}
			}
			return true, ""
		})
	}
	serves("Hello from config/greeting.txt")

	// A commit that changes only the config file rolls the pods; rolling
	// the app back to the commit before puts the file back.
	if err := os.WriteFile(filepath.Join(e.repo, "config", "greeting.txt"), []byte("Hello from the second greeting\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "commit", "-qam", "new greeting")
	serves("Hello from the second greeting")
	out, err := e.cli("rollback", "shop", "--to", first)
	if err != nil || !strings.Contains(out, "config/greeting.txt") {
		t.Fatalf("capstan rollback shop --to %s: %v\n%s", first, err, out)
	}
	// The rollout status command the rollback prints, run at once, waits
	// for sync to apply the rollback and follows it to completion: it
	// never judges the commit rolled back.
	if out, err := e.cli(rolloutAfterRollback(t, out)...); err != nil || strings.Contains(out, "rollout failed") {
		t.Errorf("rollout status right after the rollback: %v\n%s", err, out)
	}
	serves("Hello from config/greeting.txt")

	// Automatic rollback with a short progress deadline.
	e.commit("shop rolls back by itself", func(s string) string {
		s = strings.Replace(s, "apps: shop: pods: {", "apps: shop: rollback: \"auto\"\napps: shop: pods: {", 1)
		return strings.Replace(s, "\tfrontend: {\n", "\tfrontend: {\n\t\tstrategy: progressDeadline: 20\n", 1)
	})
	badCommits := []struct{ what, from, to string }{
		{"an image that does not exist", "examples/hello:v1", "examples/hello:v404"},
		{"a CPU request no node can hold", `cpu: "100m", memory: "32Mi"`, `cpu: "512", memory: "32Mi"`},
	}
	for _, bc := range badCommits {
		e.wait("frontend settled", 3*time.Minute, func() (bool, string) {
			a, out := e.app("shop")
			head, err := gitTry(e.repo, "rev-parse", "HEAD")
			if a == nil || err != nil || a.Status.SyncedCommit != head {
				return false, fmt.Sprint(out, err)
			}
			return e.running("frontend", 3, "hello:v1")
		})
		poll := e.pollVIP(url)
		bad := e.commit("frontend with "+bc.what, func(s string) string { return strings.Replace(s, bc.from, bc.to, 1) })
		e.wait("the cluster reverts "+bad, 5*time.Minute, func() (bool, string) {
			// The server commits the revert into this repository: a
			// read may meet its ref mid-write.
			msg, err := gitTry(e.repo, "log", "-1", "--format=%B")
			return err == nil && strings.Contains(msg, "Capstan-Auto-Revert: "+bad), fmt.Sprint(msg, err)
		})
		revert := gitCmd(t, e.repo, "rev-parse", "HEAD")
		e.wait("frontend back on v1 at the revert", 3*time.Minute, func() (bool, string) {
			a, out := e.app("shop")
			if a == nil || a.Status.SyncedCommit != revert {
				return false, out
			}
			return e.running("frontend", 3, "hello:v1")
		})
		poll.done(t, "while "+bc.what+" was reverted")
		if out, err := e.cli("rollout", "status", "shop", "-w", "--timeout", "2m"); err != nil {
			t.Errorf("rollout status after the revert of %s: %v\n%s", bc.what, err, out)
		}
		if out, err := e.cli("history", "shop"); err != nil || !strings.Contains(out, "Rollback app shop to") {
			t.Errorf("history after the revert of %s: %v\n%s", bc.what, err, out)
		}
		if out, err := e.cli("describe", "app", "shop"); err != nil || !strings.Contains(out, "AutoReverted") {
			t.Errorf("describe app after the revert of %s: %v\n%s", bc.what, err, out)
		}
	}
}

// rolloutAfterRollback is the rollout status command the rollback's
// output says to follow it with, with a timeout.
func rolloutAfterRollback(t *testing.T, out string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "follow with 'capstan ")
	cmd, _, ok2 := strings.Cut(rest, "'")
	if !ok || !ok2 || !strings.HasPrefix(cmd, "rollout status shop -w --commit ") {
		t.Fatalf("the rollback does not say how to follow its rollout:\n%s", out)
	}
	return append(strings.Fields(cmd), "--timeout", "3m")
}
