package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/schema"
)

// run executes the root command in-process and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestSchemaCommand(t *testing.T) {
	out, err := run(t, "schema")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(schema.Source()) || !strings.Contains(out, "#Descriptor:") {
		t.Errorf("capstan schema printed %d bytes, want the embedded schema", len(out))
	}
}

func TestValidateCommand(t *testing.T) {
	bad := t.TempDir()
	files := map[string]string{
		"good.cue":   `apps: good: pods: g: containers: c: image: "x"`,
		"bad.yaml":   "apps:\n  bad:\n    pods:\n      g:\n        replicas: many\n        containers: {c: {image: x}}\n",
		"sub/x.json": `{"apps": {"bad": {"pods": {"g": {"containers": {"c": {"imag": "y"}}}}}}}`,
	}
	for name, data := range files {
		p := filepath.Join(bad, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int // 0: no error
		wantErr  string
	}{
		{
			name:    "example repo",
			args:    []string{"validate", "../../examples/repo"},
			wantOut: "../../examples/repo: 1 app, 5 pod groups, 6 containers, 3 services in 2 files: valid\n",
		},
		{
			name: "errors",
			args: []string{"validate", bad},
			wantOut: `bad.yaml:5:19: apps.bad.pods.g.replicas: conflicting values "many" and int (mismatched types string and int)
sub/x.json:1:56: apps.bad.pods.g.containers.c.imag: unknown field "imag"; allowed: args, command, env, image, liveness, mounts, ports, pullPolicy, readiness, resources, workingDir
`,
			wantCode: 1,
			wantErr:  "2 errors in " + bad + " (1 app rejected, 1 app valid)",
		},
		{
			name:     "file size limit",
			args:     []string{"validate", "--max-file-size", "10", bad},
			wantOut:  "bad.yaml: file is 91 bytes, more than the limit of 10; split it into smaller files\ngood.cue: file is 46 bytes, more than the limit of 10; split it into smaller files\nsub/x.json: file is 72 bytes, more than the limit of 10; split it into smaller files\n",
			wantCode: 1,
			wantErr:  "3 errors in " + bad + " (0 apps rejected, 0 apps valid)",
		},
		{
			name:     "missing dir",
			args:     []string{"validate", filepath.Join(bad, "nope")},
			wantCode: 1,
			wantErr:  "validate: open " + filepath.Join(bad, "nope"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if out != tc.wantOut {
				t.Errorf("output:\n%s\nwant:\n%s", out, tc.wantOut)
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Errorf("err = %v, want none", err)
				}
				return
			}
			if err == nil || exitCode(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v (code %d), want code %d and %q", err, exitCode(err), tc.wantCode, tc.wantErr)
			}
			var ee *exitError
			if tc.name != "missing dir" && !errors.As(err, &ee) {
				t.Errorf("err %T is not an exitError", err)
			}
		})
	}
}

// `capstan validate shop.cue` said "open shop.cue: open shop.cue: not a
// directory"; a missing directory doubled its "open" too.
func TestValidateFileOrMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shop.cue")
	if err := os.WriteFile(file, []byte(`apps: shop: pods: g: containers: c: image: "x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "validate", file)
	if err == nil || !strings.Contains(err.Error(), "is a file") || !strings.Contains(err.Error(), "capstan validate "+dir) {
		t.Errorf("validate FILE: %v, want an error naming its directory", err)
	}
	missing := filepath.Join(dir, "nope")
	_, err = run(t, "validate", missing)
	if err == nil || strings.Count(err.Error(), missing) != 1 {
		t.Errorf("validate MISSING: %v, want the path named once", err)
	}
}
