package schema

import (
	"fmt"
	"sort"
	"strings"

	"cuelang.org/go/cue"

	"github.com/capstanhq/capstan/apiserver/api"
)

// checkNames reports names that break their rule (pod groups, containers,
// volumes and mounts are DNS labels; ports are IANA service names; env
// names have no '=') with a clear message. CUE reports them as fields the
// schema does not allow, deep inside the badly named value; the returned
// paths (below #App, joined by '.') let the caller drop those errors.
func checkNames(v cue.Value) ([]problem, []string) {
	var (
		probs []problem
		bad   []string
	)
	check := func(at []string, valid func(string) bool, what string) []string {
		var ok []string
		for _, name := range fieldNames(lookup(v, at...)) {
			if valid(name) {
				ok = append(ok, name)
				continue
			}
			p := append(append([]string{}, at...), name)
			probs = append(probs, problem{path: p, msg: fmt.Sprintf("%q is not a valid %s", name, what), anchor: atName})
			bad = append(bad, strings.Join(p, "."))
		}
		return ok
	}
	const label = "name: want a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
	const port = "port name: want at most 15 lowercase letters, digits and '-', with at least one letter"
	for _, g := range check([]string{"pods"}, api.IsDNSLabel, label) {
		gp := []string{"pods", g}
		check(append(gp, "volumes"), api.IsDNSLabel, label)
		check(append(gp, "service", "ports"), isPortName, port)
		for _, c := range check(append(gp, "containers"), api.IsDNSLabel, label) {
			cp := append(append([]string{}, gp...), "containers", c)
			check(append(cp, "ports"), isPortName, port)
			check(append(cp, "mounts"), api.IsDNSLabel, label)
			check(append(cp, "env"), isEnvName, "environment variable name: want no '=' and no NUL")
		}
	}
	return probs, bad
}

// fieldNames returns the names of the regular fields of a struct value,
// sorted. Only error paths use it: iterating CUE values is costly.
func fieldNames(v cue.Value) []string {
	if !v.Exists() {
		return nil
	}
	iter, err := v.Fields()
	if err != nil {
		return nil
	}
	var out []string
	for iter.Next() {
		out = append(out, iter.Selector().Unquoted())
	}
	sort.Strings(out)
	return out
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
