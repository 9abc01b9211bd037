package gitsync

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// gitSSHServer is a minimal SSH server on 127.0.0.1 that runs
// git-upload-pack and git-receive-pack for clients holding the one
// authorized key.
type gitSSHServer struct {
	addr       string
	keyFile    string // client's private key
	knownHosts string // known_hosts naming the server's host key
	// hostKeyFingerprints are the SHA256 fingerprints of the host keys:
	// the ed25519 one known_hosts pins, and an ECDSA one.
	hostKeyFingerprints []string
}

func newGitSSHServer(t *testing.T) *gitSSHServer {
	t.Helper()
	dir := t.TempDir()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	authorized, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)
	// A second host key, of a type ssh clients prefer to ed25519, that
	// known_hosts does not pin, as servers such as GitHub's have.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(ecSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSHConn(c, cfg)
			}()
		}
	}()
	kh := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, hostSigner.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &gitSSHServer{addr: ln.Addr().String(), keyFile: keyFile, knownHosts: kh, hostKeyFingerprints: []string{ssh.FingerprintSHA256(hostSigner.PublicKey()), ssh.FingerprintSHA256(ecSigner.PublicKey())}}
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSSHSession(ch, in)
	}
}

func serveSSHSession(ch ssh.Channel, in <-chan *ssh.Request) {
	defer ch.Close()
	for req := range in {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		prog, arg, _ := strings.Cut(payload.Command, " ")
		if prog != "git-upload-pack" && prog != "git-receive-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command(prog, strings.Trim(arg, "'"))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], status)
		ch.SendRequest("exit-status", false, b[:])
		return
	}
}

func TestSSHFetch(t *testing.T) {
	srv := newGitSSHServer(t)
	origin := newGitRepo(t)
	first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
	bare := filepath.Join(t.TempDir(), "deploy.git")
	origin.git("clone", "-q", "--bare", origin.dir, bare)
	url := "ssh://git@" + srv.addr + bare
	auth := Auth{SSHKeyFile: srv.keyFile, KnownHostsFile: srv.knownHosts}
	s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: url, Path: "apps", Auth: auth})
	ctx := context.Background()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	if rec.snaps[0].Commit != first {
		t.Fatalf("applied %s, want %s", rec.snaps[0].Commit, first)
	}

	// A rollback is pushed over SSH too.
	origin.commit("second", map[string]string{"apps/web.cue": "v2"})
	origin.git("push", "-q", bare, "main")
	sha, err := RevertPaths(ctx, RepoConfig{URL: url, Auth: auth}, []string{"apps/web.cue"}, first, rollbacker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	last := rec.snaps[len(rec.snaps)-1]
	if last.Commit != sha || !strings.HasPrefix(last.Message, "Rollback apps/web.cue to ") {
		t.Fatalf("after rollback: %s %q", last.Commit, last.Subject())
	}
	if b, err := readAll(last, "web.cue"); err != nil || b != "v1" {
		t.Fatalf("web.cue after rollback: %q, %v", b, err)
	}

	// A tag and a pinned commit over SSH.
	origin.git("tag", "-a", "-m", "release 1", "v1", first)
	origin.git("push", "-q", bare, "v1")
	s3, _ := newTestSyncer(t,
		RepoConfig{Name: "tag", URL: url, Path: "apps", Tag: "v1", Auth: auth},
		RepoConfig{Name: "pinned", URL: url, Path: "apps", Commit: first, Auth: auth})
	for _, name := range []string{"tag", "pinned"} {
		if res, err := s3.Sync(ctx, name); err != nil || res.Head != first {
			t.Fatalf("%s over ssh: %+v %v", name, res, err)
		}
	}

	// A host key that does not match known_hosts, or that known_hosts
	// does not name, is refused, and the error says which key the server
	// offered and how to pin it (it said "knownhosts: key mismatch" and
	// "check the URL, the network and the credentials").
	wrongKH := filepath.Join(t.TempDir(), "known_hosts")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	line := knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, otherSigner.PublicKey())
	unknownKH := filepath.Join(t.TempDir(), "known_hosts")
	for file, content := range map[string]string{wrongKH: line + "\n", unknownKH: "# no keys yet\n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A key the server does not accept is named, with what to do.
	_, otherClient, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(otherClient, "")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "id_other")
	if err := os.WriteFile(otherKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s4, _ := newTestSyncer(t, RepoConfig{Name: "deploy", URL: url, Auth: Auth{SSHKeyFile: otherKey, KnownHostsFile: srv.knownHosts}})
	if _, err := s4.Sync(ctx, "deploy"); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "the server refused the key in auth.sshKeyFile "+otherKey) {
		t.Fatalf("refused key: %v, want ErrUnreachable naming auth.sshKeyFile %s", err, otherKey)
	}

	_, port, _ := net.SplitHostPort(srv.addr)
	scan := "ssh-keyscan -p " + port + " 127.0.0.1"
	for file, want := range map[string][]string{
		wrongKH:   {"is not the one pinned for it at " + wrongKH + ":1", "replace line 1 of " + wrongKH, scan},
		unknownKH: {"is not in auth.knownHostsFile " + unknownKH, "'" + scan + " >> " + unknownKH + "'"},
	} {
		s2, rec2 := newTestSyncer(t, RepoConfig{Name: "deploy", URL: url, Auth: Auth{SSHKeyFile: srv.keyFile, KnownHostsFile: file}})
		_, err := s2.Sync(ctx, "deploy")
		if !errors.Is(err, ErrUnreachable) || len(rec2.snaps) != 0 {
			t.Fatalf("host key not pinned: err %v, %d snapshots", err, len(rec2.snaps))
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if !strings.Contains(err.Error(), srv.hostKeyFingerprints[0]) && !strings.Contains(err.Error(), srv.hostKeyFingerprints[1]) {
			t.Errorf("error %q names neither host key's fingerprint %q", err, srv.hostKeyFingerprints)
		}
	}
}

func readAll(s Snapshot, name string) (string, error) {
	f, err := s.FS.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}
