package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/capstanhq/capstan/agent/hollow"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/backup"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/secrets"
)

// TestBackupRestore is the acceptance test of backup and restore: a backup
// of a running cluster with a node, restored into a new data directory and
// served at the old address: the restored server has the same apps,
// revisions, tokens and CA, the admin's config works on it, and the node
// (its own token, its watch ahead of the backup) reconnects: it heartbeats
// and runs a pod bound to it after the restore.
func TestBackupRestore(t *testing.T) {
	ctx := t.Context()
	orig := apiservertest.Start(t, apiservertest.Options{})
	cfg := orig.Server.AdminConfigPath()
	app := api.KindApp.New().(*api.App)
	app.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	if _, err := orig.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	rev := api.KindRevision.New().(*api.Revision)
	rev.Metadata = api.ObjectMeta{Name: "r1", App: "shop"}
	rev.Spec = api.RevisionSpec{Repo: "shop", Commit: strings.Repeat("a", 40), Result: "Applied"}
	if _, err := orig.Client.Create(ctx, rev); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "token", "create", "--description", "kept", "--config", cfg)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}

	// A node with its own token, against the server's address.
	startHollowNode(t, orig)
	runPod := func(c *client.Client, name string) { runHollowPod(t, c, name) }
	runPod(orig.Client, "before")

	// The backup, for an age recipient.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, idFile := filepath.Join(dir, "cluster.age"), filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "backup", file, "--recipient", id.Recipient().String(), "--config", cfg)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`backup of revision (\d+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup said %q", out)
	}
	backupRev, _ := strconv.ParseInt(m[1], 10, 64)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	wantApps, _, err := orig.Store.List(ctx, api.KindApp, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRevs, _, err := orig.Store.List(ctx, api.KindRevision, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the backup: the node's watch moves past it.
	runPod(orig.Client, "after-backup")
	ca := string(orig.Server.PKI().CAPEM)
	addr := orig.Server.Addr()
	orig.Stop()

	restored := filepath.Join(t.TempDir(), "restored")
	out, err = run(t, "restore", file, "--data-dir", restored, "--identity", idFile)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, "restored revision "+m[1]) || !strings.Contains(out, "capstan server --data-dir "+restored) ||
		!strings.Contains(out, "know the old server as https://"+orig.Server.Addr()) {
		t.Fatalf("restore said %q", out)
	}
	srv := apiservertest.Start(t, apiservertest.Options{DataDir: restored, Listen: addr})
	if got := srv.Store.Revision(); got != backupRev+store.DefaultRestoreBump {
		t.Fatalf("restored store at revision %d, backup at %d", got, backupRev)
	}
	if got := string(srv.Server.PKI().CAPEM); got != ca {
		t.Fatal("the restored server has another CA")
	}
	// The secrets key ring came along: the restored server decrypts what
	// the old one encrypted.
	for _, f := range []string{secrets.IdentityFile, secrets.StoreKeyFile} {
		want, err := os.ReadFile(filepath.Join(orig.DataDir, "secrets", f))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(restored, "secrets", f)); err != nil || string(got) != string(want) {
			t.Fatalf("restored secrets/%s differs: %v", f, err)
		}
	}
	for kind, want := range map[api.Kind][]api.Object{api.KindApp: wantApps, api.KindRevision: wantRevs} {
		got, _, err := srv.Store.List(ctx, kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("restored %s: %d, want %d", kind, len(got), len(want))
		}
		for i := range got {
			if api.KeyOf(got[i]) != api.KeyOf(want[i]) || got[i].Meta().ResourceVersion != want[i].Meta().ResourceVersion {
				t.Fatalf("restored %s[%d] = %s@%d, want %s@%d", kind, i, api.KeyOf(got[i]), got[i].Meta().ResourceVersion, api.KeyOf(want[i]), want[i].Meta().ResourceVersion)
			}
		}
	}
	// The admin's old config file works, and the tokens are there.
	out, err = run(t, "token", "ls", "--config", cfg)
	if err != nil || !strings.Contains(out, "kept") || !strings.Contains(out, "test node") {
		t.Fatalf("token ls on the restored server: %v\n%s", err, out)
	}
	// The node reconnects with its token: it heartbeats, and runs a pod
	// bound to it on the restored server.
	since := time.Now()
	waitUntil(t, "h-0's lease renewed on the restored server", func() bool {
		o, err := srv.Client.Get(ctx, api.Key{Kind: api.KindLease, Name: "h-0"})
		return err == nil && o.(*api.Lease).Spec.RenewTime.After(since)
	})
	runPod(srv.Client, "after-restore")
}

