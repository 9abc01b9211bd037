package gitsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPFetch(t *testing.T) {
	const user, pass = "deployer", "pa55word"
	tests := []struct {
		name     string
		user     string // server's
		auth     Auth
		wantErr  error
		wantText string
	}{
		{name: "anonymous", auth: Auth{}},
		{name: "basic auth", user: user, auth: Auth{Username: user, Password: pass}},
		{name: "token auth", user: "git", auth: Auth{Token: pass}},
		{name: "wrong password", user: user, auth: Auth{Username: user, Password: "nope"}, wantErr: ErrUnreachable,
			wantText: "the remote refused auth.password: it may have expired"},
		{name: "no credentials", user: user, auth: Auth{}, wantErr: ErrUnreachable,
			wantText: "the remote asks for credentials and the repository has none: set auth.tokenFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newGitHTTPServer(t, tt.user, pass)
			src := newGitRepo(t)
			first := src.commit("first", map[string]string{"apps/web.cue": "v1", "apps/db.cue": "v1"})
			url := srv.publish(t, src, "deploy")
			s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: url, Path: "apps", Auth: tt.auth})
			ctx := context.Background()
			res, err := s.Sync(ctx, "deploy")
			if tt.wantErr != nil {
				var fe *FetchError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &fe) {
					t.Fatalf("err %v, want a FetchError wrapping %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantText) || strings.Contains(err.Error(), "nope") {
					t.Errorf("error %q does not say %q, or shows the password", err, tt.wantText)
				}
				if len(rec.snaps) != 0 {
					t.Fatalf("applied %d snapshots despite the error", len(rec.snaps))
				}
				return
			}
			if err != nil || !res.Applied || rec.snaps[0].Commit != first {
				t.Fatalf("first sync: %+v, %v", res, err)
			}
			second := src.commit("second", map[string]string{"apps/web.cue": "v2"})
			srv.push(t, src, "deploy")
			if _, err := s.Sync(ctx, "deploy"); err != nil {
				t.Fatal(err)
			}
			got := rec.snaps[len(rec.snaps)-1]
			if got.Commit != second || len(got.Paths) != 1 || got.Paths[0] != "web.cue" || got.HistoryRewrite {
				t.Fatalf("second snapshot %s paths %v rewrite %v", got.Subject(), got.Paths, got.HistoryRewrite)
			}
			// A force-push over HTTP is applied and flagged.
			src.git("reset", "-q", "--hard", first)
			third := src.commit("third", map[string]string{"apps/db.cue": "v3"})
			srv.push(t, src, "deploy")
			if _, err := s.Sync(ctx, "deploy"); err != nil {
				t.Fatal(err)
			}
			got = rec.snaps[len(rec.snaps)-1]
			if got.Commit != third || !got.HistoryRewrite {
				t.Fatalf("after force-push: %s rewrite=%v", got.Subject(), got.HistoryRewrite)
			}
		})
	}
}

func TestHTTPUnreachable(t *testing.T) {
	srv := newGitHTTPServer(t, "", "")
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for name, url := range map[string]string{
		"missing repository": srv.url + "/missing.git",
		"closed port":        closedURL + "/deploy.git",
	} {
		t.Run(name, func(t *testing.T) {
			s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: url})
			_, err := s.Sync(context.Background(), "deploy")
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("err %v, want ErrUnreachable", err)
			}
			if len(rec.snaps) != 0 {
				t.Fatal("applied something")
			}
		})
	}
}

