package imports

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestModuleFollowsImportRules lists every package of the module and fails on an import the rules do not allow.
func TestModuleFollowsImportRules(t *testing.T) {
	graph := goList(t)
	if len(graph) < 20 {
		t.Fatalf("go list found only %d packages; is the test running inside the module?", len(graph))
	}
	for _, v := range Check(graph) {
		t.Error(v)
	}
}

// TestExceptionsStillExist keeps the list of known exceptions honest: one
// that no longer occurs must be deleted from the list.
func TestExceptionsStillExist(t *testing.T) {
	graph := goList(t)
	for pair, why := range exceptions {
		found := false
		for _, imp := range graph[Module+"/"+pair[0]] {
			if imp == Module+"/"+pair[1] {
				found = true
			}
		}
		if !found {
			t.Errorf("exception %s -> %s (%s) no longer occurs: remove it from the list", pair[0], pair[1], why)
		}
	}
}

func TestCheck(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	for _, tc := range []struct {
		name     string
		from, to string
		bad      bool
	}{
		{"component uses the API package", "proxy", "apiserver/api", false},
		{"component uses the client", "scheduler", "apiserver/client", false},
		{"controller uses the runtime", "reconcile/node", "reconcile", false},
		{"within a component", "agent", "agent/runtime", false},
		{"plan uses the scheduler core", "plan", "scheduler", false},
		{"assembly imports anything", "cmd/capstan", "apiserver/store", false},
		{"outside the module is ignored", "proxy", "sigs.k8s.io/knftables", false},
		{"a component imports another", "proxy", "dns", true},
		{"a controller imports another controller", "reconcile/node", "reconcile/gc", true},
		{"the scheduler imports a controller", "scheduler", "reconcile/workload", true},
		{"a component touches the store", "gitsync", "apiserver/store", true},
		{"the client touches the store", "apiserver/client", "apiserver/store", true},
		{"the agent imports gitsync", "agent/services", "gitsync", true},
		{"plan imports the agent", "plan", "agent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to
			if !strings.Contains(strings.SplitN(to, "/", 2)[0], ".") {
				to = m(to)
			}
			got := Check(map[string][]string{m(tc.from): {to}})
			if bad := len(got) > 0; bad != tc.bad {
				t.Fatalf("%s -> %s: violations %v, want bad=%v", tc.from, tc.to, got, tc.bad)
			}
		})
	}
}

func TestCheckIgnoresKnownExceptions(t *testing.T) {
	for pair := range exceptions {
		if got := Check(map[string][]string{Module + "/" + pair[0]: {Module + "/" + pair[1]}}); len(got) != 0 {
			t.Errorf("known exception %v reported: %v", pair, got)
		}
		if mayImport(pair[0], pair[1]) {
			t.Errorf("exception %v is allowed by the rules anyway: remove it from the list", pair)
		}
	}
}

// goList returns package -> non-test imports for the module.
func goList(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-f",
		`{{.ImportPath}} {{join .Imports " "}}`,
		Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		graph[f[0]] = append(graph[f[0]], f[1:]...)
	}
	return graph
}
