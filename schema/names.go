package schema

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/capstanhq/capstan/apiserver/api"
)

// checkNames reports names that break their rule (pod groups, containers,
// volumes and mounts are DNS labels; ports are IANA service names; env
// names have no '=') with a clear message. CUE reports them as fields the
// schema does not allow, deep inside the badly named value; the returned
// paths (below #App, joined by '.') let the caller drop those errors.
func checkNames(app string, v cue.Value, fb api.SourceError) ([]api.SourceError, []string) {
	var (
		errs []api.SourceError
		bad  []string
	)
	check := func(parent cue.Value, at []string, valid func(string) bool, what string, fallback token.Pos) []field {
		var ok []field
		for _, f := range fieldsOf(lookup(parent, at...)) {
			if valid(f.name) {
				ok = append(ok, f)
				continue
			}
			p := strings.Join(append(append([]string{}, at...), f.name), ".")
			e := api.SourceError{File: fb.File, Line: fb.Line, Column: fb.Column,
				Path: "apps." + app + "." + p, Message: fmt.Sprintf("%q is not a valid %s", f.name, what)}
			if pos := posOf(f.v, fallback); pos.IsValid() {
				setPos(&e, pos)
			}
			errs = append(errs, e)
			bad = append(bad, p)
		}
		return ok
	}
	const label = "name: want a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
	const port = "port name: want at most 15 lowercase letters, digits and '-', with at least one letter"
	for _, g := range check(v, []string{"pods"}, api.IsDNSLabel, label, token.NoPos) {
		gp := []string{"pods", g.name}
		gpos := posOf(g.v, token.NoPos)
		check(v, append(gp, "volumes"), api.IsDNSLabel, label, gpos)
		check(v, append(gp, "service", "ports"), isPortName, port, gpos)
		for _, c := range check(v, append(gp, "containers"), api.IsDNSLabel, label, gpos) {
			cp := append(append([]string{}, gp...), "containers", c.name)
			cpos := posOf(c.v, gpos)
			check(v, append(cp, "ports"), isPortName, port, cpos)
			check(v, append(cp, "mounts"), api.IsDNSLabel, label, cpos)
			check(v, append(cp, "env"), isEnvName, "environment variable name: want no '=' and no NUL", cpos)
		}
	}
	return errs, bad
}

// lookup returns the value at sels below v.
func lookup(v cue.Value, sels ...string) cue.Value {
	if !v.Exists() || len(sels) == 0 {
		return v
	}
	ss := make([]cue.Selector, len(sels))
	for i, s := range sels {
		ss[i] = cue.Str(s)
	}
	return v.LookupPath(cue.MakePath(ss...))
}

// isPortName mirrors the API's rule for port names.
func isPortName(s string) bool {
	if len(s) > api.MaxPortNameLen || !api.IsDNSLabel(s) || strings.Contains(s, "--") {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' }) >= 0
}

func isEnvName(s string) bool { return s != "" && !strings.ContainsAny(s, "=\x00") }

// underAny reports whether path (below #App) is one of prefixes or below
// one of them.
func underAny(path []string, prefixes []string) bool {
	p := strings.Join(path, ".")
	for _, pre := range prefixes {
		if p == pre || strings.HasPrefix(p, pre+".") {
			return true
		}
	}
	return false
}

// deepestPos walks v along path and returns the position, in the user's
// files, of the deepest value that has one: where to report an error the
// schema raised about a missing field.
func deepestPos(v cue.Value, path []string) token.Pos {
	best := posOf(v, token.NoPos)
	for _, s := range path {
		v = lookup(v, s)
		if !v.Exists() {
			break
		}
		best = posOf(v, best)
	}
	return best
}
