package applier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/schema"
	"github.com/cockroachdb/datadriven"
	"golang.org/x/crypto/ssh"
)

// world is one scenario: a git repository, an API server and a syncer
// whose sink is the applier.
type world struct {
	t       *testing.T
	repo    string
	cluster *apiservertest.Cluster
	syncer  *gitsync.Syncer
	verify  bool
	hashes  *regexp.Regexp
	// templates are the pod template hashes of the last rolls command.
	templates map[string]string
}

// initOptions are the arguments of the init command.
type initOptions struct {
	verify       bool
	maxFileBytes int64
	prune        gitsync.PrunePolicy
}

func scanInit(t *testing.T, d *datadriven.TestData) initOptions {
	o := initOptions{verify: d.HasArg("verify"), prune: gitsync.PrunePolicy{AllowAll: d.HasArg("allow-prune-all")}}
	if d.HasArg("max-file-bytes") {
		var n int
		d.ScanArgs(t, "max-file-bytes", &n)
		o.maxFileBytes = int64(n)
	}
	if d.HasArg("max-share") {
		var v string
		d.ScanArgs(t, "max-share", &v)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		o.prune.MaxShare = f
	}
	return o
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (w *world) start(o initOptions) {
	t := w.t
	verify := o.verify
	w.hashes = regexp.MustCompile(`\b[0-9a-f]{12,40}\b`)
	w.repo = t.TempDir()
	git(t, w.repo, "init", "-q", "-b", "main")
	git(t, w.repo, "commit", "-q", "--allow-empty", "-m", "empty start")
	w.cluster = apiservertest.Start(t, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: w.cluster.Client, RepoURLs: map[string]string{"demo": w.repo},
		Load: schema.LoadOptions{MaxFileBytes: o.maxFileBytes}, SecretsDir: filepath.Join(w.cluster.DataDir, "secrets")})
	if err != nil {
		t.Fatal(err)
	}
	rc := gitsync.RepoConfig{Name: "demo", URL: w.repo, Branch: "main", Path: "apps", Prune: o.prune}
	if verify {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		sp, _ := ssh.NewPublicKey(pub)
		rc.Verify = gitsync.Verify{Enabled: true, SSHKeys: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " trusted@example.com\n"}
	}
	w.syncer, err = gitsync.New(gitsync.Options{DataDir: t.TempDir(), Repos: []gitsync.RepoConfig{rc}, Sink: ap, DisableWatch: true})
	if err != nil {
		t.Fatal(err)
	}
}

