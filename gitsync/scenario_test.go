package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/cockroachdb/datadriven"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// scenario drives a Syncer against a real repository from a script.
type scenario struct {
	t       *testing.T
	origin  *gitRepo
	dataDir string
	syncer  *Syncer
	rec     *recorder
	labels  map[string]string // sha -> commit subject
	trusted *openpgp.Entity
	other   *openpgp.Entity
	moved   string // where break-remote put the origin
}

func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		sc := &scenario{t: t, labels: map[string]string{}}
		datadriven.RunTest(t, path, sc.run)
	})
}

func (sc *scenario) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	switch d.Cmd {
	case "init":
		return sc.init(d)
	case "commit":
		return sc.commit(d)
	case "force-push":
		back := 1
		d.MaybeScanArgs(t, "back", &back)
		sc.origin.git("reset", "-q", "--hard", fmt.Sprintf("HEAD~%d", back))
		return sc.commit(d)
	case "delete-branch":
		sc.origin.git("checkout", "-q", "--detach")
		sc.origin.git("branch", "-q", "-D", "main")
		return "ok"
	case "restore-branch":
		sc.origin.git("checkout", "-q", "-b", "main")
		return "ok"
	case "break-remote":
		sc.moved = sc.origin.dir + ".moved"
		if err := os.Rename(sc.origin.dir, sc.moved); err != nil {
			t.Fatal(err)
		}
		return "ok"
	case "fix-remote":
		if err := os.Rename(sc.moved, sc.origin.dir); err != nil {
			t.Fatal(err)
		}
		return "ok"
	case "corrupt-clone":
		return sc.corrupt(d)
	case "sink-fail":
		sc.rec.mu.Lock()
		sc.rec.fail = errors.New("store unavailable")
		sc.rec.mu.Unlock()
		return "ok"
	case "sink-ok":
		sc.rec.mu.Lock()
		sc.rec.fail = nil
		sc.rec.mu.Unlock()
		return "ok"
	case "restart":
		// A new Syncer over the same data dir, as after a server restart.
		s, err := New(Options{DataDir: sc.dataDir, Repos: sc.syncer.Repos(), Sink: sc.rec, DisableWatch: true})
		if err != nil {
			t.Fatal(err)
		}
		sc.syncer = s
		return "ok"
	case "sync":
		return sc.sync(ctx)
	case "read":
		return sc.read(d)
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}

func (sc *scenario) init(d *datadriven.TestData) string {
	sc.origin = newGitRepo(sc.t)
	sc.dataDir = sc.t.TempDir()
	rc := RepoConfig{Name: "deploy", URL: "file://" + sc.origin.dir, Path: "apps"}
	d.MaybeScanArgs(sc.t, "path", &rc.Path)
	if d.HasArg("verify") {
		var err error
		if sc.trusted, err = openpgp.NewEntity("Trusted Tess", "", "tess@example.com", nil); err != nil {
			sc.t.Fatal(err)
		}
		if sc.other, err = openpgp.NewEntity("Mallory", "", "mallory@example.com", nil); err != nil {
			sc.t.Fatal(err)
		}
		rc.Verify = Verify{Enabled: true, OpenPGPKeys: armoredPublic(sc.t, sc.trusted)}
	}
	sc.rec = newRecorder()
	s, err := New(Options{DataDir: sc.dataDir, Repos: []RepoConfig{rc}, Sink: sc.rec, DisableWatch: true})
	if err != nil {
		return "error: " + err.Error()
	}
	sc.syncer = s
	return "ok"
}

// commit commits the files listed in the input ("path=content", or
// "-path" to delete), optionally signed (sign=trusted|other).
func (sc *scenario) commit(d *datadriven.TestData) string {
	var msg, sign string
	d.ScanArgs(sc.t, "msg", &msg)
	d.MaybeScanArgs(sc.t, "sign", &sign)
	files := map[string]string{}
	for _, line := range strings.Split(d.Input, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "-"):
			files[line[1:]] = ""
		default:
			p, content, ok := strings.Cut(line, "=")
			if !ok {
				sc.t.Fatalf("bad file line %q", line)
			}
			files[p] = content + "\n"
		}
	}
	var sha string
	switch sign {
	case "":
		sha = sc.origin.commit(msg, files)
	case "trusted", "other":
		key := sc.trusted
		if sign == "other" {
			key = sc.other
		}
		sha = sc.signedCommit(msg, files, key)
	default:
		sc.t.Fatalf("sign=%s: want trusted or other", sign)
	}
	sc.labels[sha] = msg
	return "ok"
}