// TestHTTPCorruptClone damages the cache clone of an HTTP remote: the next
// sync clones again and applies.
func TestHTTPCorruptClone(t *testing.T) {
	for _, mode := range []string{"objects", "head"} {
		t.Run(mode, func(t *testing.T) {
			srv := newGitHTTPServer(t, "", "")
			src := newGitRepo(t)
			src.commit("first", map[string]string{"apps/a.cue": "1"})
			url := srv.publish(t, src, "deploy")
			dataDir := t.TempDir()
			rec := newRecorder()
			s, err := New(Options{DataDir: dataDir, Sink: rec, Repos: []RepoConfig{{Name: "deploy", URL: url, Path: "apps"}}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := s.Sync(ctx, "deploy"); err != nil {
				t.Fatal(err)
			}
			clone := filepath.Join(dataDir, "repos", "deploy")
			switch mode {
			case "objects":
				err = filepath.WalkDir(filepath.Join(clone, "objects"), func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					return os.WriteFile(p, []byte("garbage"), 0o644)
				})
			case "head":
				err = os.Remove(filepath.Join(clone, "HEAD"))
			}
			if err != nil {
				t.Fatal(err)
			}
			second := src.commit("second", map[string]string{"apps/a.cue": "2"})
			srv.push(t, src, "deploy")
			res, err := s.Sync(ctx, "deploy")
			if err != nil || !res.Recloned || !res.Applied || res.Head != second {
				t.Fatalf("after corruption: %+v, %v", res, err)
			}
			if b, err := fs.ReadFile(rec.snaps[len(rec.snaps)-1].FS, "a.cue"); err != nil || string(b) != "2" {
				t.Fatalf("a.cue = %q, %v", b, err)
			}
		})
	}
}

// TestHTTPSRemote tracks a repository over HTTPS with basic auth: a
// certificate from a private CA is refused with a hint until the CA is
// configured; then branches, tags, a pinned commit and force-pushes work as
// over plain HTTP, and a rollback is pushed over HTTPS.
func TestHTTPSRemote(t *testing.T) {
	const user, pass = "deployer", "pa55word"
	srv := startGitHTTPServer(t, user, pass, true)
	src := newGitRepo(t)
	first := src.commit("first", map[string]string{"apps/web.cue": "v1"})
	src.git("tag", "-a", "-m", "release 1", "v1")
	url := srv.publish(t, src, "deploy")
	src.git("push", "-q", filepath.Join(srv.root, "deploy.git"), "v1")
	ctx := context.Background()
	auth := Auth{Username: user, Password: pass}

	s, rec := newTestSyncer(t, RepoConfig{Name: "untrusted", URL: url, Path: "apps", Auth: auth})
	_, err := s.Sync(ctx, "untrusted")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "auth.caBundle") || len(rec.snaps) != 0 {
		t.Fatalf("a private CA without caBundle: %v", err)
	}

	auth.CABundle = srv.caPEM
	s, rec = newTestSyncer(t,
		RepoConfig{Name: "branch", URL: url, Path: "apps", Auth: auth},
		RepoConfig{Name: "tag", URL: url, Path: "apps", Tag: "v1", Auth: auth},
		RepoConfig{Name: "pinned", URL: url, Path: "apps", Commit: first, Auth: auth},
	)
	for _, name := range []string{"branch", "tag", "pinned"} {
		if res, err := s.Sync(ctx, name); err != nil || !res.Applied || res.Head != first {
			t.Fatalf("%s over https: %+v %v", name, res, err)
		}
	}
	second := src.commit("second", map[string]string{"apps/web.cue": "v2"})
	srv.push(t, src, "deploy")
	for name, want := range map[string]string{"branch": second, "tag": first, "pinned": first} {
		if res, err := s.Sync(ctx, name); err != nil || res.Head != want {
			t.Fatalf("%s after a push: head %s, want %s (%v)", name, res.Head, want, err)
		}
	}
	n := len(rec.snaps)

	// A rollback over HTTPS: cloned, committed and pushed.
	sha, err := Revert(ctx, RepoConfig{Name: "branch", URL: url, Branch: "main", Auth: auth},
		RevertRequest{Paths: []string{"apps/web.cue"}, To: first, Apps: []string{"web"},
			Author: Author{Name: "Rita", Email: "rita@example.com", When: time.Unix(1_700_000_000, 0)}})
	if err != nil {
		t.Fatalf("rollback over https: %v", err)
	}
	if res, err := s.Sync(ctx, "branch"); err != nil || res.Head != sha || len(rec.snaps) != n+1 {
		t.Fatalf("after the rollback: %+v %v", res, err)
	}
	if b, err := fs.ReadFile(rec.snaps[n].FS, "web.cue"); err != nil || strings.TrimSpace(string(b)) != "v1" {
		t.Fatalf("rolled-back web.cue: %q %v", b, err)
	}
}

