package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// capstan exec of a program missing from the image exited 1, like any
// failed request; it now exits as shells, docker and kubectl do: 127
// when the program is not found, 126 when it cannot run, with the
// agent's message. The agent here answers as a real one does
// (agent.handleExec); the real one is in agent's TestLogsAndExec.
func TestExecExitCodeOfAProgramThatCannotRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	answers := map[string]struct {
		code int
		err  string
	}{
		"/no/such/program": {127, `container web-0: exec: command cannot run: "/no/such/program" in image img: stat /no/such/program: no such file or directory (check the command of the exec, and that the image has the program)`},
		"/etc/hosts":       {126, `container web-0: exec: command cannot run: "/etc/hosts" in image img: permission denied (check the command of the exec, and that the image has the program)`},
		"/bin/false":       {1, ""},
		"/gone":            {-1, "container web-0 is gone"},
	}
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := remotecmd.Accept(w)
		if err != nil {
			return
		}
		a := answers[r.URL.Query().Get("command")]
		_ = remotecmd.Serve(r.Context(), conn, false, func(context.Context, remotecmd.Streams) (int, error) {
			if a.err != "" {
				return a.code, errors.New(a.err)
			}
			return a.code, nil
		})
	})
	c := apiservertest.Start(t, apiservertest.Options{})
	c.FakeAgent(t, "n1", agent)
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "web-0", App: "shop"}
	p.Spec.NodeName = "n1"
	p.Spec.Containers = []api.Container{{Name: "web", Image: "img"}}
	if _, err := c.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	cfg := c.Server.AdminConfigPath()
	for prog, a := range answers {
		_, err := run(t, "--config", cfg, "exec", "shop/web-0", "--", prog)
		want := a.code
		if want < 0 {
			want = 1
		}
		if got := exitCode(err); err == nil || got != want || (a.err != "" && !strings.Contains(err.Error(), a.err)) {
			t.Errorf("capstan exec -- %s: %v (exit %d), want exit %d saying %q", prog, err, got, want, a.err)
		}
	}
}
