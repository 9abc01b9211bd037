package schema

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/capstanhq/capstan/apiserver/api"
)

const filesApp = `apps: shop: pods: web: {
	containers: app: image: "x"
	files: {
		"/etc/app/app.conf": {from: "config/app.conf", mode: 0o440}
		"/etc/app/motd": content: "hello\n"
	}
}
`

func loadResolved(t *testing.T, fsys fstest.MapFS, prefix string) *Result {
	t.Helper()
	res := mustLoad(t, fsys, LoadOptions{PathPrefix: prefix})
	ResolveFiles(fsys, res, ResolveOptions{PathPrefix: prefix})
	return res
}

func TestFilesFromRepoAndInline(t *testing.T) {
	fsys := mapFS(map[string]string{"shop.cue": filesApp, "config/app.conf": "listen 8080\n"})
	res := loadResolved(t, fsys, "")
	if errs := res.AllErrors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errorStrings(errs))
	}
	files := res.Valid()[0].Spec.Workloads[0].Spec.Template.Files
	want := []api.PodFile{
		{Path: "/etc/app/app.conf", From: "config/app.conf", Content: "listen 8080\n", Mode: 0o440},
		{Path: "/etc/app/motd", Content: "hello\n", Mode: 0o444},
	}
	if len(files) != 2 || files[0] != want[0] || files[1] != want[1] {
		t.Fatalf("files = %+v, want %+v", files, want)
	}
	if err := api.Validate(res.Valid()[0]); err != nil {
		t.Fatal(err)
	}
}

// An app whose from files are not read is refused by validation: the
// API never stores a template whose content is missing.
func TestFilesUnresolvedRefused(t *testing.T) {
	fsys := mapFS(map[string]string{"shop.cue": filesApp, "config/app.conf": "x"})
	res := mustLoad(t, fsys, LoadOptions{})
	err := api.Validate(res.Valid()[0])
	if err == nil || !strings.Contains(err.Error(), "was not read from the repository") {
		t.Fatalf("Validate = %v, want an unread-file error", err)
	}
}

// A change of a file read from the repository changes the app, though
// no descriptor changed and the loader reuses its evaluation.
func TestFilesChangeWithoutDescriptorChange(t *testing.T) {
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	fsys := mapFS(map[string]string{"shop.cue": filesApp, "config/app.conf": "v1"})
	res, _ := l.Load(fsys, LoadOptions{})
	ResolveFiles(fsys, res, ResolveOptions{})
	fsys["config/app.conf"] = &fstest.MapFile{Data: []byte("v2")}
	res2, _ := l.Load(fsys, LoadOptions{})
	ResolveFiles(fsys, res2, ResolveOptions{})
	if len(res2.Evaluated) != 0 {
		t.Fatalf("evaluated %v, want the cached app", res2.Evaluated)
	}
	got1 := res.Apps[0].App.Spec.Workloads[0].Spec.Template.Files[0].Content
	got2 := res2.Apps[0].App.Spec.Workloads[0].Spec.Template.Files[0].Content
	if got1 != "v1" || got2 != "v2" {
		t.Fatalf("contents %q, %q; want v1, v2", got1, got2)
	}
}

