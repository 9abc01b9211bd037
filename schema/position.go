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

// This file is the positioning stage: the one place where problems found
// while checking and converting an app are given their file:line:col in
// the user's files. The stages before it (names.go, cueerrors.go,
// convert.go) say only what is wrong and at which descriptor path; the
// positions are looked up here, and only for errors, because asking CUE
// for them is costly.

// anchor says how a problem finds its position.
type anchor int

const (
	// atDeepest: the deepest value along the problem's path that has a
	// position in the user's files (a field the converter or
	// api.Validate refused, a missing field the schema requires).
	atDeepest anchor = iota
	// atName: a badly named field: the named value, else its container,
	// else its pod group, else the app's first declaration.
	atName
	// atApp: the app's first declaration.
	atApp
	// atCUE: the positions CUE gives the error in the user's files (the
	// first one; the others are named in the message when also is set),
	// else as atDeepest.
	atCUE
)

// problem is one error of an app before it is positioned: the descriptor
// path below the app, the message, and how to find its position.
type problem struct {
	path   []string
	msg    string
	anchor anchor
	cue    errors.Error // the error CUE raised, for atCUE
	also   bool         // atCUE: name CUE's other user positions in the message
}

// placer positions the problems of one app.
type placer struct {
	app string
	v   cue.Value // the app, unified with #App
	// fb is the app's first declaration: the position of a problem that
	// has none in the user's files.
	fb api.SourceError
}

// place turns problems into source errors, deduplicated and sorted.
func (pl placer) place(probs []problem) []api.SourceError {
	out := make([]api.SourceError, 0, len(probs))
	for _, p := range probs {
		out = append(out, pl.one(p))
	}
	return dedupe(out)
}

func (pl placer) one(p problem) api.SourceError {
	se := api.SourceError{File: pl.fb.File, Line: pl.fb.Line, Column: pl.fb.Column,
		Path: strings.Join(append([]string{"apps", pl.app}, p.path...), "."), Message: p.msg}
	var pos token.Pos
	switch p.anchor {
	case atApp:
		return se
	case atName:
		pos = pl.namePos(p.path)
	case atCUE:
		ps := userPositions(p.cue)
		if len(ps) == 0 {
			pos = pl.deepest(p.path)
			break
		}
		pos = ps[0]
		if p.also {
			var also []string
			for _, q := range ps[1:] {
				if q.Filename() != ps[0].Filename() || q.Line() != ps[0].Line() || q.Column() != ps[0].Column() {
					also = append(also, posString(q))
				}
			}
			if len(also) > 0 {
				se.Message += " (also at " + strings.Join(also, ", ") + ")"
			}
		}
	default:
		pos = pl.deepest(p.path)
	}
	if pos.IsValid() {
		setPos(&se, pos)
	}
	return se
}

func (pl placer) deepest(path []string) token.Pos {
	if !pl.v.Exists() {
		return token.NoPos
	}
	return deepestPos(pl.v, path)
}

// namePos is the position of the value at path (a named field), else of
// the container and then the pod group it belongs to.
func (pl placer) namePos(path []string) token.Pos {
	pos := token.NoPos
	if len(path) > 2 {
		pos = posOf(lookup(pl.v, path[:2]...), pos) // pods.<group>
	}
	if len(path) > 4 && path[2] == "containers" {
		pos = posOf(lookup(pl.v, path[:4]...), pos) // pods.<group>.containers.<name>
	}
	return posOf(lookup(pl.v, path...), pos)
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

// posOf is v's position in the user's files, or fallback when v comes
// from the schema (a default).
func posOf(v cue.Value, fallback token.Pos) token.Pos {
	if !v.Exists() {
		return fallback
	}
	if p := v.Pos(); isUserPos(p) {
		return p
	}
	// A value unified with the schema may report the schema's position;
	// look for the user's own conjunct.
	if op, args := v.Expr(); op == cue.AndOp {
		for _, a := range args {
			if p := a.Pos(); isUserPos(p) {
				return p
			}
		}
	}
	return fallback
}

func isUserPos(p token.Pos) bool {
	return p.IsValid() && p.Filename() != SchemaFile && p.Filename() != ""
}

// userPositions are the positions of an error in the user's files, most
// relevant first.
func userPositions(e errors.Error) []token.Pos {
	var out []token.Pos
	for _, p := range errors.Positions(e) {
		if isUserPos(p) {
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

// fromCUE positions the errors of a single file that has no app context
// (it does not parse, or its top level is wrong).
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

var textPos = regexp.MustCompile(`^(.+?):(\d+)(?::(\d+))?: (.*)$`)

// atPos makes a SourceError at a CUE position in file.
func atPos(p token.Pos, file, fieldPath, msg string) api.SourceError {
	e := api.SourceError{File: file, Path: fieldPath, Message: msg}
	if p.IsValid() {
		pos := p.Position()
		e.Line, e.Column = pos.Line, pos.Column
	}
	return e
}

// alsoAt finds the other positions of a conflict in a message.
var alsoAt = regexp.MustCompile(`(\(also at |, )[^,()\s]+:\d+:\d+`)

// display makes a positioned error's paths relative to the repository
// root (LoadOptions.PathPrefix): its file and the other positions its
// message names. Positions are kept relative to the loaded tree until
// then, so that a cached app serves any prefix.
func (o LoadOptions) displayError(e api.SourceError) api.SourceError {
	e.File = o.display(e.File)
	if o.PathPrefix != "" {
		e.Message = alsoAt.ReplaceAllStringFunc(e.Message, func(s string) string {
			return s[:len(s)-len(strings.TrimLeft(s, "(, also at"))] + o.display(strings.TrimLeft(s, "(, also at"))
		})
	}
	return e
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
