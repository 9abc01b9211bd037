package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A command line capstan cannot run (an unknown command, flag or kind, a
// wrong number of arguments, a bad flag value) exited 1, as a not-found
// object or a refused request does, so a script could not tell a typo from
// a missing object. It now exits 2 and says where the help is; rollout
// status keeps 1, since its 2 means --timeout passed.
//
// "get deploy" or "get ns" said only "unknown kind": it now names the
// Capstan kind that does their work (workloads, apps), and "get PODS" is
// "get pods", as in kubectl. "scale", "apply", "rollout undo" and "rollout
// history" were unknown commands; they now say what to do in Capstan
// (change git, capstan rollback, capstan history). "rollout frob" exited 1
// as rollout status's usage errors do; it exits 2 as the docs say. So do
// "exec POD" without a command (it said "requires at least 2 arg(s)"),
// "rollback APP" without --to and an http:// --server (exit 1, "client
// config: server ...", as if the config file were wrong).
func TestUsageErrorsExit2(t *testing.T) {
	// No server is needed: the command line is refused before the config
	// is read.
	cfg := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"frob"}, 2, `unknown command "frob" for "capstan"`},
		{[]string{"gte", "pods"}, 2, "did you mean get?"},
		{[]string{"token", "frob"}, 2, `unknown command "frob" for "capstan token"`},
		{[]string{"get"}, 2, "capstan get --help"},
		{[]string{"get", "widgets"}, 2, `unknown kind "widgets"`},
		{[]string{"get", "pods", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"get", "pods", "-o", "xml"}, 2, `output "xml"`},
		{[]string{"get", "pods", "--app", "shop", "-A"}, 2, "contradict"},
		{[]string{"get", "pods", "web-1"}, 2, "give --app APP or APP/NAME"},
		{[]string{"get", "pods", "a", "b"}, 2, "capstan get --help"},
		{[]string{"describe"}, 2, "capstan describe --help"},
		{[]string{"delete", "widget", "x"}, 2, `unknown kind "widget"`},
		// A kubectl user's kind names the Capstan kind that plays its part.
		{[]string{"get", "deploy"}, 2, `unknown kind "deploy": Kubernetes' deployments, stateful sets, daemon sets and cron jobs are Capstan's workloads, an app's pod groups ('capstan get workloads'); kinds: nodes,`},
		{[]string{"describe", "ns", "shop"}, 2, `Kubernetes' namespaces are Capstan's apps`},
		{[]string{"describe", "deploy/web", "--app", "shop"}, 2, `unknown kind "deploy": Kubernetes' deployments`},
		{[]string{"get", "pvc", "--app", "shop"}, 2, `Capstan's volumes`},
		{[]string{"logs"}, 2, "capstan logs --help"},
		{[]string{"logs", "web-1"}, 2, "give --app APP or APP/NAME"},
		{[]string{"exec", "shop/web-1", "ls"}, 2, "write the command after --"},
		{[]string{"exec", "shop/web-1"}, 2, "write the command after --: capstan exec POD -- COMMAND [ARGS...] (see 'capstan exec --help')"},
		{[]string{"token", "create", "--role", "bogus"}, 2, `--role: role "bogus": want admin, viewer, join or node:<name>`},
		{[]string{"token", "create", "--ttl", "-1h"}, 2, "--ttl -1h0m0s: want 0 (forever) or more"},
		{[]string{"token", "create", "--uses", "-2"}, 2, "--uses -2: want 0 (no limit) or more"},
		{[]string{"rollback", "shop"}, 2, "--to SHA is required: pick one from 'capstan history shop'"},
		{[]string{"get", "pods", "--server", "http://127.0.0.1:7443"}, 2, `--server "http://127.0.0.1:7443": want https://HOST:PORT`},
		{[]string{"plan", "--bogus"}, 2, "unknown flag: --bogus"},
		// kubectl verbs Capstan does another way say which, whatever
		// their arguments.
		{[]string{"scale", "wl", "shop/web", "--replicas", "3"}, 2, "there is no 'capstan scale': an app's replicas are set in git: change replicas: of its pod group in the repository and push"},
		{[]string{"apply", "-f", "web.yaml"}, 2, "there is no 'capstan apply': objects come from the git repository: commit the change and push it"},
		{[]string{"rollout", "undo", "shop", "--to-revision", "2"}, 2, "there is no 'capstan rollout undo': 'capstan rollback APP --to SHA'"},
		{[]string{"rollout", "history", "shop"}, 2, "there is no 'capstan rollout history': 'capstan history APP'"},
		{[]string{"events"}, 2, "'capstan get events [--app APP] [--for KIND/NAME]"},
		// Only rollout status keeps 1 for its usage errors.
		{[]string{"rollout", "frob"}, 2, `unknown command "frob" for "capstan rollout"`},
		{[]string{"rollout", "status", "--bogus"}, 1, "unknown flag: --bogus"},
		{[]string{"rollout", "status"}, 1, "accepts 1 arg(s)"},
		// Not usage errors: the command line is fine, the config is missing.
		{[]string{"get", "pods"}, 1, "no client config"},
		{[]string{"get", "app", "shop"}, 1, "no client config"},
		{[]string{"get", "PODS"}, 1, "no client config"},                               // kinds in any case, as kubectl
		{[]string{"get", "pods", "--server", "127.0.0.1:7443"}, 1, "no client config"}, // https://, as kubectl
		{[]string{"describe", "Svc", "shop/web"}, 1, "no client config"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := run(t, append(tt.args, "--config", cfg)...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if got := exitCode(err); got != tt.code || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("exit %d %q, want exit %d and %q", got, err, tt.code, tt.wantErr)
			}
		})
	}
	// Help and a bare command group still exit 0.
	for _, args := range [][]string{{"--help"}, {}, {"token"}, {"get", "--help"}} {
		if out, err := run(t, args...); err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}