func TestFilesErrors(t *testing.T) {
	big := strings.Repeat("x", api.MaxFileBytes+1)
	tests := []struct {
		name  string
		files map[string]string
		link  map[string]string // path -> link target
		want  string
	}{
		{"missing", map[string]string{"a.cue": one(`"/etc/a": from: "nope.conf"`)},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: file /etc/a: from "nope.conf": no such file in the repository at this commit`},
		{"escape", map[string]string{"a.cue": one(`"/etc/a": from: "../etc/passwd"`)},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: "../etc/passwd" leaves the repository`},
		{"absolute", map[string]string{"a.cue": one(`"/etc/a": from: "/etc/passwd"`)},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: "/etc/passwd" is an absolute path`},
		{"unclean", map[string]string{"a.cue": one(`"/etc/a": from: "config/./a"`)},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: "config/./a" is not a clean path inside the repository (write config/a)`},
		{"too large", map[string]string{"a.cue": one(`"/etc/a": from: "big"`), "big": big},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: file /etc/a: from "big": is 262145 bytes, more than the limit of 262144 a config file`},
		{"binary", map[string]string{"a.cue": one(`"/etc/a": from: "bin"`), "bin": "ab\x00cd"},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: file /etc/a: from "bin": is not text`},
		{"lfs pointer", map[string]string{"a.cue": one(`"/etc/a": from: "big.conf"`), "big.conf": lfsPointerText},
			nil, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: file /etc/a: from "big.conf": is a Git LFS pointer, not the file's content (sync does not fetch LFS objects)`},
		{"symlink out", map[string]string{"a.cue": one(`"/etc/a": from: "l"`)},
			map[string]string{"l": "../../etc/passwd"}, `a.cue:4:17: apps.shop.pods.web.files./etc/a.from: file /etc/a: from "l": symbolic link refused: it points outside the repository`},
		{"both", map[string]string{"a.cue": one(`"/etc/a": {from: "x", content: "y"}`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files./etc/a: set one of from, content and secret, not several`},
		{"neither", map[string]string{"a.cue": one(`"/etc/a": mode: 0o400`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files./etc/a: set from (a file of the repository), content or secret`},
		{"relative mount", map[string]string{"a.cue": one(`"etc/a": content: "x"`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files.etc/a: "etc/a" must be an absolute path`},
		{"unclean mount", map[string]string{"a.cue": one(`"/etc/../a": content: "x"`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files./etc/../a: "/etc/../a" is not a clean path (write /a)`},
		{"reserved mount", map[string]string{"a.cue": one(`"/etc/hosts": content: "x"`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files./etc/hosts: "/etc/hosts" is written by Capstan`},
		{"bad mode", map[string]string{"a.cue": one(`"/etc/a": {content: "x", mode: 0o1777}`)},
			nil, `a.cue:4:32: apps.shop.pods.web.files./etc/a.mode: invalid value 1023 (out of bound <=511)`},
		{"secret file", map[string]string{"a.cue": one(`"/etc/db.yaml": from: "secrets/db.secret.yaml"`), "secrets/db.secret.yaml": "a: ENC[v1,AAAA]\n"},
			nil, `a.cue:4:23: apps.shop.pods.web.files./etc/db.yaml.from: "secrets/db.secret.yaml" is an encrypted secret file: declare it under apps.shop.secrets and take a key as a file with secret: {name, key}`},
		{"binary inline", map[string]string{"a.cue": one(`"/etc/a": content: "\u0000"`)},
			nil, `a.cue:4:1: apps.shop.pods.web.files./etc/a: is not text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := mapFS(tt.files)
			for p, target := range tt.link {
				fsys[p] = &fstest.MapFile{Data: []byte(target), Mode: 0o777 | 1<<27 /* fs.ModeSymlink */}
			}
			res := loadResolved(t, fsys, "")
			errs := errorStrings(res.AllErrors())
			if len(errs) == 0 || !strings.Contains(errs[0], tt.want) || res.Apps[0].Valid() {
				t.Fatalf("errors = %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

// lfsPointerText is what git holds for a file tracked by Git LFS.
const lfsPointerText = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"

// one is an app with one pod group whose files field holds entry.
func one(entry string) string {
	return "apps: shop: pods: web: {\n\tcontainers: app: image: \"x\"\n\tfiles: {\n" + entry + "\n\t}\n}\n"
}

// Errors of files read under a descriptor path name the file from the
// repository root.
func TestFilesErrorsWithPrefix(t *testing.T) {
	fsys := mapFS(map[string]string{"a.cue": one(`"/etc/a": from: "nope"`)})
	res := loadResolved(t, fsys, "deploy/")
	errs := errorStrings(res.AllErrors())
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "deploy/a.cue:4:17: ") {
		t.Fatalf("errors = %q, want one at deploy/a.cue:4:17", errs)
	}
}
