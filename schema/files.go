package schema

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	cuejson "cuelang.org/go/encoding/json"
	cueyaml "cuelang.org/go/encoding/yaml"

	"github.com/capstanhq/capstan/apiserver/api"
)

// unit is one parsed descriptor file: the fragment of each app it
// declares, and the errors of the file itself.
type unit struct {
	path string
	hash [32]byte
	// apps maps each app the file declares to its fragment (the value of
	// apps.<name> in this file alone). The fragments are released once
	// the file's apps are evaluated (release) and parsed again from data
	// when an app must be evaluated again (fragment): a 10,000-file tree
	// otherwise keeps 100 MiB of syntax and values that are rarely used
	// again, and the collector scans them on every cycle.
	apps   map[string]cue.Value
	appPos map[string]token.Pos
	data   []byte // the file's content, kept while apps is released
	// errs are problems of the file as a whole (syntax, top-level fields).
	// They reject every app in owners. When the file did not parse
	// (guessed), they are also the repository's: owners are then a guess
	// and may miss apps the file declares, so nothing may be pruned.
	errs    []api.SourceError
	owners  []string
	guessed bool
}

// guess records that the file did not parse: its owners are the apps it
// seems to declare (see attribute).
func (u *unit) guess(data []byte, prev *unit) {
	u.owners, u.guessed = attribute(data, prev), true
}

// parseUnit parses one file on its own. It never fails: problems are
// recorded in the unit.
func parseUnit(ctx *cue.Context, f rawFile, prev *unit) *unit {
	u := &unit{path: f.path, hash: f.hash, apps: map[string]cue.Value{}, appPos: map[string]token.Pos{}, data: f.data}
	if f.err != nil {
		u.errs = append(u.errs, *f.err)
		u.guess(nil, prev)
		return u
	}
	v, err := compile(ctx, f.path, f.data)
	if err == nil {
		err = v.Err()
	}
	if err != nil {
		u.errs = append(u.errs, explainModuleErrors(fromCUE(err, f.path, ""), f.data)...)
		u.guess(f.data, prev)
		return u
	}
	switch k := v.IncompleteKind(); {
	case k == cue.NullKind || k == cue.TopKind: // an empty YAML file
		return u
	case k != cue.StructKind:
		msg := fmt.Sprintf("the file holds a value of type %s; a descriptor is a map with the single field apps", k)
		if k == cue.ListKind && yamlDocSep.Match(f.data) {
			msg = "the file holds several YAML documents; a descriptor file holds one map with the single field apps"
		}
		u.errs = append(u.errs, api.SourceError{File: f.path, Line: 1, Column: 1, Message: msg})
		u.guess(f.data, prev)
		return u
	}
	iter, err := v.Fields()
	if err != nil {
		u.errs = append(u.errs, fromCUE(err, f.path, "")...)
		u.guess(f.data, prev)
		return u
	}
	var appsVal cue.Value
	for iter.Next() {
		sel := iter.Selector()
		if sel.String() == "apps" {
			appsVal = iter.Value()
			continue
		}
		u.errs = append(u.errs, atPos(iter.Value().Pos(), f.path, sel.String(),
			"unknown top-level field: a descriptor holds only apps; a data file that is not a descriptor is skipped when a valid app reads it (files: from:, secrets: from:), "+
				"else move it into a directory whose name starts with '.'"))
	}
	if !appsVal.Exists() {
		return u
	}
	if appsVal.IncompleteKind() != cue.StructKind {
		u.errs = append(u.errs, atPos(appsVal.Pos(), f.path, "apps", "must be a map of app names to apps"))
		u.guess(f.data, prev)
		return u
	}
	ai, err := appsVal.Fields()
	if err != nil {
		u.errs = append(u.errs, fromCUE(err, f.path, "")...)
		u.guess(f.data, prev)
		return u
	}
	for ai.Next() {
		name := ai.Selector().Unquoted()
		u.apps[name] = ai.Value()
		u.appPos[name] = ai.Value().Pos()
		u.owners = append(u.owners, name)
	}
	sort.Strings(u.owners)
	return u
}

// release drops the file's fragments; fragment parses them again.
func (u *unit) release() {
	if len(u.apps) > 0 {
		u.apps = nil
	}
}

// fragment returns the value of apps.<name> in this file, parsing the
// file again if its fragments were released. The file parsed before, so
// it parses again; a fragment that is missing all the same is reported
// as absent.
func (u *unit) fragment(ctx *cue.Context, name string) (cue.Value, bool) {
	if u.apps == nil {
		again := parseUnit(ctx, rawFile{path: u.path, data: u.data, hash: u.hash}, nil)
		u.apps = again.apps
	}
	v, ok := u.apps[name]
	return v, ok
}

func compile(ctx *cue.Context, name string, data []byte) (cue.Value, error) {
	switch path.Ext(name) {
	case ".yaml", ".yml":
		f, err := cueyaml.Extract(name, data)
		if err != nil {
			return cue.Value{}, err
		}
		return ctx.BuildFile(f), nil
	case ".json":
		if len(bytes.TrimSpace(data)) == 0 {
			return cue.Value{}, fmt.Errorf("empty JSON file: want an object with the field apps")
		}
		e, err := cuejson.Extract(name, data)
		if err != nil {
			return cue.Value{}, err
		}
		return ctx.BuildExpr(e), nil
	default:
		f, err := parser.ParseFile(name, data)
		if err != nil || !plain(f) {
			return ctx.CompileBytes(data, cue.Filename(name)), nil
		}
		// The file's fields as one struct: compiled as an expression,
		// which the context does not keep (it keeps every file it
		// compiles as an instance, for imports by other files).
		return ctx.BuildExpr(&ast.StructLit{Elts: f.Decls}), nil
	}
}

// plain reports whether a file holds only fields, lets and embedded
// values: no package clause, no imports, no file attributes, whose
// meaning belongs to a file.
func plain(f *ast.File) bool {
	for _, d := range f.Decls {
		switch d.(type) {
		case *ast.Package, *ast.ImportDecl, *ast.Attribute:
			return false
		}
	}
	return true
}

var (
	yamlDocSep = regexp.MustCompile(`(?m)^---\s*$`)
	// inlineApp finds "apps: shop:" and JSON's "apps": {"shop":.
	inlineApp = regexp.MustCompile(`"?\bapps"?\s*:\s*\{?\s*"?([a-zA-Z0-9_-]+)"?\s*:`)
	// blockApps finds a top-level line that opens the apps map.
	blockApps = regexp.MustCompile(`^"?apps"?\s*:\s*\{?\s*$`)
	keyLine   = regexp.MustCompile(`^(\s+)"?([a-zA-Z0-9_-]+)"?\s*:`)
)

// attribute guesses which apps a file that does not parse declares, so
// its errors reject those apps instead of the whole repository: the apps
// the previous version of the file declared, and names that look like
// keys of apps in the text.
func attribute(data []byte, prev *unit) []string {
	set := map[string]bool{}
	if prev != nil {
		for _, name := range prev.owners {
			set[name] = true
		}
	}
	for _, m := range inlineApp.FindAllSubmatch(data, -1) {
		set[string(m[1])] = true
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	indent := ""
	inBlock := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if blockApps.MatchString(line) {
			inBlock, indent = true, ""
			continue
		}
		if !inBlock {
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		lead := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		switch {
		case lead == "":
			inBlock = false
		case indent == "" && m != nil:
			indent = m[1]
			set[m[2]] = true
		case m != nil && m[1] == indent:
			set[m[2]] = true
		case len(lead) < len(indent):
			inBlock = false
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
