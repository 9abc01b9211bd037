package plan

import "testing"

func TestShortImage(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"new tag, registry with a port", "127.0.0.1:5000/examples/hello:v1", "127.0.0.1:5000/examples/hello:v2", ":v2"},
		{"tag to digest", "r.io/a/b:v1", "r.io/a/b@sha256:abc", "@sha256:abc"},
		{"untagged to tagged", "127.0.0.1:5000/hello", "127.0.0.1:5000/hello:v2", ":v2"},
		{"tagged to untagged", "hello:v1", "hello", "hello"},
		{"other repository", "r.io/a/b:v1", "r.io/a/c:v1", "r.io/a/c:v1"},
		{"other registry", "127.0.0.1:5000/hello:v1", "127.0.0.1:5001/hello:v1", "127.0.0.1:5001/hello:v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shortImage(tt.old, tt.new); got != tt.want {
				t.Errorf("shortImage(%q, %q) = %q, want %q", tt.old, tt.new, got, tt.want)
			}
		})
	}
}

func TestMarkdownEscaping(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) string
		in   string
		want string
	}{
		{"plain code", code, "replicas 3 -> 5", "`replicas 3 -> 5`"},
		{"pipe in code", code, `env A "x|y"`, "`env A \"x\\|y\"`"},
		{"backtick in code", code, "env A \"`id`\"", "`` env A \"`id`\" ``"},
		{"newline in cell", cell, "a\nb|c", `a b\|c`},
		{"fence", fenced, "a", "```text\na\n```\n"},
		{"fence longer than content", fenced, "x ``` y", "````text\nx ``` y\n````\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFieldString(t *testing.T) {
	long := "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
	tests := []struct {
		name string
		f    Field
		want string
	}{
		{"changed", Field{Subject: "frontend", Name: "replicas", Op: Changed, Old: "3", New: "5"}, "frontend: replicas 3 -> 5"},
		{"added", Field{Subject: "frontend/web", Name: "env BACKEND_URL", Op: Added, New: `"http://backend:80"`}, `frontend/web: env BACKEND_URL added ("http://backend:80")`},
		{"removed", Field{Subject: "f/w", Name: "memory limit", Op: Removed, Old: "64Mi"}, "f/w: memory limit removed (was 64Mi)"},
		{"described", Field{Subject: "web", Name: "replicas", New: "2"}, "web: replicas 2"},
		{"unnamed change", Field{Subject: "web", Name: "spec", Op: Changed}, "web: spec changed"},
		{"long value clipped", Field{Subject: "w", Name: "env X", Op: Added, New: long}, "w: env X added (" + long[:77] + "...)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Line(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
