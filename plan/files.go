package plan

import (
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/capstanhq/capstan/apiserver/api"
)

// maxDiffLines bounds the diff of one file shown in a plan.
const maxDiffLines = 60

// diffFiles records the changes of a pod group's files: added, removed,
// mode changed, content changed (with a unified diff of the text).
func diffFiles(fs *fields, subject string, old, new []api.PodFile) {
	byPath := map[string]api.PodFile{}
	for _, f := range old {
		byPath[f.Path] = f
	}
	seen := map[string]bool{}
	for _, n := range new {
		seen[n.Path] = true
		name := "file " + n.Path
		o, ok := byPath[n.Path]
		if !ok {
			*fs = append(*fs, Field{Subject: subject, Name: name, Op: Added, New: fileOrigin(n)})
			continue
		}
		fs.scalar(subject, name+" mode", fileMode(o.Mode), fileMode(n.Mode))
		fs.scalar(subject, name+" from", o.From, n.From)
		if o.Content != n.Content {
			*fs = append(*fs, Field{Subject: subject, Name: name, Op: Changed, Diff: textDiff(n.Path, o.Content, n.Content)})
		}
	}
	for _, o := range old {
		if !seen[o.Path] {
			*fs = append(*fs, Field{Subject: subject, Name: "file " + o.Path, Op: Removed, Old: fileOrigin(o)})
		}
	}
}

func fileOrigin(f api.PodFile) string {
	if f.From != "" {
		return "from " + f.From
	}
	return fmt.Sprintf("%d bytes inline", len(f.Content))
}

func fileMode(m int32) string {
	if m == 0 {
		m = api.DefaultFileMode
	}
	return fmt.Sprintf("%#o", m)
}

// textDiff is a unified diff of a file's old and new content, at most
// maxDiffLines lines.
func textDiff(name, old, new string) string {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(old), B: splitLines(new),
		FromFile: "a" + name, ToFile: "b" + name, Context: 2,
	})
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(d, "\n"), "\n")
	if len(lines) > maxDiffLines {
		lines = append(lines[:maxDiffLines], fmt.Sprintf("... (%d more lines)", len(lines)-maxDiffLines))
	}
	return strings.Join(lines, "\n")
}

// splitLines splits text into lines that keep their newline; a last line
// without one gets one (difflib's output needs it).
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}
