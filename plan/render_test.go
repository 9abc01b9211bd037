package plan

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/capstanhq/capstan/apiserver/api"
)

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
		{"carriage return in cell", cell, "/srv\r| x", `/srv\r\| x`},
		{"escape in code", code, "dir /srv\x1b[2K", "`dir /srv\\x1b[2K`"},
		{"bidi override in code", code, "a\u202eb", "`a\\u202eb`"},
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

// Descriptor content cannot act on a terminal nor on the Markdown of a
// pull-request comment: escape sequences, a bare \r (a line end for
// CommonMark) and HTML in a folded diff's summary are shown, not obeyed.
func TestRenderEscapesDescriptorContent(t *testing.T) {
	path := "/etc/</summary></details><h1>INJECTED</h1>\r| x |"
	p := &Plan{Base: Revision{Ref: "main"}, Head: Revision{Ref: "x"}, Apps: []App{{Name: "shop", Status: AppChanged,
		Objects: []Object{{Kind: api.KindWorkload, Name: "web", Op: Changed, Fields: []Field{
			{Subject: "web/app", Name: "working dir", Op: Changed, Old: "/srv", New: "/srv\x1b[2K\rok"},
			{Subject: "web", Name: "file " + path, Op: Changed, Diff: "--- a\n+++ b\n@@ -1 +1 @@\n-a\n+\x1b]0;pwned\x07b\r```"},
		}}}}}}
	text := RenderText(p)
	for _, bad := range []string{"\x1b", "\r", "\x07"} {
		if strings.Contains(text, bad) {
			t.Errorf("text holds %q:\n%s", bad, text)
		}
	}
	for _, want := range []string{`working dir /srv -> /srv\x1b[2K\rok`, `+\x1b]0;pwned\ab\r`} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	md := RenderMarkdown(p)
	for _, bad := range []string{"\x1b", "\r", "\x07"} {
		if strings.Contains(md, bad) {
			t.Errorf("markdown holds %q:\n%s", bad, md)
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "<details>") && strings.Contains(line, "<h1>") {
			t.Errorf("summary holds raw HTML: %s", line)
		}
	}
	if want := "<summary>web: file /etc/&lt;/summary&gt;&lt;/details&gt;&lt;h1&gt;INJECTED&lt;/h1&gt;\\r| x | changed</summary>"; !strings.Contains(md, want) {
		t.Errorf("markdown lacks %q:\n%s", want, md)
	}
}

// FuzzPrintable: whatever the input, the output is valid UTF-8 with no
// character a terminal acts on but the kept ones, and printable input is
// kept as is.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "plain", "/srv\x1b[2K\r", "héllo wörld", "a\u202eb", "\xff\xfe", "tab\tnl\n", "\u0085\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := printable(s, "\n")
		if !utf8.ValidString(out) {
			t.Fatalf("printable(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if r != '\n' && !unicode.IsPrint(r) {
				t.Fatalf("printable(%q) = %q holds %U", s, out, r)
			}
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && !unicode.IsPrint(r) }) && out != s {
			t.Fatalf("printable(%q) = %q: changed printable text", s, out)
		}
	})
}

// The header shortens a revision given as a full SHA (the merge base of
// `capstan plan --pr`) like the commits it shows beside names.
func TestRevisionHeader(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, tt := range []struct {
		r    Revision
		want string
	}{
		{Revision{Ref: sha, Commit: sha}, "0123456789ab"},
		{Revision{Ref: "main", Commit: sha}, "main (0123456789ab)"},
		{Revision{Commit: sha}, "0123456789ab"},
	} {
		if got := revision(tt.r); got != tt.want {
			t.Errorf("revision(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
