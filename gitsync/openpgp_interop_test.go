package gitsync

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/internal/testenv"
)

// gpgHome is a GnuPG home with one signing key made by gpg itself; its
// agent is stopped when the test ends.
type gpgHome struct {
	t    *testing.T
	dir  string
	uid  string
	fpr  string
	arm  string // the armored public key
	algo string
}

func newGPGHome(t *testing.T, name, email, algo string) *gpgHome {
	t.Helper()
	testenv.RequireBinaries(t, "gpg", "gpgconf")
	h := &gpgHome{t: t, dir: t.TempDir(), uid: name + " <" + email + ">", algo: algo}
	t.Cleanup(func() { _ = h.cmd("gpgconf", "--kill", "gpg-agent").Run() })
	h.run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", h.uid, algo, "sign", "never")
	for _, line := range strings.Split(h.run("gpg", "--batch", "--with-colons", "--list-secret-keys", email), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && h.fpr == "" {
			h.fpr = f[9]
		}
	}
	h.arm = h.run("gpg", "--batch", "--armor", "--export", email)
	if h.fpr == "" || !strings.Contains(h.arm, "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatalf("gpg made no usable key for %s", h.uid)
	}
	return h
}

func (h *gpgHome) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(c.Environ(), "GNUPGHOME="+h.dir)
	return c
}

func (h *gpgHome) run(name string, args ...string) string {
	h.t.Helper()
	out, err := h.cmd(name, args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// signedCommit commits files with `git commit -S` signed by h's key.
func (h *gpgHome) signedCommit(r *gitRepo, msg string, files map[string]string) string {
	h.t.Helper()
	r.write(files)
	r.tick++
	r.git("add", "-A")
	h.t.Setenv("GNUPGHOME", h.dir)
	r.git("-c", "gpg.format=openpgp", "-c", "user.signingkey="+h.fpr, "commit", "-q", "-S", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// TestOpenPGPGitInterop: commits signed by git and gpg themselves (EdDSA
// and RSA keys) are applied when the key is trusted, with the signer
// named, and refused when signed by another key or not at all.
func TestOpenPGPGitInterop(t *testing.T) {
	for _, algo := range []string{"ed25519", "rsa2048"} {
		t.Run(algo, func(t *testing.T) {
			trusted := newGPGHome(t, "Trusted Tess", "tess@example.com", algo)
			other := newGPGHome(t, "Mallory", "mallory@example.com", algo)
			origin := newGitRepo(t)
			first := trusted.signedCommit(origin, "signed by tess", map[string]string{"apps/web.cue": "v1"})
			s, rec := newTestSyncer(t, RepoConfig{Name: "d", URL: origin.dir, Path: "apps",
				Verify: Verify{Enabled: true, OpenPGPKeys: trusted.arm}})
			ctx := context.Background()
			res, err := s.Sync(ctx, "d")
			if err != nil || !res.Applied || res.Head != first {
				t.Fatalf("trusted signature: %+v %v", res, err)
			}
			sig := rec.snaps[0].Signature
			if sig.Type != SignatureOpenPGP || !sig.Verified || !strings.Contains(sig.Signer, "tess@example.com") {
				t.Fatalf("signature %+v", sig)
			}

			bad := other.signedCommit(origin, "signed by mallory", map[string]string{"apps/web.cue": "v2"})
			_, err = s.Sync(ctx, "d")
			var se *SignatureError
			if !errors.Is(err, ErrUntrusted) || !errors.As(err, &se) || se.Head.Commit != bad || se.Head.Message == "" {
				t.Fatalf("untrusted signature: %v", err)
			}
			unsigned := origin.commit("unsigned", map[string]string{"apps/web.cue": "v3"})
			if _, err = s.Sync(ctx, "d"); !errors.Is(err, ErrUnsigned) || !errors.As(err, &se) || se.Head.Commit != unsigned {
				t.Fatalf("unsigned: %v", err)
			}
			if len(rec.snaps) != 1 {
				t.Fatalf("%d snapshots applied, want only the trusted one", len(rec.snaps))
			}
		})
	}
}
