package gitsync

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/capstanhq/capstan/internal/testenv"
)

// sshKey makes a key pair with ssh-keygen and returns the private key file
// and the public key line.
func sshKey(t *testing.T, typ, comment string) (string, string) {
	t.Helper()
	testenv.RequireBinaries(t, "ssh-keygen")
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	args := []string{"-q", "-t", typ, "-N", "", "-C", comment, "-f", key}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, strings.TrimSpace(string(pub))
}

// sshSign signs data with ssh-keygen -Y sign in a namespace.
func sshSign(t *testing.T, key, namespace string, data []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-n", namespace, "-f", key, file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	sig, err := os.ReadFile(file + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	return string(sig)
}

func TestSSHSigInterop(t *testing.T) {
	msg := []byte("tree 1234\nauthor someone\n\nmessage\n")
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			key, pub := sshKey(t, typ, "signer@example.com")
			armored := sshSign(t, key, "git", msg)
			sig, err := parseSSHSignature(armored)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sig.pub.Type(), strings.Fields(pub)[0]; got != want {
				t.Errorf("key type %s, want %s", got, want)
			}
			if err := sig.verify(msg, "git"); err != nil {
				t.Errorf("valid signature refused: %v", err)
			}
			if err := sig.verify(append([]byte("x"), msg...), "git"); err == nil {
				t.Error("signature over other data accepted")
			}
			if err := sig.verify(msg, "file"); err == nil {
				t.Error("signature accepted in another namespace")
			}
			other := sshSign(t, key, "file", msg)
			osig, err := parseSSHSignature(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := osig.verify(msg, "git"); err == nil {
				t.Error("signature made for namespace file accepted as git")
			}
		})
	}
}

func TestParseSSHSignatureRejectsGarbage(t *testing.T) {
	key, _ := sshKey(t, "ed25519", "c")
	good := sshSign(t, key, "git", []byte("m"))
	tests := map[string]string{
		"empty":         "",
		"no armor":      "AAAA",
		"bad base64":    sshsigBegin + "\n!!!\n" + sshsigEnd,
		"wrong magic":   sshsigBegin + "\nU1NIU0lI\n" + sshsigEnd,
		"truncated":     good[:len(sshsigBegin)+40] + "\n" + sshsigEnd,
		"pgp signature": "-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parseSSHSignature(in); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzParseSSHSignature(f *testing.F) {
	f.Add(sshsigBegin + "\nU1NIU0lHAAAAAQ==\n" + sshsigEnd)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := parseSSHSignature(s)
		if err != nil {
			return
		}
		_ = sig.verify([]byte("m"), "git") // must not panic
	})
}

// TestSSHSignedCommits signs commits with the git CLI (gpg.format=ssh) and
// checks the policy end to end.
func TestSSHSignedCommits(t *testing.T) {
	testenv.RequireBinaries(t, "ssh-keygen")
	trustedKey, trustedPub := sshKey(t, "ed25519", "tess@example.com")
	otherKey, otherPub := sshKey(t, "ed25519", "mallory@example.com")
	origin := newGitRepo(t)
	commit := func(msg, key string, content string) string {
		origin.write(map[string]string{"apps/web.cue": content})
		origin.tick++
		origin.git("add", "-A")
		args := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key, "commit", "-q", "-m", msg}
		if key != "" {
			args = append(args, "-S")
		}
		origin.git(args...)
		return origin.head()
	}
	rc := RepoConfig{Name: "deploy", URL: origin.dir, Path: "apps",
		Verify: Verify{Enabled: true, SSHKeys: "# trusted signers\n" + trustedPub + "\n"}}
	s, rec := newTestSyncer(t, rc)
	ctx := context.Background()

	good := commit("signed by tess", trustedKey, "v1")
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatalf("trusted commit refused: %v", err)
	}
	snap := rec.snaps[len(rec.snaps)-1]
	if snap.Commit != good || !snap.Signature.Verified || snap.Signature.Type != SignatureSSH || snap.Signature.Signer != "tess@example.com" {
		t.Fatalf("snapshot signature %+v", snap.Signature)
	}

	for _, tt := range []struct {
		name, key string
		want      error
		signer    string
	}{
		{name: "unsigned", key: "", want: ErrUnsigned, signer: "nobody"},
		{name: "untrusted key", key: otherKey, want: ErrUntrusted, signer: fingerprint(t, otherPub)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(rec.snaps)
			sha := commit(tt.name, tt.key, tt.name)
			_, err := s.Sync(ctx, "deploy")
			var se *SignatureError
			if !errors.Is(err, tt.want) || !errors.As(err, &se) {
				t.Fatalf("err %v, want a SignatureError wrapping %v", err, tt.want)
			}
			if se.Head.Commit != sha || !strings.Contains(err.Error(), sha[:12]) || !strings.Contains(err.Error(), tt.signer) {
				t.Errorf("error does not name commit %s and signer %s: %v", sha[:12], tt.signer, err)
			}
			if len(rec.snaps) != n {
				t.Error("refused commit was applied")
			}
		})
	}

	// A commit whose signature was made over other content is refused:
	// re-sign a commit, then swap the signature onto another one.
	t.Run("tampered", func(t *testing.T) {
		sha := commit("tampered", trustedKey, "v9")
		raw := origin.git("cat-file", "commit", sha)
		forged := strings.Replace(raw, "tampered", "tampered!", 1)
		file := filepath.Join(t.TempDir(), "c")
		if err := os.WriteFile(file, []byte(forged+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		bad := origin.git("hash-object", "-t", "commit", "-w", file)
		origin.git("update-ref", "refs/heads/main", bad)
		_, err := s.Sync(ctx, "deploy")
		if !errors.Is(err, ErrUntrusted) {
			t.Fatalf("err %v, want ErrUntrusted", err)
		}
	})
}

func fingerprint(t *testing.T, pub string) string {
	t.Helper()
	tr, err := parseTrust(Verify{SSHKeys: pub})
	if err != nil || len(tr.ssh) != 1 {
		t.Fatalf("parse %q: %v", pub, err)
	}
	return sshFingerprint(tr.ssh[0].key)
}

func TestOpenPGPPolicy(t *testing.T) {
	trusted, err := openpgp.NewEntity("Tess", "", "tess@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseTrust(Verify{OpenPGPKeys: armoredPublic(t, trusted)}); err != nil {
		t.Fatal(err)
	}
	if _, err := parseTrust(Verify{OpenPGPKeys: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\ngarbage\n-----END PGP PUBLIC KEY BLOCK-----"}); err == nil {
		t.Fatal("garbage key ring accepted")
	}
}
