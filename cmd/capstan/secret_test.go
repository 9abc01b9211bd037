package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/secrets"
)

// The secret commands on a repository: the cluster's recipient goes to
// .capstan/recipients; encrypt, decrypt and edit round-trip; rotate
// re-encrypts for a new key as a commit, and the old key no longer
// decrypts the rotated file.
func TestSecretCommands(t *testing.T) {
	data := t.TempDir()
	keys, err := secrets.LoadOrCreate(filepath.Join(data, "secrets")) // what the server does on first start
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "secret", "recipient", "--data-dir", data)
	if err != nil || strings.TrimSpace(out) != keys.Recipient() {
		t.Fatalf("secret recipient = %q, %v; want %s", out, err, keys.Recipient())
	}
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q")
	if err := os.MkdirAll(filepath.Join(repo, ".capstan"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, ".capstan", "recipients"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(repo, "secrets", "db.secret.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("password: hunter2\ntoken: \"42\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "secret", "encrypt", "--in-place", file); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, out)
	}
	enc, _ := os.ReadFile(file)
	if strings.Contains(string(enc), "hunter2") || !strings.Contains(string(enc), "password: ENC[v1,") {
		t.Fatalf("encrypted file:\n%s", enc)
	}
	if out, err := run(t, "secret", "decrypt", "--data-dir", data, file); err != nil || out != "password: hunter2\ntoken: \"42\"\n" {
		t.Fatalf("decrypt = %q, %v", out, err)
	}
	// edit: the editor changes the token; the password's ciphertext stays.
	t.Setenv("EDITOR", "sed -i s/42/43/")
	if out, err := run(t, "secret", "edit", "--data-dir", data, file); err != nil {
		t.Fatalf("edit: %v\n%s", err, out)
	}
	edited, _ := os.ReadFile(file)
	if line(string(enc), "password:") != line(string(edited), "password:") || line(string(enc), "token:") == line(string(edited), "token:") {
		t.Fatalf("edit changed the wrong values:\nbefore:\n%s\nafter:\n%s", enc, edited)
	}
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "add db")
	t.Setenv("GIT_AUTHOR_NAME", "T")
	t.Setenv("GIT_AUTHOR_EMAIL", "t@example.com")
	t.Setenv("GIT_COMMITTER_NAME", "T")
	t.Setenv("GIT_COMMITTER_EMAIL", "t@example.com")
	if out, err := run(t, "secret", "rotate", "--data-dir", data, "--repo", repo); err != nil || !strings.Contains(out, "re-encrypted 1 secret files") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if got := gitCmd(t, repo, "log", "-1", "--format=%s"); got != "secrets: re-encrypt for the rotated cluster key" {
		t.Fatalf("last commit %q", got)
	}
	rotated, _ := os.ReadFile(file)
	f, err := secrets.Parse(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Decrypt(keys.Identities()...); err == nil {
		t.Fatal("the old key still decrypts the rotated file")
	}
	newKeys, err := secrets.LoadOrCreate(filepath.Join(data, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if vals, err := newKeys.DecryptFile(rotated); err != nil || vals["password"] != "hunter2" || vals["token"] != "43" {
		t.Fatalf("the new key ring decrypts %v, %v", vals, err)
	}
	recips, _ := os.ReadFile(filepath.Join(repo, ".capstan", "recipients"))
	if strings.TrimSpace(string(recips)) != newKeys.Recipient() {
		t.Fatalf(".capstan/recipients = %q, want the new recipient %s", recips, newKeys.Recipient())
	}
	// A stranger's key is refused with a clear error.
	other := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(other, []byte("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "secret", "decrypt", "--identity", other, file)
	if err == nil || !strings.Contains(err.Error(), "not encrypted for this key") {
		t.Fatalf("decrypt with a stranger's key: %v", err)
	}
	// It names the key's recipient and how to be added, not the
	// cluster's recipient (which is for the server).
	otherIDs, _ := secrets.ParseIdentities("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX")
	want := "capstan secret edit -r " + otherIDs[0].Recipient().String() + " " + file
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "capstan secret recipient") {
		t.Fatalf("decrypt with a stranger's key: %v, want it to say %q", err, want)
	}
}

func line(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// encryptedForTest is a secret file encrypted for a new key.
func encryptedForTest(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.Encrypt(map[string]string{"password": "hunter2"}, []string{id.Recipient().String()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePlain(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"map", "password: hunter2\ntoken: \"42\"\n", map[string]string{"password": "hunter2", "token": "42"}, ""},
		{"empty", "", map[string]string{}, ""},
		{"leading ---", "---\na: b\n", map[string]string{"a": "b"}, ""},
		{"empty documents after", "a: b\n---\n# nothing\n---\n", map[string]string{"a": "b"}, ""},
		{"two documents", "password: hunter2\n---\ntoken: abc\n", nil, "line 2: a second YAML document (after ---)"},
		{"third document", "a: b\n---\n---\nc: d\n", nil, "a second YAML document"},
		{"bad second document", "a: b\n---\n[\n", nil, "after the first YAML document: yaml: line 3"},
		{"number", "port: 5432\n", nil, `key "port": the value must be a string (quote it)`},
		{"list", "- a\n", nil, "not a YAML map"},
		{"encrypted", encryptedForTest(t), nil, "already encrypted (it has a capstan: section): change its values with capstan secret edit"},
		{"alias", "a: &x hunter2\nb: *x\n", map[string]string{"a": "hunter2", "b": "hunter2"}, ""},
		{"only ---", "---\n", map[string]string{}, ""},
		{"explicit string tag", "port: !!str 5432\n", map[string]string{"port": "5432"}, ""},
		{"twice", "a: b\na: c\n", nil, `line 2: key "a" is given twice (first on line 1)`},
		{"merge key", "<<: {x: y}\n", nil, "line 1: a key must be a plain name"},
		// The errors of a careless file (the bare password, a tag) name
		// the line and the key, never the value: yaml's own errors quote
		// it.
		{"bare value", "s3cret-password-42\n", nil, "line 1: not a YAML map of keys to values"},
		{"tagged value", "password: !!int s3cret-password-42\n", nil, `line 1: key "password": the value must be a string (quote it)`},
		{"list value", "password: [s3cret-password-42]\n", nil, `line 1: key "password": the value must be a string`},
		{"map value", "password: {s3cret-password-42: x}\n", nil, `line 1: key "password": the value must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePlain([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parsePlain = %v, %v; want an error containing %q", got, err, tt.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("parsePlain error %q shows the value", err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("parsePlain = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// FuzzParsePlain: a plaintext secret either is refused or survives the
// round trip through the text capstan secret edit shows.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"password: hunter2\n", "a: 1\n", "a: [b]\n", "- x\n", "a: \"x\\ny\"\n", "", "{a: b, c: d}", "a: &x b\nc: *x\n", "a: b\n---\nc: d\n", "a: b\n---\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := parsePlain(b)
		if err != nil {
			return
		}
		again, err := parsePlain(plainYAML(vals))
		if err != nil {
			t.Fatalf("the shown text of %q does not parse: %v", b, err)
		}
		if len(again) != len(vals) {
			t.Fatalf("round trip of %q: %v -> %v", b, vals, again)
		}
		for k, v := range vals {
			if again[k] != v {
				t.Fatalf("round trip of %q: key %q: %q -> %q", b, k, v, again[k])
			}
		}
	})
}

// Without --data-dir, capstan secret recipient asks the server of the
// client config.
func TestSecretRecipientFromServer(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	keys, err := secrets.LoadOrCreate(filepath.Join(c.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "--config", c.Server.AdminConfigPath(), "secret", "recipient")
	if err != nil || strings.TrimSpace(out) != keys.Recipient() {
		t.Fatalf("secret recipient = %q, %v; want %s", out, err, keys.Recipient())
	}
}

// secretRepo is a git repository whose .capstan/recipients holds the
// cluster recipient of a data directory.
type secretRepo struct {
	dir, data string
	keys      *secrets.Keyring
}

func newSecretRepo(t *testing.T) *secretRepo {
	t.Helper()
	r := &secretRepo{dir: t.TempDir(), data: t.TempDir()}
	var err error
	if r.keys, err = secrets.LoadOrCreate(filepath.Join(r.data, "secrets")); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, r.dir, "init", "-q")
	r.write(t, ".capstan/recipients", r.keys.Recipient()+"\n")
	return r
}

func (r *secretRepo) write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// editorScript makes an $EDITOR: a shell script running body, with the
// file to edit in $1.
func editorScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "editor")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"at a line", &secrets.Error{Line: 3, Column: 5, Msg: "bad"}, "db.secret.yaml:3:5: bad"},
		{"no line", &secrets.Error{Msg: "the file is empty"}, "db.secret.yaml: the file is empty"},
		{"wrapped at a line", fmt.Errorf("x: %w", &secrets.Error{Line: 1, Msg: "bad"}), "db.secret.yaml: x: 1:0: bad"},
		{"other", errors.New("not encrypted for this key"), "db.secret.yaml: not encrypted for this key"},
	}
	for _, tt := range tests {
		if got := fileError("db.secret.yaml", tt.err).Error(); got != tt.want {
			t.Errorf("%s: fileError = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// capstan secret edit on an empty file starts it empty, as on a missing
// one, instead of telling the user to run capstan secret edit.
func TestSecretEditEmptyFile(t *testing.T) {
	r := newSecretRepo(t)
	file := r.write(t, "db.secret.yaml", "")
	t.Setenv("EDITOR", editorScript(t, `echo "password: hunter2" > "$1"`))
	if out, err := run(t, "secret", "edit", "--data-dir", r.data, file); err != nil {
		t.Fatalf("edit of an empty file: %v\n%s", err, out)
	}
	out, err := run(t, "secret", "decrypt", "--data-dir", r.data, file)
	if err != nil || out != "password: hunter2\n" {
		t.Fatalf("decrypt = %q, %v", out, err)
	}
}

// capstan secret recipient reports a client config given with --config
// or $CAPSTAN_CONFIG that does not load, instead of reading the key file
// of /var/lib/capstan.
func TestSecretRecipientBadConfig(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("server: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := run(t, "--config", missing, "secret", "recipient"); err == nil || !strings.Contains(err.Error(), "no client config at "+missing) {
		t.Errorf("--config %s: %v; want the config's error", missing, err)
	}
	t.Setenv("CAPSTAN_CONFIG", broken)
	if _, err := run(t, "secret", "recipient"); err == nil || strings.Contains(err.Error(), "/var/lib/capstan") || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("$CAPSTAN_CONFIG=%s: %v; want the config's error", broken, err)
	}
}

// capstan secret edit keeps the recipients a file was encrypted for
// with -r; --remove-recipient takes one out.
func TestSecretEditKeepsRecipients(t *testing.T) {
	r := newSecretRepo(t)
	bob, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	plain := r.write(t, "q.yaml", "password: hunter2\n")
	file := filepath.Join(r.dir, "q.secret.yaml")
	if out, err := run(t, "secret", "encrypt", plain, "-r", bob.Recipient().String(), "-o", file); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, out)
	}
	bobDecrypts := func() bool {
		b, _ := os.ReadFile(file)
		f, err := secrets.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := f.Decrypt(bob)
		return err == nil && vals["password"] == "hunter2"
	}
	t.Setenv("EDITOR", "true")
	if out, err := run(t, "secret", "edit", "--data-dir", r.data, file); err != nil {
		t.Fatalf("edit: %v\n%s", err, out)
	}
	if !bobDecrypts() {
		t.Fatal("after edit, bob (given with -r to encrypt) no longer decrypts the file")
	}
	if _, err := run(t, "secret", "edit", "--data-dir", r.data, "--remove-recipient", "age1nobody", file); err == nil || !strings.Contains(err.Error(), "not a recipient of") {
		t.Fatalf("--remove-recipient of a stranger: %v", err)
	}
	if out, err := run(t, "secret", "edit", "--data-dir", r.data, "--remove-recipient", bob.Recipient().String(), file); err != nil {
		t.Fatalf("edit --remove-recipient: %v\n%s", err, out)
	}
	if bobDecrypts() {
		t.Fatal("after edit --remove-recipient bob, bob still decrypts the file")
	}
	if out, err := run(t, "secret", "decrypt", "--data-dir", r.data, file); err != nil || out != "password: hunter2\n" {
		t.Fatalf("the cluster decrypts %q, %v", out, err)
	}
}

// capstan secret rotate --repo SUBDIR updates the .capstan/recipients
// the subdirectory's files were encrypted from (the top's) instead of
// writing a new SUBDIR/.capstan/recipients, and commits only its files:
// what the user had staged stays staged, out of the commit.
func TestSecretRotateSubdirKeepsIndex(t *testing.T) {
	r := newSecretRepo(t)
	file := r.write(t, "sub/db.secret.yaml", "password: hunter2\n")
	if out, err := run(t, "secret", "encrypt", "--in-place", file); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, out)
	}
	gitCmd(t, r.dir, "add", "-A")
	gitCmd(t, r.dir, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "add db")
	r.write(t, "unrelated.txt", "work in progress\n")
	gitCmd(t, r.dir, "add", "unrelated.txt")
	for _, v := range []string{"GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"} {
		t.Setenv(v, "T")
	}
	for _, v := range []string{"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"} {
		t.Setenv(v, "t@example.com")
	}
	if out, err := run(t, "secret", "rotate", "--data-dir", r.data, "--repo", filepath.Join(r.dir, "sub")); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	newKeys, err := secrets.LoadOrCreate(filepath.Join(r.data, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "sub", ".capstan", "recipients")); err == nil {
		t.Error("rotate --repo sub wrote sub/.capstan/recipients")
	}
	if b, _ := os.ReadFile(filepath.Join(r.dir, ".capstan", "recipients")); strings.TrimSpace(string(b)) != newKeys.Recipient() {
		t.Errorf(".capstan/recipients = %q, want the new recipient %s", b, newKeys.Recipient())
	}
	if got := gitCmd(t, r.dir, "show", "--name-only", "--format="); got != ".capstan/recipients\nsub/db.secret.yaml" {
		t.Errorf("the rotation commit holds %q, want .capstan/recipients and sub/db.secret.yaml", got)
	}
	if got := gitCmd(t, r.dir, "diff", "--cached", "--name-only"); got != "unrelated.txt" {
		t.Errorf("staged after rotate: %q, want unrelated.txt still staged", got)
	}
}

// editUntilValid reopens the editor on a text that does not parse, with
// the error at the top, until it parses or is left unchanged or empty.
func TestEditUntilValid(t *testing.T) {
	tests := []struct {
		name   string
		saves  []string // what the editor saves, call after call
		err    string   // want, or "" for success
		shown2 string   // the second call is shown this, when there is one
	}{
		{"good", []string{"a: b\n"}, "", ""},
		{"fixed", []string{"port: 5432\n", "port: \"5432\"\n"}, "", "#| The text below was not saved: fix it and save to try again;\n#| save it unchanged, or empty, to give up (nothing is written):\n#|   line 1: key \"port\": the value must be a string (quote it)\nport: 5432\n"},
		{"fixed with the error kept", []string{"port: 5432\n", "#| stale\nport: \"5432\"\n"}, "", ""},
		{"left unchanged", []string{"port: 5432\n", "SHOWN"}, `key "port": the value must be a string (quote it) (nothing written`, ""},
		{"saved the same again", []string{"port: 5432\n", "port: 5432\n"}, "nothing written", ""},
		{"emptied", []string{"port: 5432\n", "#| x\n\n"}, "nothing written", ""},
		{"two errors", []string{"port: 5432\n", "port: [\n", "port: \"1\"\n"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var shown []string
			edit := func(text []byte) ([]byte, error) {
				shown = append(shown, string(text))
				if len(shown) > len(tt.saves) {
					t.Fatalf("editor opened %d times, want at most %d", len(shown), len(tt.saves))
				}
				if s := tt.saves[len(shown)-1]; s != "SHOWN" {
					return []byte(s), nil
				}
				return text, nil
			}
			var got map[string]string
			err := editUntilValid(edit, []byte("start\n"), func(b []byte) error {
				var err error
				got, err = parsePlain(b)
				return err
			})
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("editUntilValid = %v, want error %q", err, tt.err)
			}
			if tt.err == "" && len(shown) != len(tt.saves) {
				t.Fatalf("editor opened %d times, want %d", len(shown), len(tt.saves))
			}
			if tt.err == "" && len(got) != 1 {
				t.Fatalf("the accepted text parsed into %v", got)
			}
			if tt.shown2 != "" && shown[1] != tt.shown2 {
				t.Fatalf("the editor reopened on\n%s\nwant\n%s", shown[1], tt.shown2)
			}
			for _, s := range shown[1:] {
				if strings.Count(s, "The text below was not saved") != 1 {
					t.Fatalf("the editor reopened on\n%s\nwant one error header", s)
				}
			}
		})
	}
}

// capstan secret edit reopens the editor on a text that does not parse
// instead of throwing it away.
func TestSecretEditReopensOnError(t *testing.T) {
	r := newSecretRepo(t)
	file := filepath.Join(r.dir, "db.secret.yaml")
	t.Setenv("EDITOR", editorScript(t, `if grep -q "^#|" "$1"; then sed -i 's/5432/"5432"/' "$1"; else echo "port: 5432" > "$1"; fi`))
	if out, err := run(t, "secret", "edit", "--data-dir", r.data, file); err != nil {
		t.Fatalf("edit: %v\n%s", err, out)
	}
	if out, err := run(t, "secret", "decrypt", "--data-dir", r.data, file); err != nil || out != "port: \"5432\"\n" {
		t.Fatalf("decrypt = %q, %v", out, err)
	}
}

// capstan secret edit removes the plaintext's temporary directory when
// the terminal hangs up (an SSH disconnect) while the editor runs.
func TestSecretEditCleansUpOnSIGHUP(t *testing.T) {
	r := newSecretRepo(t)
	file := filepath.Join(r.dir, "db.secret.yaml")
	marker := filepath.Join(t.TempDir(), "editing")
	editor := editorScript(t, `echo "$1" > `+marker+`.tmp && mv `+marker+`.tmp `+marker+`
exec sleep 600`)
	cmd := exec.Command(os.Args[0], "secret", "edit", "--data-dir", r.data, file)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "CAPSTAN_CONFIG=/nonexistent", "EDITOR="+editor)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var editing string
	deadline := time.Now().Add(30 * time.Second)
	for editing == "" {
		if b, err := os.ReadFile(marker); err == nil {
			editing = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the editor did not start")
		}
		select {
		case err := <-exited:
			t.Fatalf("edit exited before the editor started: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := os.Stat(editing); err != nil {
		t.Fatalf("the file being edited: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(stderr.String(), "nothing written") {
			t.Errorf("edit after SIGHUP: %v\n%s; want a failure saying nothing was written", err, stderr.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("edit did not exit within a minute of SIGHUP")
	}
	if _, err := os.Stat(filepath.Dir(editing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the plaintext's directory %s after SIGHUP: %v, want it removed", filepath.Dir(editing), err)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was written after SIGHUP: %v", file, err)
	}
}
