package schema

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/capstanhq/capstan/apiserver/api"
)

// errContext tells fromCUEApp how to present errors of one app.
type errContext struct {
	app      string
	fallback api.SourceError // file and position of the app when an error has none in user files
	// skip drops errors at or below these paths (below #App, joined by
	// '.'), already reported as bad names.
	skip []string
	// value is the app's unified value, to place errors that have no
	// position in the user's files.
	value cue.Value
	// notAllowedSet holds the paths CUE reports as not allowed.
	notAllowedSet map[string]bool
}

// fromCUE converts errors of a single file that has no app context.
func fromCUE(err error, file, fieldPath string) []api.SourceError {
	var out []api.SourceError
	for _, e := range errors.Errors(err) {
		se := api.SourceError{File: file, Path: fieldPath, Message: message(e)}
		if ps := userPositions(e); len(ps) > 0 {
			setPos(&se, ps[0])
		} else if p := e.Position(); p.IsValid() {
			setPos(&se, p)
		}
		// The YAML decoder puts its position in the text: "f.yaml:3: ...".
		if m := textPos.FindStringSubmatch(se.Message); m != nil && m[1] == file {
			se.Line, _ = strconv.Atoi(m[2])
			se.Column, _ = strconv.Atoi(m[3])
			se.Message = m[4]
		}
		se.Message = strings.TrimPrefix(se.Message, file+": ")
		if p := e.Path(); len(p) > 0 && fieldPath == "" {
			se.Path = strings.Join(p, ".")
		}
		out = append(out, se)
	}
	if len(out) == 0 {
		out = append(out, api.SourceError{File: file, Path: fieldPath, Message: err.Error()})
	}
	return dedupe(out)
}

// fromCUEApp converts the errors of evaluating one app against #App. CUE
// reports a value that fits no branch of a disjunction (a field with a
// default is one) as several errors; the noise about the default is
// dropped so the user sees what is wrong with what they wrote.
// errGroup is the errors CUE reports at one path.
type errGroup struct {
	path []string
	errs []errors.Error
}

func fromCUEApp(err error, ec errContext, schemaSrc []byte) []api.SourceError {
	type group = errGroup
	var groups []*group
	byPath := map[string]*group{}
	for _, e := range errors.Errors(err) {
		format, _ := e.Msg()
		if strings.Contains(format, "errors in empty disjunction") {
			continue
		}
		p := unquotePath(e.Path())
		if len(p) > 0 && p[0] == "#App" {
			p = p[1:]
		}
		if underAny(p, ec.skip) {
			continue
		}
		key := strings.Join(p, "\x00")
		g := byPath[key]
		if g == nil {
			g = &group{path: p}
			byPath[key] = g
			groups = append(groups, g)
		}
		g.errs = append(g.errs, e)
	}
	notAllowed := map[string]bool{}
	for _, g := range groups {
		for _, e := range g.errs {
			if format, _ := e.Msg(); strings.HasPrefix(format, "field not allowed") {
				notAllowed[strings.Join(g.path, ".")] = true
			}
		}
	}
	ec.notAllowedSet = notAllowed
	var out []api.SourceError
	for _, g := range groups {
		if onlyConflicts(g.errs) && hasDeeper(groups, g) {
			// A value that fits no branch of a disjunction, with a more
			// precise error below it (an unknown field of the long form
			// of a port): the precise error says it all.
			continue
		}
		picked := pickErrors(g.errs, schemaSrc)
		if msg, ok := enumMessage(g.errs, picked); ok {
			se := ec.convert(picked[0], g.path)
			se.Message = msg
			out = append(out, se)
			continue
		}
		for _, e := range picked {
			out = append(out, ec.convert(e, g.path))
		}
	}
	return dedupe(out)
}

// unquotePath removes CUE's quotes from labels such as "web-1".
func unquotePath(p []string) []string {
	out := make([]string, len(p))
	for i, s := range p {
		if u, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
			s = u
		}
		out[i] = s
	}
	return out
}

const conflictFormat = "conflicting values %s and %s"

func onlyConflicts(errs []errors.Error) bool {
	for _, e := range errs {
		if format, _ := e.Msg(); !strings.HasPrefix(format, "conflicting values") {
			return false
		}
	}
	return len(errs) > 0
}

// hasDeeper reports whether another group has errors below g's path.
func hasDeeper(groups []*errGroup, g *errGroup) bool {
	prefix := strings.Join(g.path, "\x00") + "\x00"
	for _, o := range groups {
		if strings.HasPrefix(strings.Join(o.path, "\x00"), prefix) {
			return true
		}
	}
	return false
}

// enumMessage turns a value that matches none of a list of literals
// (restartPolicy: "Sometimes") into one message naming them all, default
// included: CUE reports one conflict per literal.
func enumMessage(all, picked []errors.Error) (string, bool) {
	if len(picked) < 2 {
		return "", false
	}
	count := map[string]int{}
	var order []string
	for _, e := range all {
		format, args := e.Msg()
		if format != conflictFormat || len(args) != 2 {
			return "", false
		}
		for _, a := range args {
			s := fmt.Sprint(a)
			if count[s] == 0 {
				order = append(order, s)
			}
			count[s]++
		}
	}
	var value string
	var alts []string
	for _, s := range order {
		if count[s] == len(all) && value == "" {
			value = s
		} else {
			alts = append(alts, s)
		}
	}
	if value == "" || len(alts) == 0 {
		return "", false
	}
	return fmt.Sprintf("%s is not allowed: want one of %s", value, strings.Join(alts, ", ")), true
}

