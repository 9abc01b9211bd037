package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile/app"
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
		fs.scalar(subject, name+" from", secretRef(o.Secret), secretRef(n.Secret))
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
	if f.Secret != nil {
		return "from " + secretRef(f.Secret)
	}
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

// diffSecretRefs names the env values and files whose secret changed
// value (their version), which the text diffs cannot show.
func diffSecretRefs(fs *fields, subject string, o, n *api.PodTemplate) {
	old := map[string]*api.SecretKeyRef{}
	for i := range o.Containers {
		for _, e := range o.Containers[i].Env {
			if e.Secret != nil {
				old[o.Containers[i].Name+"/env "+e.Name] = e.Secret
			}
		}
	}
	for _, f := range o.Files {
		if f.Secret != nil {
			old["file "+f.Path] = f.Secret
		}
	}
	check := func(key, sub, name string, r *api.SecretKeyRef) {
		if p := old[key]; p != nil && p.Name == r.Name && p.Key == r.Key && p.Version != r.Version {
			*fs = append(*fs, Field{Subject: sub, Name: name + " (secret " + r.Name + " key " + r.Key + ")", Op: Changed})
		}
	}
	for i := range n.Containers {
		for _, e := range n.Containers[i].Env {
			if e.Secret != nil {
				check(n.Containers[i].Name+"/env "+e.Name, subject+"/"+n.Containers[i].Name, "env "+e.Name, e.Secret)
			}
		}
	}
	for _, f := range n.Files {
		if f.Secret != nil {
			check("file "+f.Path, subject, "file "+f.Path, f.Secret)
		}
	}
}

// diffSecret names the keys of a secret added, removed and changed:
// never a value (the plan has none: it compares the encrypted values).
func diffSecret(name string, o, n *api.Secret) []Field {
	var fs fields
	for _, k := range slices.Sorted(maps.Keys(n.Spec.Versions)) {
		switch ov, ok := o.Spec.Versions[k]; {
		case !ok:
			fs = append(fs, Field{Subject: "secret " + name, Name: "key " + k, Op: Added})
		case ov != n.Spec.Versions[k]:
			fs = append(fs, Field{Subject: "secret " + name, Name: "key " + k, Op: Changed})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Spec.Versions)) {
		if _, ok := n.Spec.Versions[k]; !ok {
			fs = append(fs, Field{Subject: "secret " + name, Name: "key " + k, Op: Removed})
		}
	}
	return fs
}

func describeSecret(name string, s *api.Secret) []Field {
	return []Field{{Subject: "secret " + name, Name: "keys", New: strings.Join(slices.Sorted(maps.Keys(s.Spec.Versions)), ", ")}}
}

func desiredSecrets(a *api.App) map[string]*api.Secret {
	out := map[string]*api.Secret{}
	if a != nil {
		for _, s := range app.DesiredSecrets(a) {
			out[s.Metadata.Name] = s
		}
	}
	return out
}