// state prints the apps, their workloads' replicas and images, and the
// revisions of each app, with commits named by their subject line.
func (w *world) state(ctx context.Context) string {
	c := w.cluster.Client
	subjects := map[string]string{}
	for _, line := range strings.Split(git(w.t, w.repo, "log", "--all", "--format=%H %s", "--reflog"), "\n") {
		if sha, subj, ok := strings.Cut(line, " "); ok {
			subjects[sha] = subj
		}
	}
	name := func(sha string) string {
		if s, ok := subjects[sha]; ok {
			return fmt.Sprintf("%q", s)
		}
		return "<none>"
	}
	var b strings.Builder
	apps, _, err := c.List(ctx, api.KindApp, client.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if len(apps) == 0 {
		b.WriteString("no apps\n")
	}
	for _, o := range apps {
		a := o.(*api.App)
		fmt.Fprintf(&b, "app %s: synced %s, last %s", a.Metadata.Name, name(a.Status.SyncedCommit), a.Status.LastSyncResult)
		if a.Status.LastSyncResult == api.SyncRejected {
			fmt.Fprintf(&b, " at %s", name(a.Status.AttemptedCommit))
		}
		for _, cd := range a.Status.Conditions {
			if cd.Status != api.ConditionTrue {
				fmt.Fprintf(&b, ", %s=%s (%s)", cd.Type, cd.Status, cd.Reason)
			}
		}
		b.WriteString("\n")
		for _, wl := range a.Spec.Workloads {
			var imgs []string
			for _, ct := range wl.Spec.Template.Containers {
				imgs = append(imgs, ct.Image)
			}
			fmt.Fprintf(&b, "  %s x%d %s\n", wl.Name, wl.Spec.Replicas, strings.Join(imgs, ","))
		}
	}
	revs, _, err := c.List(ctx, api.KindRevision, client.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	sort.SliceStable(revs, func(i, j int) bool {
		ri, rj := revs[i].(*api.Revision), revs[j].(*api.Revision)
		if ri.Metadata.App != rj.Metadata.App {
			return ri.Metadata.App < rj.Metadata.App
		}
		return ri.Metadata.ResourceVersion < rj.Metadata.ResourceVersion
	})
	for _, o := range revs {
		r := o.(*api.Revision)
		who := r.Metadata.App
		if r.Metadata.Labels[applier.LabelScope] == applier.ScopeRepository {
			who = "repo:" + who
		}
		fmt.Fprintf(&b, "revision %s %s %s", who, name(r.Spec.Commit), r.Spec.Result)
		if r.Spec.Author == "" || r.Spec.Message == "" {
			b.WriteString(" (no author or message)")
		}
		if r.Spec.HistoryRewrite {
			b.WriteString(" (history rewrite)")
		}
		b.WriteString("\n")
		for _, e := range r.Spec.Errors {
			fmt.Fprintf(&b, "  %s\n", w.hashes.ReplaceAllString(e.String(), "<sha>"))
		}
	}
	return b.String()
}

// rolls prints each workload as new, rolled (its pod template changed
// since the last call: its pods roll) or same. The hashes themselves
// differ from run to run (secret versions are keyed by the store key).
func (w *world) rolls(ctx context.Context) string {
	apps, _, err := w.cluster.Client.List(ctx, api.KindApp, client.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	now := map[string]string{}
	var b strings.Builder
	for _, o := range apps {
		a := o.(*api.App)
		for _, wl := range a.Spec.Workloads {
			name := a.Metadata.Name + "/" + wl.Name
			now[name] = workload.TemplateHash(&wl.Spec.Template)
			switch before, ok := w.templates[name]; {
			case !ok:
				fmt.Fprintf(&b, "%s new\n", name)
			case before != now[name]:
				fmt.Fprintf(&b, "%s rolled\n", name)
			default:
				fmt.Fprintf(&b, "%s same\n", name)
			}
		}
	}
	w.templates = now
	return b.String()
}

// subject names a commit by its subject line.
func (w *world) subject(sha string) string {
	return fmt.Sprintf("%q", git(w.t, w.repo, "log", "-1", "--format=%s", sha))
}

// conditions prints every app's Synced condition.
func (w *world) conditions(ctx context.Context) string {
	apps, _, err := w.cluster.Client.List(ctx, api.KindApp, client.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range apps {
		a := o.(*api.App)
		for _, cd := range a.Status.Conditions {
			if cd.Type == "Synced" {
				fmt.Fprintf(&b, "condition %s Synced=%s %s: %s\n", a.Metadata.Name, cd.Status, cd.Reason, w.hashes.ReplaceAllString(cd.Message, "<sha>"))
			}
		}
	}
	return b.String()
}

func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		w := &world{t: t}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "init":
				w.start(scanInit(t, d))
				return ""
			case "symlink":
				var file, target string
				d.ScanArgs(t, "file", &file)
				d.ScanArgs(t, "target", &target)
				if err := os.Symlink(target, filepath.Join(w.repo, file)); err != nil {
					t.Fatal(err)
				}
				return ""
			case "write-raw":
				// A file name with any bytes: name is Go-quoted.
				var quoted string
				d.ScanArgs(t, "name", &quoted)
				file, err := strconv.Unquote(quoted)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(w.repo, file), []byte(d.Input+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return ""
			case "confirm-prune":
				held, err := w.syncer.ConfirmPrune("demo")
				if err != nil {
					return "error: " + w.hashes.ReplaceAllString(err.Error(), "<sha>")
				}
				return "confirmed " + w.subject(held)
			case "create-app":
				// An app from this repository made directly, as by an
				// earlier sync.
				var name string
				d.ScanArgs(t, "name", &name)
				a := api.KindApp.New().(*api.App)
				a.Metadata = api.ObjectMeta{Name: name, App: name, Labels: map[string]string{applier.LabelRepo: "demo"}}
				made, err := w.cluster.Client.Create(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				if d.HasArg("never-applied") {
					// As sync makes an app whose first commit it
					// rejected: nothing of it was ever deployed.
					a = made.(*api.App)
					a.Status.LastSyncResult, a.Status.AttemptedCommit = api.SyncRejected, strings.Repeat("e", 40)
					if _, err := w.cluster.Client.UpdateStatus(ctx, a); err != nil {
						t.Fatal(err)
					}
				}
				return ""
			case "git":
				// The input's words are the arguments of one git command
				// run in the repository.
				git(t, w.repo, strings.Fields(d.Input)...)
				return ""
			case "delete-app":
				var name string
				d.ScanArgs(t, "name", &name)
				if _, err := w.cluster.Client.Delete(ctx, api.Key{Kind: api.KindApp, App: name, Name: name}, client.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				return ""
			case "write":
				var file string
				d.ScanArgs(t, "file", &file)
				p := filepath.Join(w.repo, file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(d.Input+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return ""
			case "write-secret":
				// file=PATH [stranger]: the input's KEY=VALUE lines,
				// encrypted for the cluster (or for a key it lacks).
				var file string
				d.ScanArgs(t, "file", &file)
				w.writeSecret(file, d.Input, d.HasArg("stranger"))
				return ""
			case "remove-key":
				// file=NAME: a key file of the server's key ring gone
				// while the server runs.
				var file string
				d.ScanArgs(t, "file", &file)
				if err := os.Remove(filepath.Join(w.cluster.DataDir, "secrets", file)); err != nil {
					t.Fatal(err)
				}
				return ""
			case "rolls":
				// Which workloads' pod templates changed since the last
				// rolls: the pods a commit rolls, and those it leaves.
				return w.rolls(ctx)
			case "key-files":
				ents, err := os.ReadDir(filepath.Join(w.cluster.DataDir, "secrets"))
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				return strings.Join(names, "\n") + "\n"
			case "rm":
				var file string
				d.ScanArgs(t, "file", &file)
				git(t, w.repo, "rm", "-q", file)
				return ""
			case "commit":
				git(t, w.repo, "add", "-A")
				git(t, w.repo, "commit", "-q", "-m", d.Input)
				return ""
			case "revert":
				git(t, w.repo, "revert", "--no-edit", "HEAD")
				return ""
			case "reset":
				// Rewrite history: drop the last commit (a force-push).
				git(t, w.repo, "reset", "-q", "--hard", "HEAD~1")
				return ""
			case "sync":
				res, err := w.syncer.Sync(ctx, "demo")
				out := w.state(ctx)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					out = "sync error: " + maskedFirstLine(strings.ReplaceAll(err.Error(), w.cluster.DataDir, "DATA_DIR")) + "\n" + out
				}
				if d.HasArg("conditions") {
					out += w.conditions(ctx)
				}
				out = strings.ReplaceAll(out, w.repo, "REPO")
				return ageRecipient.ReplaceAllString(out, "age1<recipient>")
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func maskedFirstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	// Commit SHAs differ on every run; keep the message stable.
	for _, f := range strings.Fields(s) {
		if len(f) >= 7 && strings.Trim(f, "0123456789abcdef:,") == "" {
			s = strings.ReplaceAll(s, f, "<sha>")
		}
	}
	return s
}