// A passphrase backup restores with the passphrase only; restore refuses a
// wrong one and a data directory that holds anything; backup refuses to
// write a backup in the clear.
func TestBackupPassphrase(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	dir := t.TempDir()
	file, pass, wrong := filepath.Join(dir, "b.age"), filepath.Join(dir, "pass"), filepath.Join(dir, "wrong")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("incorrect\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(passphraseEnv, "")
	if out, err := run(t, "backup", file, "--config", cfg); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("backup without a key: %v\n%s", err, out)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused backup left %s: %v", file, err)
	}
	if out, err := run(t, "backup", file, "--passphrase-file", pass, "--config", cfg); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if out, err := run(t, "restore", file, "--data-dir", filepath.Join(dir, "x"), "--passphrase-file", wrong); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("restore with a wrong passphrase: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left its directory: %v", err)
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "restore", file, "--data-dir", full, "--passphrase-file", pass); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a full directory: %v\n%s", err, out)
	}
	empty := t.TempDir()
	t.Setenv(passphraseEnv, "correct horse battery staple")
	if out, err := run(t, "restore", file, "--data-dir", empty); err != nil {
		t.Fatalf("restore into an empty directory with the passphrase from the environment: %v\n%s", err, out)
	}
	for _, f := range []string{"capstan.db", "pki/ca.key", "pki/ca.crt", "tokens.json", "admin.yaml"} {
		fi, err := os.Stat(filepath.Join(empty, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("restored %s: %v, %v; want mode 0600", f, fi, err)
		}
	}
}

