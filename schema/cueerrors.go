package schema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/errors"
)

// errGroup is the errors CUE reports at one path.
type errGroup struct {
	path []string
	errs []errors.Error
}

// cueProblems turns the errors of evaluating one app against #App into
// problems for the positioning stage. CUE reports a value that fits no
// branch of a disjunction (a field with a default is one) as several
// errors; the noise about the default is dropped so the user sees what is
// wrong with what they wrote. Errors at or below the paths in skip (below
// #App, joined by '.': names checkNames reported) are dropped. v is the
// app's unified value, to list the fields allowed where one is not.
func cueProblems(err error, v cue.Value, skip []string, schemaSrc []byte) []problem {
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
		if underAny(p, skip) {
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
	closed := closedByUser(groups)
	for _, g := range groups {
		for _, e := range g.errs {
			if format, _ := e.Msg(); strings.HasPrefix(format, "field not allowed") && !closed.has(g.path) {
				notAllowed[strings.Join(g.path, ".")] = true
			}
		}
	}
	out := closed.problems()
	for _, g := range groups {
		if closed.has(g.path) {
			continue
		}
		if onlyConflicts(g.errs) && hasDeeper(groups, g) {
			// A value that fits no branch of a disjunction, with a more
			// precise error below it (an unknown field of the long form
			// of a port): the precise error says it all.
			continue
		}
		if msg, ok := envValueHint(g.path, g.errs); ok {
			out = append(out, problem{path: g.path, msg: msg, anchor: atCUE, cue: g.errs[0]})
			continue
		}
		picked := pickErrors(g.errs, schemaSrc)
		if msg, ok := enumMessage(g.errs, picked); ok {
			out = append(out, problem{path: g.path, msg: msg, anchor: atCUE, cue: picked[0]})
			continue
		}
		for _, e := range picked {
			out = append(out, cueProblem(e, g.path, v, notAllowed))
		}
	}
	return out
}

// closedStructs are the structs of the user's that are closed (a CUE
// definition #X, close()): the schema's own fields with defaults
// (ordered, pullPolicy) cannot be added to them, and CUE reports each as a
// field not allowed, at the schema's position only. The fields of each
// such struct, by its path joined by '.'.
type closedStructs struct {
	order  []string
	fields map[string][]string
}

func closedByUser(groups []*errGroup) closedStructs {
	c := closedStructs{fields: map[string][]string{}}
	for _, g := range groups {
		if len(g.path) < 2 || !schemaFieldNotAllowed(g.errs) {
			continue
		}
		parent := strings.Join(g.path[:len(g.path)-1], ".")
		if _, ok := c.fields[parent]; !ok {
			c.order = append(c.order, parent)
		}
		c.fields[parent] = append(c.fields[parent], g.path[len(g.path)-1])
	}
	return c
}

// schemaFieldNotAllowed reports whether errs say only that a field is not
// allowed, and that field comes from the schema, not the user's files.
func schemaFieldNotAllowed(errs []errors.Error) bool {
	for _, e := range errs {
		if format, _ := e.Msg(); !strings.HasPrefix(format, "field not allowed") || len(userPositions(e)) > 0 {
			return false
		}
	}
	return len(errs) > 0
}

func (c closedStructs) has(path []string) bool {
	if len(path) < 2 {
		return false
	}
	fields := c.fields[strings.Join(path[:len(path)-1], ".")]
	for _, f := range fields {
		if f == path[len(path)-1] {
			return true
		}
	}
	return false
}

// problems is one problem per closed struct, at the struct; a closed
// struct inside another is most often part of the same definition, which
// the way out of the outer one fixes too.
func (c closedStructs) problems() []problem {
	var out []problem
	for _, parent := range c.order {
		if c.inside(parent) {
			continue
		}
		fields := c.fields[parent]
		sort.Strings(fields)
		path := strings.Split(parent, ".")
		out = append(out, problem{path: path, anchor: atDeepest, msg: fmt.Sprintf(
			"is closed (a CUE definition #X or close()), so the schema cannot add its defaults (%s): "+
				"write the template as a hidden field instead (_%s: {...}, used as %s: _%s)",
			strings.Join(fields, ", "), templateName(path), path[len(path)-1], templateName(path))})
	}
	return out
}

// inside reports whether the struct at path is inside another closed one.
func (c closedStructs) inside(path string) bool {
	for _, other := range c.order {
		if strings.HasPrefix(path, other+".") {
			return true
		}
	}
	return false
}

// templateName is a name for a hidden field holding the template of the
// struct at path, for the example in the message.
func templateName(path []string) string {
	name := path[len(path)-1]
	if !isIdentifier(name) {
		return "template"
	}
	return name
}

func isIdentifier(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// cueProblem is one error CUE raised at path, with a message that says
// what to do.
func cueProblem(e errors.Error, path []string, v cue.Value, notAllowedSet map[string]bool) problem {
	p := problem{path: path, msg: message(e), anchor: atCUE, cue: e, also: true}
	format, _ := e.Msg()
	switch {
	case strings.HasPrefix(format, "field not allowed") && len(path) > 0:
		p.msg, p.also = notAllowed(path, v, notAllowedSet), false
	case strings.HasPrefix(format, "field is required but not present") && len(path) > 0:
		p.msg, p.also = "is required", false
	}
	return p
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

// envValueHint explains an env value that is not a string (PORT: 8080,
// DEBUG: true, which YAML reads as a number and a bool): one message that
// says to quote it, instead of a conflict with each form of an env value.
func envValueHint(path []string, errs []errors.Error) (string, bool) {
	if len(path) != 6 || path[4] != "env" || !onlyConflicts(errs) {
		return "", false
	}
	_, args := errs[0].Msg()
	for _, a := range args {
		s := fmt.Sprint(a)
		kind := ""
		switch _, err := strconv.ParseFloat(s, 64); {
		case err == nil:
			kind = "a number"
		case s == "true" || s == "false":
			kind = "a bool"
		case s == "null":
			kind = "null"
		default:
			continue
		}
		return fmt.Sprintf("%s is %s: env values are strings, so quote it (%s: %q)", s, kind, path[5], s), true
	}
	return "", false
}

// enumMessage turns a value that matches none of a list of literals
// (restartPolicy: "Sometimes") into one message naming them all, default
// included: CUE reports one conflict per literal. When the conflict
// with the default is all that was dropped (reclaim: *"retain" |
// "delete"), the literals must all be strings: a default beside a type
// (replicas: "two" against *1 | int) is no list to choose from.
func enumMessage(all, picked []errors.Error) (string, bool) {
	if len(all) < 2 {
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
	if len(picked) < 2 {
		for _, a := range alts {
			if !strings.HasPrefix(a, `"`) {
				return "", false
			}
		}
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

// notAllowed explains a field the schema does not allow: a name that
// breaks the naming rule, or an unknown field with the allowed ones.
func notAllowed(path []string, v cue.Value, notAllowedSet map[string]bool) string {
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
	if names := allowedFields(v, path[:len(path)-1], notAllowedSet); len(names) > 0 {
		msg += "; allowed: " + strings.Join(names, ", ")
	}
	return msg
}

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

// allowedFields lists the fields the schema allows at a path below #App:
// the fields of the app's value there, less those it does not allow.
func allowedFields(v cue.Value, p []string, notAllowed map[string]bool) []string {
	v = lookup(v, p...)
	if !v.Exists() {
		return nil
	}
	iter, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	prefix := ""
	if len(p) > 0 {
		prefix = strings.Join(p, ".") + "."
	}
	var out []string
	for iter.Next() {
		name := strings.TrimRight(iter.Selector().String(), "?!")
		if !notAllowed[prefix+name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
