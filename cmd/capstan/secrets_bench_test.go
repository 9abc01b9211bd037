package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkUpSecretChange measures, through capstan up on real
// containerd, the time from a commit that changes a secret's value to
// the new value inside every pod that serves (ready, not terminating; 2
// replicas, readiness every second), over 20 changes: p50 and p99 in
// seconds, with the default strategy and with maxSurge 100%.
// Run with -benchtime 1x.
func BenchmarkUpSecretChange(b *testing.B) {
	e := newUpEnv(b, "")
	data := e.data
	bin := e.bin
	e.start()
	recipient, err := exec.Command(bin, "secret", "recipient", "--data-dir", data).CombinedOutput()
	if err != nil {
		b.Fatalf("%v\n%s", err, recipient)
	}
	write := func(rel, content string) {
		p := filepath.Join(e.repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	commitAll := func(msg string) {
		gitCmd(b, e.repo, "add", "-A")
		gitCmd(b, e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "commit", "-qm", msg)
	}
	secretFile := filepath.Join(e.repo, "secrets/api.secret.yaml")
	write(".capstan/recipients", string(recipient))
	write("config/greeting.txt", "hi\n")
	write("secrets/api.secret.yaml", "token: v0\ntlskey: k\n")
	if out, err := exec.Command(bin, "secret", "encrypt", "--in-place", secretFile).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	write("conf.cue", confApp)
	commitAll("add conf")
	e.wait("conf pods running", 5*time.Minute, func() (bool, string) { return e.running("cfgweb", 2, "") })

	// allHave reports whether the conf pods that serve (ready, not
	// terminating) are two and all read want.
	allHave := func(want string) bool {
		pods, _ := e.pods()
		n := 0
		for _, p := range pods {
			if p.Metadata.App != "conf" || p.Metadata.DeletionRequestedAt != nil || !api.IsPodReady(&p) {
				continue
			}
			out, err := e.cli("exec", "conf/"+p.Metadata.Name, "--", "/hello", "env", "API_TOKEN")
			if err != nil || strings.TrimSpace(out) != want {
				return false
			}
			n++
		}
		return n == 2
	}
	n := 0
	measure := func(label string) {
		var took []time.Duration
		for range 20 {
			n++
			want := fmt.Sprintf("v%d", n)
			b.Setenv("EDITOR", `sed -i s/^\(token:.\).*/\1`+want+"/") // no space: $EDITOR is split on spaces
			if out, err := exec.Command(bin, "secret", "edit", "--data-dir", data, secretFile).CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			start := time.Now()
			commitAll("token " + want)
			e.wait("the new token in every pod", 2*time.Minute, func() (bool, string) { return allHave(want), "" })
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		p := func(q float64) float64 { return took[int(q*float64(len(took)-1)+0.5)].Seconds() }
		b.ReportMetric(p(0.5), label+"-p50-s")
		b.ReportMetric(p(0.99), label+"-p99-s")
		b.Logf("%s: secret change -> new value in every pod: %v", label, took)
	}
	// The default strategy replaces one pod at a time (maxSurge 25% of
	// 2 rounds up to 1): two rounds of start and readiness.
	measure("surge25")
	// maxSurge 100%: both pods are replaced in one round.
	write("conf.cue", strings.Replace(confApp, "replicas: 2", "replicas: 2\n\t\tstrategy: maxSurge: \"100%\"", 1))
	commitAll("surge 100%")
	e.wait("conf pods running", 5*time.Minute, func() (bool, string) { return e.running("cfgweb", 2, "") })
	measure("surge100")
}
