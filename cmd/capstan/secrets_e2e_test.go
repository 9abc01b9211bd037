package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// confApp is an app whose pods read a config file from the repository,
// an env value from a secret and a file from a secret.
const confApp = `apps: conf: {
	secrets: api: from: "secrets/api.secret.yaml"
	pods: cfgweb: {
		replicas: 2
		containers: web: {
			image: "127.0.0.1:5000/examples/hello:v1"
			ports: http: 8080
			env: {
				GREETING_FILE: "/etc/hello/greeting"
				API_TOKEN: secret: {name: "api", key: "token"}
			}
			readiness: {http: {path: "/healthz", port: "http"}, period: 1}
		}
		files: {
			"/etc/hello/greeting": from: "config/greeting.txt"
			"/run/secrets/tls.key": secret: {name: "api", key: "tlskey"}
		}
	}
}
`

func randomToken(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tok-" + hex.EncodeToString(b)
}

// TestUpSecrets: on real containerd through capstan up, a commit adds a
// config file and an encrypted secret; the pods read both (checked from
// inside with capstan exec); the secret file is on a tmpfs and no byte
// of its value is on the node's disk; no value is in the logs; editing
// the secret in git rolls the pods and the new values arrive; removing
// the file's use removes the file. (An environment value is kept by
// containerd in the container's spec on the node's disk, as Kubernetes
// does: docs/secrets.md says to use files for what must not be.)
func TestUpSecrets(t *testing.T) {
	e := newUpEnv(t, "")
	data := e.data
	bin := e.bin
	e.start()

	recipient, err := exec.Command(bin, "secret", "recipient", "--data-dir", data).CombinedOutput()
	if err != nil {
		t.Fatalf("capstan secret recipient: %v\n%s", err, recipient)
	}
	token1, token2, key1, key2 := randomToken(t), randomToken(t), randomToken(t), randomToken(t)
	write := func(rel, content string) {
		p := filepath.Join(e.repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commitAll := func(msg string) {
		gitCmd(t, e.repo, "add", "-A")
		gitCmd(t, e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "commit", "-qm", msg)
	}
	write(".capstan/recipients", string(recipient))
	write("config/greeting.txt", "Hello from a config file\n")
	write("secrets/api.secret.yaml", "token: "+token1+"\ntlskey: "+key1+"\n")
	if out, err := exec.Command(bin, "secret", "encrypt", "--in-place", filepath.Join(e.repo, "secrets/api.secret.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("capstan secret encrypt: %v\n%s", err, out)
	}
	write("conf.cue", confApp)
	commitAll("add conf with a config file and a secret")

	e.wait("conf pods running", 5*time.Minute, func() (bool, string) { return e.running("cfgweb", 2, "") })
	pod := func() string {
		pods, _ := e.pods()
		for _, p := range pods {
			if p.Metadata.App == "conf" && p.Metadata.DeletionRequestedAt == nil && api.IsPodReady(&p) {
				return "conf/" + p.Metadata.Name
			}
		}
		return ""
	}
	execIn := func(p string, args ...string) (string, error) {
		return e.cli(append([]string{"exec", p, "--", "/hello"}, args...)...)
	}
	p := pod()
	if out, err := execIn(p, "cat", "/etc/hello/greeting"); err != nil || out != "Hello from a config file\n" {
		t.Errorf("config file in %s: %v %q", p, err, out)
	}
	if out, err := execIn(p, "env", "API_TOKEN"); err != nil || strings.TrimSpace(out) != token1 {
		t.Errorf("secret env in %s: %v %q", p, err, out)
	}
	if out, err := execIn(p, "cat", "/run/secrets/tls.key"); err != nil || out != key1 {
		t.Errorf("secret file in %s: %v %q", p, err, out)
	}
	mounts, err := execIn(p, "cat", "/proc/mounts")
	if err != nil || !mountLineHas(mounts, "/run/secrets/tls.key", "tmpfs", "ro") || !mountLineHas(mounts, "/etc/hello/greeting", "", "ro") {
		t.Errorf("mounts in %s (%v): want /run/secrets/tls.key a read-only tmpfs, the greeting read-only:\n%s", p, err, mounts)
	}
	// No byte of the file's value on the node's disk: the data directory
	// holds the store, the git cache, the agent's pods and containerd.
	if hits := grepTree(t, data, key1); len(hits) > 0 {
		t.Errorf("the secret file's value is on disk in %v", hits)
	}
	// Nor in what a viewer reads.
	if out, err := e.cli("get", "secrets", "-A", "-o", "json"); err != nil || strings.Contains(out, token1) || strings.Contains(out, key1) || !strings.Contains(out, `"tlskey"`) {
		t.Errorf("capstan get secrets: %v, want the key and no value:\n%s", err, out)
	}

	// Edit the secret in git: the pods roll and the new value arrives.
	t.Setenv("EDITOR", "sed -i -e s/"+token1+"/"+token2+"/ -e s/"+key1+"/"+key2+"/")
	if out, err := exec.Command(bin, "secret", "edit", "--data-dir", data, filepath.Join(e.repo, "secrets/api.secret.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("capstan secret edit: %v\n%s", err, out)
	}
	commitAll("rotate the api token")
	e.wait("the new token in every conf pod", 3*time.Minute, func() (bool, string) {
		pods, state := e.pods()
		n := 0
		for _, q := range pods {
			if q.Metadata.App != "conf" || q.Metadata.DeletionRequestedAt != nil {
				continue
			}
			out, err := execIn("conf/"+q.Metadata.Name, "env", "API_TOKEN")
			if err != nil || strings.TrimSpace(out) != token2 {
				return false, state + out
			}
			if out, err := execIn("conf/"+q.Metadata.Name, "cat", "/run/secrets/tls.key"); err != nil || out != key2 {
				return false, state + out
			}
			n++
		}
		return n == 2, state
	})

	// Remove the use of the secret file: new pods have no such file.
	write("conf.cue", strings.Replace(confApp, `"/run/secrets/tls.key": secret: {name: "api", key: "tlskey"}`, "", 1))
	commitAll("no token file")
	e.wait("pods without the token file", 3*time.Minute, func() (bool, string) {
		pods, state := e.pods()
		for _, q := range pods {
			if q.Metadata.App != "conf" {
				continue
			}
			if q.Metadata.DeletionRequestedAt != nil || !api.IsPodReady(&q) {
				return false, state
			}
			if out, err := execIn("conf/"+q.Metadata.Name, "cat", "/run/secrets/tls.key"); err == nil {
				return false, state + out
			}
		}
		return len(pods) > 0, state
	})
	for _, v := range []string{token1, token2, key1, key2} {
		if strings.Contains(e.out.String(), v) {
			t.Errorf("capstan up's log holds a secret value")
		}
	}
	for _, v := range []string{key1, key2} {
		if hits := grepTree(t, data, v); len(hits) > 0 {
			t.Errorf("a secret file's value is on disk in %v", hits)
		}
	}
	// The app's records (revisions, events, the app) name keys, never
	// values.
	for _, kind := range []string{"revisions", "events", "apps", "secrets"} {
		out, _ := e.cli("get", kind, "-A", "-o", "json")
		for _, v := range []string{token1, token2, key1, key2} {
			if strings.Contains(out, v) {
				t.Errorf("capstan get %s holds a secret value", kind)
			}
		}
	}
	var list struct{ Items []api.Secret }
	out, _ := e.cli("get", "secrets", "--app", "conf", "-o", "json")
	if json.Unmarshal([]byte(out), &list) != nil || len(list.Items) != 1 || len(list.Items[0].Spec.Versions) != 2 {
		t.Errorf("capstan get secrets --app conf: want the one secret of conf with two keys:\n%s", out)
	}
	if err := os.Remove(filepath.Join(e.repo, "conf.cue")); err != nil {
		t.Fatal(err)
	}
	commitAll("remove conf")
}

// mountLineHas reports whether /proc/mounts has a line for target whose
// type is typ (any when "") and whose options include opt.
func mountLineHas(mounts, target, typ, opt string) bool {
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[1] != target || typ != "" && f[2] != typ {
			continue
		}
		for _, o := range strings.Split(f[3], ",") {
			if o == opt {
				return true
			}
		}
	}
	return false
}

// grepTree lists the regular files under root that contain s.
func grepTree(t *testing.T, root, s string) []string {
	var hits []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}
