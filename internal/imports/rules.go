// Package imports holds Capstan's import rules and checks a package graph
// against them. The rules hold for non-test code; tests may start real parts
// of other components (a real API server, a registry, hollow nodes). The rules are written out in docs/architecture.md; the test
// in this package runs `go list` over the module and fails on a new import
// that breaks them. The check itself is a pure function of the graph.
package imports

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Module is the module path every rule is relative to.
const Module = "github.com/capstanhq/capstan"

// shared may be imported by every package: the resource model and wire
// contract, the controller runtime, and narrow protocol and PKI helpers.
var shared = []string{
	"apiserver/api",
	"apiserver/wire",
	"apiserver/client",
	"reconcile",
	"internal/atomicfile",
	"internal/pki",
	"internal/remotecmd",
	"secrets",
	"version",
}

// assembly may import anything: they wire components together. The
// control plane (store, API server, git sync, registry, controllers) and
// the node (agent, routes, proxy, DNS) are assembled in packages of their
// own so that the binary and the end-to-end tests start the same thing;
// cmd/capstan only turns flags into their Options.
var assembly = []string{"cmd/...", "test/...", "examples/...", "controlplane", "node"}

// allowed lists, per package (or tree with "/..."), the packages of other
// components it may import beyond the shared ones. A package may always
// import packages of its own component (the same first path element).
var allowed = map[string][]string{
	// Only the API server touches the store.
	"apiserver": {"apiserver/store"},
	// The test harness starts a real server.
	"apiserver/apiservertest": {"apiserver", "apiserver/store"},
	// The applier joins a git snapshot and the schema.
	"gitsync/applier": {"gitsync", "schema/..."},
	// A rollback loads the app's descriptors at both commits.
	"gitsync/rollback": {"gitsync", "schema"},
	// Automatic revert finds the failed rollout with the app
	// controller's desired workloads, and the completed ones (where it
	// goes back to) with rollout's judgement; it evaluates the
	// descriptors in the sandbox, as sync does.
	"gitsync/autorevert": {"reconcile/app", "rollout", "schema/sandbox"},
	// Rollout progress compares each workload with the spec the app
	// controller gives it for the synced commit.
	"rollout": {"reconcile/app"},
	// plan runs the controllers' and the scheduler's pure cores on two
	// revisions it reads from git and evaluates in the sandbox.
	"plan": {"schema/...", "scheduler", "reconcile/app", "reconcile/workload", "reconcile/everynode", "gitsync"},
	// The node's services feed its DNS server.
	"agent/services": {"dns"},
	// Test harnesses.
	"internal/testimage": {"registry"},
	"internal/nodetest":  {"agent/network", "agent/runtime", "internal/testenv"},
	"internal/etcdtest":  {"internal/testenv"},
	"dns/dnsload/...":    {"dns"},
	// The forge component plans pull requests with plan (and its
	// loaders), reads their heads with gitsync, and reads the records
	// the applier labels and the controller's desired workloads.
	"forge/...": {"gitsync", "gitsync/applier", "plan", "schema/...", "reconcile/app"},
}

// exceptions are imports that break the rules today and are to be removed
// (issue: seams). Each is one importer -> imported pair; no new ones.
var exceptions = map[[2]string]string{}

// Violation is one import that breaks the rules.
type Violation struct {
	Importer, Imported string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s: not allowed by the import rules in docs/architecture.md", v.Importer, v.Imported)
}

// Check returns the non-test imports of graph (package -> its imports, module-relative
// or full paths; packages outside the module are ignored) that break the
// rules, sorted.
func Check(graph map[string][]string) []Violation {
	var out []Violation
	for pkg, imps := range graph {
		from, ok := relative(pkg)
		if !ok || matchAny(from, assembly) {
			continue
		}
		for _, imp := range imps {
			to, ok := relative(imp)
			if !ok || mayImport(from, to) {
				continue
			}
			if _, known := exceptions[[2]string{from, to}]; known {
				continue
			}
			out = append(out, Violation{Importer: from, Imported: to})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Importer != out[j].Importer {
			return out[i].Importer < out[j].Importer
		}
		return out[i].Imported < out[j].Imported
	})
	return out
}

// guarded packages may be imported only by the packages listed (and the
// assembly), whatever the other rules say.
var guarded = map[string][]string{
	"apiserver/store": {"apiserver", "apiserver/store", "apiserver/apiservertest"},
}

// forbidden pairs hold even inside one component: the server never imports
// its own client (the wire contract is shared, not borrowed).
var forbidden = map[[2]string]bool{
	{"apiserver", "apiserver/client"}: true,
}

func mayImport(from, to string) bool {
	if only, ok := guarded[to]; ok {
		return matchAny(from, only)
	}
	if forbidden[[2]string{from, to}] {
		return false
	}
	if component(from) == component(to) || matchAny(to, shared) {
		return true
	}
	for pattern, tos := range allowed {
		if match(from, pattern) && matchAny(to, tos) {
			return true
		}
	}
	return false
}

// relative is p relative to the module, or false for a package outside it.
func relative(p string) (string, bool) {
	return strings.CutPrefix(p, Module+"/")
}

// component is a package's first path element; under internal/ and
// reconcile/ each package is its own component (the controllers meet only
// through API objects, like any two components).
func component(p string) string {
	first, rest, _ := strings.Cut(p, "/")
	if (first == "internal" || first == "reconcile") && rest != "" {
		return first + "/" + strings.SplitN(rest, "/", 2)[0]
	}
	return first
}

func match(p, pattern string) bool {
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == tree || strings.HasPrefix(p, tree+"/")
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

func matchAny(p string, patterns []string) bool {
	for _, pat := range patterns {
		if match(p, pat) {
			return true
		}
	}
	return false
}