func (sc *scenario) signedCommit(msg string, files map[string]string, key *openpgp.Entity) string {
	sc.origin.write(files)
	sc.origin.tick++
	r, err := git.PlainOpen(sc.origin.dir)
	if err != nil {
		sc.t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		sc.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		sc.t.Fatal(err)
	}
	who := &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(int64(1_700_000_000+sc.origin.tick*60), 0).UTC()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: who, Committer: who, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		sc.t.Fatal(err)
	}
	return h.String()
}

func (sc *scenario) corrupt(d *datadriven.TestData) string {
	var mode string
	d.ScanArgs(sc.t, "mode", &mode)
	dir := filepath.Join(sc.dataDir, "repos", "deploy")
	switch mode {
	case "head":
		if err := os.Remove(filepath.Join(dir, "HEAD")); err != nil {
			sc.t.Fatal(err)
		}
	case "objects":
		// Overwrite every object file and pack with garbage.
		n := 0
		err := filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			n++
			return os.WriteFile(p, []byte("garbage"), 0o644)
		})
		if err != nil || n == 0 {
			sc.t.Fatalf("corrupt objects: %v (%d files)", err, n)
		}
	case "refs":
		p := filepath.Join(dir, "refs", "remotes", "origin", "main")
		if err := os.WriteFile(p, []byte("not a sha\n"), 0o644); err != nil {
			sc.t.Fatal(err)
		}
	default:
		sc.t.Fatalf("mode=%s: want head, objects or refs", mode)
	}
	return "ok"
}

func (sc *scenario) label(sha string) string {
	if sha == "" {
		return "-"
	}
	if l, ok := sc.labels[sha]; ok {
		return fmt.Sprintf("%q", l)
	}
	return "?" + api.ShortCommit(sha)
}

func (sc *scenario) sync(ctx context.Context) string {
	before := len(sc.rec.snaps)
	res, _ := sc.syncer.Sync(ctx, "deploy")
	var b strings.Builder
	for _, s := range sc.rec.snaps[before:] {
		paths := "unknown"
		if s.Paths != nil {
			paths = "[" + strings.Join(s.Paths, " ") + "]"
		}
		fmt.Fprintf(&b, "apply %s by %s prev=%s paths=%s", sc.label(s.Commit), s.Author, sc.label(s.Previous), paths)
		if s.HistoryRewrite {
			b.WriteString(" history-rewrite")
		}
		if len(s.Includes) > 0 {
			var labels []string
			for _, c := range s.Includes {
				labels = append(labels, sc.label(c))
			}
			fmt.Fprintf(&b, " includes=[%s]", strings.Join(labels, " "))
		}
		if s.Signature.Type != SignatureNone {
			fmt.Fprintf(&b, " sig=%s", s.Signature.Type)
			if s.Signature.Verified {
				fmt.Fprintf(&b, " verified-by=%q", s.Signature.Signer)
			}
		}
		b.WriteString("\n")
		files, err := listFiles(s.FS)
		if err != nil {
			fmt.Fprintf(&b, "  fs error: %v\n", err)
		}
		fmt.Fprintf(&b, "  files: %s\n", strings.Join(files, " "))
	}
	switch {
	case res.Err != nil:
		fmt.Fprintf(&b, "error: %s", errKind(res.Err))
		var se *SignatureError
		if errors.As(res.Err, &se) {
			fmt.Fprintf(&b, " commit=%s", sc.label(se.Head.Commit))
		}
	case res.Applied:
		fmt.Fprintf(&b, "applied %s", sc.label(res.Head))
	default:
		fmt.Fprintf(&b, "unchanged %s", sc.label(res.Head))
	}
	if res.Recloned {
		b.WriteString(" (recloned)")
	}
	if !res.Changed {
		b.WriteString(" (same as last attempt)")
	}
	return b.String()
}

func (sc *scenario) read(d *datadriven.TestData) string {
	var file string
	d.ScanArgs(sc.t, "file", &file)
	if len(sc.rec.snaps) == 0 {
		return "no snapshot"
	}
	b, err := fs.ReadFile(sc.rec.snaps[len(sc.rec.snaps)-1].FS, file)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

func errKind(err error) string {
	kinds := []struct {
		err  error
		name string
	}{
		{ErrUnreachable, "unreachable"}, {ErrRefNotFound, "ref-not-found"}, {ErrPathNotFound, "path-not-found"},
		{ErrCorruptClone, "corrupt-clone"}, {ErrUnsigned, "unsigned"}, {ErrUntrusted, "untrusted"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if strings.Contains(err.Error(), ": apply ") {
		return "apply-failed: " + errors.Unwrap(err).Error()
	}
	return err.Error()
}

func listFiles(fsys fs.FS) ([]string, error) {
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
