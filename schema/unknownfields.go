package schema

import (
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/errors"
)

// maxFieldDepth bounds the walk of an app's fields: the schema is nowhere
// near as deep, and a field that deep is not allowed anyway.
const maxFieldDepth = 32

// maxProbes bounds the probes of one app (one per struct it has): past
// it the pass stops, and the user sees what it found so far. It keeps the
// pass well inside the evaluation's time bound on apps of hundreds of
// pod groups.
const maxProbes = 1000

// unknownFields is a second pass over an app CUE refused: the fields the
// schema does not allow, at any depth. CUE stops checking a struct at its
// first error, so a port written as a name ("http" where a number is
// expected) hides an unknown field beside it, and the user fixes one
// error, pushes, and meets the next. Each struct of the app (frags: its
// values from the user's files) is probed alone: the schema unified with
// the path to that struct and its field names, every value top, where
// nothing but a name can fail. A field not allowed is reported and not
// walked into (its fields are not the mistake). skip lists paths (below
// #App, joined by '.') already reported (badly named fields). It returns
// one problem per unknown field, positioned at its name, and their paths,
// for the caller to drop CUE's own reports at or below them.
func (l *Loader) unknownFields(frags []cue.Value, skip []string) ([]problem, []string) {
	var (
		probs  []problem
		paths  []string
		probes int
	)
	var walk func(v cue.Value, at []string)
	walk = func(v cue.Value, at []string) {
		if len(at) > maxFieldDepth || v.IncompleteKind() != cue.StructKind || probes >= maxProbes {
			return
		}
		iter, err := v.Fields()
		if err != nil {
			return
		}
		var (
			names []string
			vals  []cue.Value
		)
		for iter.Next() {
			sel := iter.Selector()
			if sel.LabelType() != cue.StringLabel {
				continue
			}
			p := append(slices.Clone(at), sel.Unquoted())
			if underAny(p, skip) || underAny(p, paths) {
				continue
			}
			names, vals = append(names, sel.Unquoted()), append(vals, iter.Value())
		}
		if len(names) == 0 {
			return
		}
		probes++
		bad := l.notAllowedAmong(at, names)
		for i, name := range names {
			p := append(slices.Clone(at), name)
			if !bad[name] {
				walk(vals[i], p)
				continue
			}
			paths = append(paths, strings.Join(p, "."))
			probs = append(probs, problem{path: p, msg: notAllowed(p, l.probe(at, "{}"), nil), anchor: atName})
		}
	}
	for _, f := range frags {
		walk(f, nil)
	}
	return probs, paths
}

// probe returns the schema unified with the path (below #App) to val, a
// CUE expression.
func (l *Loader) probe(path []string, val string) cue.Value {
	var b strings.Builder
	for _, s := range path {
		b.WriteString("{")
		b.WriteString(strconv.Quote(s))
		b.WriteString(": ")
	}
	b.WriteString(val)
	b.WriteString(strings.Repeat("}", len(path)))
	return l.appSchema.Unify(l.ctx.CompileString(b.String()))
}

// notAllowedAmong returns which of names the schema does not allow as
// fields of the struct at path (below #App), whatever their values.
func (l *Loader) notAllowedAmong(path []string, names []string) map[string]bool {
	var b strings.Builder
	b.WriteString("{")
	for _, n := range names {
		b.WriteString(strconv.Quote(n))
		b.WriteString(": _\n")
	}
	b.WriteString("}")
	err := l.probe(path, b.String()).Validate(cue.Final())
	bad := map[string]bool{}
	for _, e := range errors.Errors(err) {
		if format, _ := e.Msg(); !strings.HasPrefix(format, "field not allowed") {
			continue
		}
		p := unquotePath(e.Path())
		if len(p) > 0 && p[0] == "#App" {
			p = p[1:]
		}
		// CUE may name an unknown struct by its first field.
		if len(p) > len(path) && slices.Equal(p[:len(path)], path) {
			bad[p[len(path)]] = true
		}
	}
	return bad
}

// dropCovered drops the problems CUE reported about the unknown fields
// (paths, joined by '.') the second pass reported: at or below one of them
// (CUE names an unknown struct by its first field: sevice.ports), and the
// conflict of the value holding one (a long-form port with an unknown
// field fits none of a port's forms).
func dropCovered(probs []problem, paths []string) []problem {
	if len(paths) == 0 {
		return probs
	}
	out := probs[:0:0]
	for _, p := range probs {
		if underAny(p.path, paths) || strings.HasPrefix(p.msg, "conflicting values") && parentOfAny(p.path, paths) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func parentOfAny(path []string, paths []string) bool {
	pre := strings.Join(path, ".") + "."
	for _, p := range paths {
		if strings.HasPrefix(p, pre) && !strings.Contains(p[len(pre):], ".") {
			return true
		}
	}
	return false
}