func TestCABundleValidation(t *testing.T) {
	srv := startGitHTTPServer(t, "", "", true)
	for _, tc := range []struct {
		url, bundle, want string
	}{
		{"https://git.example.com/d.git", srv.caPEM, ""},
		{"https://git.example.com/d.git", "not pem", "no PEM certificate"},
		{"http://git.example.com/d.git", srv.caPEM, "for https URLs"},
	} {
		err := RepoConfig{Name: "d", URL: tc.url, Auth: Auth{CABundle: tc.bundle}}.WithDefaults().Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s with %.10q: %v, want %q", tc.url, tc.bundle, err, tc.want)
		}
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte(srv.caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	repos, err := ParseConfig([]byte("repos:\n  - name: d\n    url: https://git.example.com/d.git\n    auth: {caFile: ca.pem}\n"), dir, Defaults{})
	if err != nil || repos[0].Auth.CABundle != srv.caPEM {
		t.Fatalf("caFile: %v", err)
	}
}

// A token rotated in its tokenFile (the old one revoked on the forge) is
// used from the next sync on, without a restart; a token file gone fails
// the sync naming the file, and the next sync after it is back applies.
func TestHTTPFetchReadsRotatedTokenFile(t *testing.T) {
	srv := newGitHTTPServer(t, "git", "token-1")
	src := newGitRepo(t)
	src.commit("first", map[string]string{"apps/web.cue": "v1"})
	url := srv.publish(t, src, "deploy")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "repos.yaml")
	if err := os.WriteFile(config, []byte("repos:\n  - {name: deploy, url: '"+url+"', path: apps, auth: {tokenFile: token}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repos, err := LoadConfig(config, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	s, rec := newTestSyncer(t, repos...)
	ctx := context.Background()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	// The forge revokes token-1; the operator writes token-2 into the file.
	srv.setPassword("token-2")
	second := src.commit("second", map[string]string{"apps/web.cue": "v2"})
	srv.push(t, src, "deploy")
	// Until then the sync fails saying which credential the remote refused
	// and what to do (it said "authentication required: unauthorized" and
	// "check the URL, the network and the credentials"), never the token.
	_, err = s.Sync(ctx, "deploy")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("sync with a revoked token: %v, want ErrUnreachable", err)
	}
	for _, want := range []string{"refused the credential in auth.tokenFile " + tokenFile, "expired", "write a new one to that file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "token-1") {
		t.Errorf("error %q shows the token", err)
	}
	if err := os.WriteFile(tokenFile, []byte("token-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatalf("sync after the rotation: %v", err)
	}
	if got := rec.snaps[len(rec.snaps)-1].Commit; got != second {
		t.Fatalf("applied %s, want %s", got, second)
	}
	// The file gone (mid-rotation): the sync fails naming it, keeps what
	// was applied, and the next one after the file is back goes on.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	third := src.commit("third", map[string]string{"apps/web.cue": "v3"})
	srv.push(t, src, "deploy")
	if _, err := s.Sync(ctx, "deploy"); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "auth.tokenFile") || !strings.Contains(err.Error(), tokenFile) {
		t.Fatalf("sync without the token file: %v, want ErrUnreachable naming auth.tokenFile %s", err, tokenFile)
	}
	if err := os.WriteFile(tokenFile, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatalf("sync with the file back: %v", err)
	}
	if got := rec.snaps[len(rec.snaps)-1].Commit; got != third {
		t.Fatalf("applied %s, want %s", got, third)
	}
}

// TestHTTPFetchCutMidway: a fetch whose connection breaks off mid-pack is
// the network's failure: the cache clone is kept (it was deleted and
// cloned again, in full, on every such failure, and the error blamed a
// corrupted local clone), and the next sync fetches into it and applies.
func TestHTTPFetchCutMidway(t *testing.T) {
	srv := newGitHTTPServer(t, "", "")
	src := newGitRepo(t)
	noise := func() string { // incompressible, so the pack is large
		b := make([]byte, 64<<10)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	src.commit("first", map[string]string{"apps/web.cue": "v1", "apps/data.txt": noise()})
	url := srv.publish(t, src, "deploy")
	cut := new(atomic.Int64)
	proxied := cuttingProxy(t, srv.url, cut) + strings.TrimPrefix(url, srv.url)
	s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: proxied, Path: "apps"})
	ctx := context.Background()
	sync := func(wantCommit string) {
		t.Helper()
		res, err := s.Sync(ctx, "deploy")
		if wantCommit == "" {
			if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCorruptClone) || res.Recloned ||
				!strings.Contains(err.Error(), "the connection broke off during the transfer") {
				t.Fatalf("cut fetch: recloned %v, err %v; want ErrUnreachable saying the connection broke off, the clone kept", res.Recloned, err)
			}
			return
		}
		if err != nil || res.Recloned || rec.snaps[len(rec.snaps)-1].Commit != wantCommit {
			t.Fatalf("sync: recloned %v, err %v, want %s applied", res.Recloned, err, wantCommit)
		}
	}
	cut.Store(4 << 10)
	sync("") // the first clone
	cut.Store(0)
	sync(src.head())
	second := src.commit("second", map[string]string{"apps/web.cue": "v2", "apps/data.txt": noise()})
	srv.push(t, src, "deploy")
	cut.Store(4 << 10)
	sync("")
	cut.Store(0)
	sync(second)
}
