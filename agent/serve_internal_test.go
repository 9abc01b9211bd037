package agent

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestLogsExecOfAPodNotHere: 'capstan logs' and 'capstan exec' of a pod
// the API server finds bound to a node whose agent does not run it (it
// moved: a replacement of the same name, or it has not reached the agent
// yet) say which pod, as users know it, APP/NAME, with its UID as the
// detail that tells it from a replacement, and what to do; they named the
// UID alone ("pod 7f3a... does not run on node n1").
func TestLogsExecOfAPodNotHere(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	a := &Agent{opts: Options{NodeName: "n1", Now: time.Now}, workers: map[string]*worker{}, log: slog.New(slog.DiscardHandler)}
	c.FakeAgent(t, "n1", a.handler())
	ctx := context.Background()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "web-0", App: "shop"}
	p.Spec.NodeName = "n1"
	p.Spec.Containers = []api.Container{{Name: "web", Image: "img"}}
	obj, err := c.Client.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	uid := obj.(*api.Pod).Metadata.UID
	check := func(what string, err error) {
		t.Helper()
		for _, want := range []string{"pod shop/web-0 (uid " + uid + ") does not run on node n1", "capstan describe pod shop/web-0"} {
			if !client.IsNotFound(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s of a pod the node does not run: %v; want a 404 saying %q", what, err, want)
			}
		}
	}
	_, err = c.Client.Logs(ctx, api.KeyOf(p), client.LogOptions{Tail: -1})
	check("logs", err)
	_, err = c.Client.Exec(ctx, api.KeyOf(p), client.ExecOptions{Command: []string{"true"}})
	check("exec", err)
}

// An API server that names no pod (older than the agent), or names it
// wrongly, gets the UID alone.
func TestPodNotHereWithoutItsName(t *testing.T) {
	a := &Agent{opts: Options{NodeName: "n1"}, workers: map[string]*worker{}}
	for _, q := range []string{"", "?pod=", "?pod=Not/A%20Name", "?pod=shop"} {
		r := httptest.NewRequest(http.MethodGet, "/pods/u1/log"+q, nil)
		r.SetPathValue("uid", "u1")
		_, code, err := a.container(r)
		if code != http.StatusNotFound || err == nil || err.Error() != "pod u1 does not run on node n1" {
			t.Errorf("%q: %d %v", q, code, err)
		}
	}
}