// startHollowNode runs hollow node h-0 with a node token of its own
// against srv's address, until the test ends.
func startHollowNode(t *testing.T, srv *apiservertest.Cluster) {
	t.Helper()
	nodeCfg := *srv.Config
	tok, _, err := srv.Server.Tokens().Create("node:h-0", "test node", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nodeCfg.Token = tok
	nodeClient, err := client.New(&nodeCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h, err := hollow.New(hollow.Options{Client: nodeClient, Nodes: 1, Prefix: "h", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Start(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// runHollowPod creates pod shop/name bound to h-0 through c and waits
// until it runs; it returns the pod as created.
func runHollowPod(t *testing.T, c *client.Client, name string) api.Object {
	t.Helper()
	ctx := t.Context()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
	p.Spec.NodeName = "h-0"
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	created, err := c.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pod "+name+" running on h-0", func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name})
		return err == nil && o.(*api.Pod).Status.Phase == api.PodRunning
	})
	return created
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

// A restore whose store turns out damaged leaves the empty directory it
// was given (a mount point, say) in place and empty, and removes one it
// made.
func TestRestoreFailureKeepsExistingDirectory(t *testing.T) {
	src := t.TempDir()
	for name, body := range map[string]string{"pki/ca.crt": "CERT", "pki/ca.key": "KEY"} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// An X25519 key, not a passphrase: scrypt would take seconds.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file, idFile := filepath.Join(t.TempDir(), "b.age"), filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := backup.Seal(f, backup.Key{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Write(t.Context(), sealed, backup.Source{DataDir: src, Store: "bbolt", Now: time.Now(),
		Snapshot: func(_ context.Context, w io.Writer) (int64, error) {
			_, err := io.WriteString(w, "not a bbolt file")
			return 7, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sealed.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	mount := t.TempDir()
	if _, err := run(t, "restore", file, "--data-dir", mount, "--identity", idFile); err == nil {
		t.Fatal("restore of a damaged store succeeded")
	}
	if entries, err := os.ReadDir(mount); err != nil || len(entries) != 0 {
		t.Fatalf("the existing directory after a failed restore: %v, %v; want it there and empty", entries, err)
	}
	made := filepath.Join(t.TempDir(), "new")
	if _, err := run(t, "restore", file, "--data-dir", made, "--identity", idFile); err == nil {
		t.Fatal("restore of a damaged store succeeded")
	}
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left the directory it made: %v", err)
	}
}

// A backup the server cannot make (here: its data directory lost the CA's
// key) tells the user why, from the server, and leaves no file behind;
// before, the client saw only a cut HTTP/2 stream ("INTERNAL_ERROR ... is
// the server running?").
func TestBackupFailureSaysWhy(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(c.DataDir, "pki", "ca.key")
	saved, err := os.ReadFile(caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(caKey); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(caKey, saved, 0o600) })
	dir := t.TempDir()
	file := filepath.Join(dir, "b.age")
	out, err := run(t, "backup", file, "--recipient", id.Recipient().String(), "--config", c.Server.AdminConfigPath())
	if err == nil || !strings.Contains(err.Error(), "no cluster CA") || !strings.Contains(err.Error(), "pki/ca.key") {
		t.Fatalf("backup of a data directory without the CA's key: %v\n%s\nwant the server's reason (no cluster CA: pki/ca.key ...)", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed backup left %v", entries)
	}
}

// capstan restore of a cut backup file says so and what to do, not that
// the passphrase is wrong, and makes no directory.
func TestRestoreCutFileSaysSo(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca.crt", "ca.key"} {
		if err := os.WriteFile(filepath.Join(src, "pki", name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, idFile := filepath.Join(dir, "b.age"), filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	sealed, err := backup.Seal(&buf, backup.Key{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Write(t.Context(), sealed, backup.Source{DataDir: src, Store: "bbolt", Now: time.Now(),
		Snapshot: func(_ context.Context, w io.Writer) (int64, error) {
			_, err := io.WriteString(w, strings.Repeat("store page ", 1000))
			return 7, err
		}}); err != nil {
		t.Fatal(err)
	}
	if err := sealed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(buf.String()[:buf.Len()-100]), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "restored")
	out, err := run(t, "restore", file, "--data-dir", target, "--identity", idFile)
	if err == nil || !strings.Contains(err.Error(), "cut short or damaged") || !strings.Contains(err.Error(), "restore another backup") || strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("restore of a cut file: %v\n%s\nwant: cut short or damaged ... restore another backup", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left %s: %v", target, err)
	}
}

// capstan backup to a directory, or into a directory that does not exist,
// says what is wrong with FILE (before: "rename ... file exists", "open
// nodir/.b.age.tmp-...: no such file or directory"), and restore without a
// key names the flags that give one.
func TestBackupRestorePathAndKeyErrors(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ file, want string }{
		{dir, "is a directory"},
		{filepath.Join(dir, "missing", "b.age"), "does not exist"},
	} {
		out, err := run(t, "backup", tc.file, "--recipient", id.Recipient().String(), "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("backup %s: %v\n%s\nwant %q", tc.file, err, out, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("failed backups left %v", entries)
	}
	file := filepath.Join(dir, "b.age")
	if out, err := run(t, "backup", file, "--recipient", id.Recipient().String(), "--config", cfg); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	t.Setenv(passphraseEnv, "")
	out, err := run(t, "restore", file, "--data-dir", filepath.Join(dir, "r"))
	if err == nil || !strings.Contains(err.Error(), "--identity") || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Fatalf("restore without a key: %v\n%s\nwant the flags that give one", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "r")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore made its directory: %v", err)
	}
	// A bump that would not move the revision is refused before anything
	// is read (an etcd backup would otherwise print it into the
	// etcdutl command to run).
	idFile := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "restore", file, "--data-dir", filepath.Join(dir, "r"), "--identity", idFile, "--bump-revision", "0")
	if err == nil || !strings.Contains(err.Error(), "--bump-revision 0: want 1 or more") {
		t.Fatalf("restore --bump-revision 0: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "r")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore made its directory: %v", err)
	}
}
