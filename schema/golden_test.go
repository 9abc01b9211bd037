package schema

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/cases/*.txt")

// TestCases loads each testdata/cases/*.txt, an archive of descriptor
// files ("-- name --" lines start a file) ending in a "-- want --"
// section: every error as file:line:col: path: message, then the valid
// and rejected apps. Run with -update to rewrite the want sections.
func TestCases(t *testing.T) {
	paths, err := filepath.Glob("testdata/cases/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, p := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			comment, files, want := parseArchive(string(data))
			fsys := fstest.MapFS{}
			for name, content := range files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			res, err := Load(fsys, LoadOptions{})
			got := ""
			if err != nil {
				got = "load error: " + err.Error() + "\n"
			} else {
				got = render(res)
			}
			if *update {
				if err := os.WriteFile(p, []byte(formatArchive(comment, files, got)), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func render(res *Result) string {
	var b strings.Builder
	for _, e := range res.AllErrors() {
		b.WriteString(e.String() + "\n")
	}
	valid, rejected := splitApps(res)
	b.WriteString("valid: " + strings.Join(valid, " ") + "\n")
	b.WriteString("rejected: " + strings.Join(rejected, " ") + "\n")
	return b.String()
}

// parseArchive splits a case file into its leading comment, its files
// and its want section, in the shape of txtar.
func parseArchive(s string) (comment string, files map[string]string, want string) {
	files = map[string]string{}
	name := ""
	var cur strings.Builder
	flush := func() {
		switch name {
		case "":
			comment = cur.String()
		case "want":
			want = cur.String()
		default:
			files[name] = cur.String()
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(s, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			name = trimmed[3 : len(trimmed)-3]
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return comment, files, want
}

func formatArchive(comment string, files map[string]string, want string) string {
	var b strings.Builder
	b.WriteString(comment)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		b.WriteString("-- " + n + " --\n" + files[n])
	}
	b.WriteString("-- want --\n" + want)
	return b.String()
}

// splitApps names the valid and the rejected apps of res, in order.
func splitApps(res *Result) (valid, rejected []string) {
	for _, a := range res.Apps {
		if a.Valid() {
			valid = append(valid, a.Name)
		} else {
			rejected = append(rejected, a.Name)
		}
	}
	return valid, rejected
}