// pickErrors chooses the informative errors of one path: conflicts
// between the user's own files first, then broken bounds or patterns,
// then everything that is not about a schema default.
func pickErrors(errs []errors.Error, schemaSrc []byte) []errors.Error {
	var multi, bounds, rest []errors.Error
	for _, e := range errs {
		ps := userPositions(e)
		distinct := map[string]bool{}
		for _, p := range ps {
			distinct[p.String()] = true
		}
		format, _ := e.Msg()
		switch {
		case len(distinct) >= 2:
			multi = append(multi, e)
		case strings.HasPrefix(format, "invalid value") || strings.Contains(format, "does not match"):
			bounds = append(bounds, e)
		case !againstDefault(e, schemaSrc):
			rest = append(rest, e)
		}
	}
	switch {
	case len(multi) > 0:
		return multi
	case len(bounds) > 0:
		return bounds
	case len(rest) > 0:
		return rest
	}
	return errs
}

// againstDefault reports whether an error is a conflict with a schema
// default (a value marked with '*'), which says nothing the other errors
// of the same path do not.
func againstDefault(e errors.Error, schemaSrc []byte) bool {
	for _, p := range e.InputPositions() {
		if p.Filename() != SchemaFile {
			continue
		}
		if off := p.Offset(); off > 0 && off <= len(schemaSrc) && schemaSrc[off-1] == '*' {
			return true
		}
	}
	return false
}

func (ec errContext) convert(e errors.Error, path []string) api.SourceError {
	full := append([]string{"apps", ec.app}, path...)
	se := api.SourceError{File: ec.fallback.File, Line: ec.fallback.Line, Column: ec.fallback.Column,
		Path: strings.Join(full, "."), Message: message(e)}
	ps := userPositions(e)
	if len(ps) == 0 && ec.value.Exists() {
		if p := deepestPos(ec.value, path); p.IsValid() {
			setPos(&se, p)
		}
	}
	if len(ps) > 0 {
		setPos(&se, ps[0])
		var also []string
		for _, p := range ps[1:] {
			if p.Filename() != ps[0].Filename() || p.Line() != ps[0].Line() || p.Column() != ps[0].Column() {
				also = append(also, posString(p))
			}
		}
		if len(also) > 0 {
			se.Message += " (also at " + strings.Join(also, ", ") + ")"
		}
	}
	if format, _ := e.Msg(); strings.HasPrefix(format, "field not allowed") && len(path) > 0 {
		se.Message = ec.notAllowed(path)
	}
	if format, _ := e.Msg(); strings.HasPrefix(format, "field is required but not present") && len(path) > 0 {
		se.Message = "is required"
	}
	return se
}

// notAllowed explains a field the schema does not allow: a name that
// breaks the naming rule, or an unknown field with the allowed ones.
func (ec errContext) notAllowed(path []string) string {
	name := path[len(path)-1]
	parent := ""
	if len(path) >= 2 {
		parent = path[len(path)-2]
	}
	switch {
	case len(path) == 2 && parent == "pods", len(path) == 4 && parent == "containers",
		len(path) == 4 && parent == "volumes", len(path) == 6 && parent == "mounts":
		return fmt.Sprintf("%q is not a valid name: want a DNS label (lowercase letters, digits and '-', at most 63)", name)
	case len(path) == 6 && parent == "ports" || len(path) == 5 && parent == "ports":
		return fmt.Sprintf("%q is not a valid port name: want at most 15 lowercase letters, digits and '-', with a letter", name)
	case len(path) == 6 && parent == "env":
		return fmt.Sprintf("%q is not a valid environment variable name", name)
	}
	msg := fmt.Sprintf("unknown field %q", name)
	if names := allowedFields(ec.value, path[:len(path)-1], ec.notAllowedSet); len(names) > 0 {
		msg += "; allowed: " + strings.Join(names, ", ")
	}
	return msg
}

var textPos = regexp.MustCompile(`^(.+?):(\d+)(?::(\d+))?: (.*)$`)

// message is the text of an error without its position; the full text
// when the short one drops the detail (the JSON and YAML decoders wrap
// their errors).
func message(e errors.Error) string {
	format, args := e.Msg()
	short := fmt.Sprintf(format, args...)
	full := e.Error()
	if strings.TrimSpace(short) == "" || len(full) > len(short) && strings.HasPrefix(full, short) {
		if format == "invalid JSON for file %q" {
			return "invalid JSON" + strings.TrimPrefix(full, short)
		}
		return full
	}
	return short
}

// userPositions are the positions of an error in the user's files, most
// relevant first.
func userPositions(e errors.Error) []token.Pos {
	var out []token.Pos
	for _, p := range errors.Positions(e) {
		if p.IsValid() && p.Filename() != SchemaFile && p.Filename() != "" {
			out = append(out, p)
		}
	}
	return out
}

func setPos(se *api.SourceError, p token.Pos) {
	pos := p.Position()
	if pos.Filename != "" {
		se.File = pos.Filename
	}
	se.Line, se.Column = pos.Line, pos.Column
}

func posString(p token.Pos) string {
	pos := p.Position()
	return fmt.Sprintf("%s:%d:%d", pos.Filename, pos.Line, pos.Column)
}

// dedupe removes repeated errors and sorts by position.
func dedupe(in []api.SourceError) []api.SourceError {
	seen := map[api.SourceError]bool{}
	out := in[:0]
	for _, e := range in {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sortErrors(out)
	return out
}

func sortErrors(errs []api.SourceError) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
}
