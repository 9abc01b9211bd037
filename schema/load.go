package schema

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/token"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Load reads every descriptor file of fsys and returns one result per app.
// It fails as a whole only when the tree cannot be loaded at all (a limit
// of opts is exceeded, the root cannot be read); errors in descriptors are
// in the Result.
func Load(fsys fs.FS, opts LoadOptions) (*Result, error) {
	l, err := NewLoader()
	if err != nil {
		return nil, err
	}
	return l.Load(fsys, opts)
}

// Loader loads trees repeatedly, reusing the work of its previous load for
// files and apps that did not change.
type Loader struct {
	mu        sync.Mutex
	ctx       *cue.Context
	schemaSrc []byte
	appSchema cue.Value
	files     map[string]*unit     // by path, from the previous load
	apps      map[string]*appCache // by app name, from the previous load
}

// appCache is one evaluated app, valid as long as the same versions of
// the same files declare it.
type appCache struct {
	key    [32]byte
	app    *api.App // paths relative to the tree, no repo or commit
	errs   []api.SourceError
	files  []string
	source api.Source
}

// NewLoader compiles the embedded schema.
func NewLoader() (*Loader, error) {
	ctx := cuecontext.New()
	s := ctx.CompileBytes(source, cue.Filename(SchemaFile))
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("schema: compile the embedded schema: %w", err)
	}
	app := s.LookupPath(cue.MakePath(cue.Def("#App")))
	if err := app.Err(); err != nil {
		return nil, fmt.Errorf("schema: the embedded schema has no #App: %w", err)
	}
	return &Loader{ctx: ctx, schemaSrc: source, appSchema: app,
		files: map[string]*unit{}, apps: map[string]*appCache{}}, nil
}

// Load reads every descriptor file of fsys (see the package doc) and
// returns one result per app. Files whose content did not change since the
// previous Load are not parsed again, and apps whose files did not change
// are not evaluated again.
func (l *Loader) Load(fsys fs.FS, opts LoadOptions) (*Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	raw, err := walk(fsys, opts)
	if err != nil {
		return nil, fmt.Errorf("schema: load descriptors: %w", err)
	}
	return l.load(raw, opts), nil
}

// load evaluates files read by walk, with opts' defaults filled in.
func (l *Loader) load(raw []rawFile, opts LoadOptions) *Result {
	l.mu.Lock()
	defer l.mu.Unlock()

	units := make([]*unit, 0, len(raw))
	files := make(map[string]*unit, len(raw))
	for _, f := range raw {
		if f.err == nil && f.data == nil { // a link to a directory
			continue
		}
		prev := l.files[f.path]
		u := prev
		if u == nil || f.err != nil || u.hash != f.hash {
			if msg, ok := opts.Refused[f.hash]; ok && f.err == nil {
				u = &unit{path: f.path, hash: f.hash, apps: map[string]cue.Value{}, appPos: map[string]token.Pos{},
					errs: []api.SourceError{{File: f.path, Message: msg}}, owners: attribute(f.data, prev)}
			} else {
				opts.step(Step{File: f.path, Key: f.hash})
				u = parseUnit(l.ctx, f, prev)
			}
		}
		units = append(units, u)
		files[f.path] = u
	}
	l.files = files

	res := &Result{Files: len(units)}
	// Gather, per app, the files that declare it (sorted by path, as walk
	// returns them).
	byApp := map[string][]*unit{}
	for _, u := range units {
		for _, name := range u.owners {
			byApp[name] = append(byApp[name], u)
		}
		if len(u.errs) > 0 && len(u.owners) == 0 {
			res.Errors = append(res.Errors, u.errs...)
		}
	}
	names := make([]string, 0, len(byApp))
	for name := range byApp {
		names = append(names, name)
	}
	sort.Strings(names)
	apps := make(map[string]*appCache, len(names))
	for _, name := range names {
		us := byApp[name]
		key := appKey(name, us)
		c := l.apps[name]
		evaluated := c == nil || c.key != key
		if evaluated {
			if msg, ok := opts.Refused[key]; ok {
				c = refusedApp(name, us, msg)
			} else {
				opts.step(Step{File: us[0].path, App: name, Key: key})
				c = l.evalApp(name, us)
			}
			c.key = key
			res.Evaluated = append(res.Evaluated, name)
		}
		apps[name] = c
		ar := c.stamp(name, opts)
		res.Apps = append(res.Apps, ar)
		if evaluated && opts.Evaluated != nil {
			opts.Evaluated(ar)
		}
	}
	l.apps = apps
	for i := range res.Errors {
		res.Errors[i].File = opts.display(res.Errors[i].File)
	}
	sortErrors(res.Errors)
	return res
}

// refusedApp is the result of an app whose evaluation was refused
// (LoadOptions.Refused): the message at the app's first declaration.
func refusedApp(name string, us []*unit, msg string) *appCache {
	c := &appCache{}
	for _, u := range us {
		c.files = append(c.files, u.path)
		if p, ok := u.appPos[name]; ok && c.source.Path == "" {
			c.source = api.Source{Path: u.path, Line: p.Line()}
		}
	}
	if c.source.Path == "" {
		c.source.Path = us[0].path
	}
	c.errs = []api.SourceError{{File: c.source.Path, Line: c.source.Line, Path: "apps." + name, Message: msg}}
	return c
}

// appKey identifies the inputs of an app's evaluation.
func appKey(name string, us []*unit) [32]byte {
	h := sha256.New()
	h.Write([]byte(name))
	for _, u := range us {
		h.Write([]byte{0})
		h.Write([]byte(u.path))
		h.Write(u.hash[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// evalApp unifies the fragments of one app with #App, checks the result
// and converts it. It reports every error it finds.
func (l *Loader) evalApp(name string, us []*unit) *appCache {
	c := &appCache{}
	var (
		errs     []api.SourceError
		first    token.Pos
		firstSet bool
	)
	for _, u := range us {
		c.files = append(c.files, u.path)
		errs = append(errs, u.errs...)
		if p, ok := u.appPos[name]; ok && !firstSet {
			first, firstSet = p, true
			c.source = api.Source{Path: u.path, Line: p.Line()}
		}
	}
	if c.source.Path == "" {
		c.source.Path = us[0].path
	}
	fb := api.SourceError{File: c.source.Path, Line: c.source.Line}
	if firstSet {
		fb.Column = first.Column()
	}
	if !api.IsDNSLabel(name) {
		errs = append(errs, api.SourceError{File: fb.File, Line: fb.Line, Column: fb.Column, Path: "apps." + name,
			Message: fmt.Sprintf("%q is not a valid app name: want a DNS label (lowercase letters, digits and '-', at most 63)", name)})
	}
	v := l.appSchema
	for _, u := range us {
		if frag, ok := u.apps[name]; ok {
			v = v.Unify(frag)
		}
	}
	if err := v.Validate(cue.Concrete(true), cue.Final()); err != nil {
		nameErrs, badNames := checkNames(name, v, fb)
		errs = append(errs, nameErrs...)
		ec := errContext{app: name, fallback: fb, skip: badNames, value: v}
		errs = append(errs, fromCUEApp(err, ec, l.schemaSrc)...)
	}
	if len(errs) > 0 {
		c.errs = dedupe(errs)
		return c
	}
	app, conv, err := convert(name, v, fb)
	if err != nil {
		c.errs = []api.SourceError{{File: fb.File, Line: fb.Line, Column: fb.Column, Path: "apps." + name, Message: err.Error()}}
		return c
	}
	cerrs := append(conv.errs, conv.mapValidation(api.Validate(app))...)
	if len(cerrs) > 0 {
		c.errs = dedupe(cerrs)
		return c
	}
	c.app = app
	return c
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
	prefix := strings.Join(p, ".") + "."
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

// mapValidation reports api.Validate's field errors at the descriptor
// position of the longest API path the converter noted.
func (c *converter) mapValidation(err error) []api.SourceError {
	if err == nil {
		return nil
	}
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		return []api.SourceError{c.at(nil, err.Error())}
	}
	var out []api.SourceError
	for _, fe := range ve.Fields {
		var desc []string
		for p := fe.Path; p != ""; p = parentPath(p) {
			if d, ok := c.desc[p]; ok {
				desc = d
				break
			}
		}
		out = append(out, c.at(desc, fe.Message))
	}
	return out
}

// parentPath drops the last element of "a.b[1].c": "a.b[1]", then "a.b".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// alsoAt finds the other positions of a conflict in a message.
var alsoAt = regexp.MustCompile(`(\(also at |, )[^,()\s]+:\d+:\d+`)

// stamp returns the app's result with provenance for this load.
func (c *appCache) stamp(name string, opts LoadOptions) AppResult {
	r := AppResult{Name: name}
	for _, f := range c.files {
		r.Files = append(r.Files, opts.display(f))
	}
	for _, e := range c.errs {
		e.File = opts.display(e.File)
		if opts.PathPrefix != "" {
			e.Message = alsoAt.ReplaceAllStringFunc(e.Message, func(s string) string {
				return s[:len(s)-len(strings.TrimLeft(s, "(, also at"))] + opts.display(strings.TrimLeft(s, "(, also at"))
			})
		}
		r.Errors = append(r.Errors, e)
	}
	if c.app != nil && len(c.errs) == 0 {
		// A shallow copy: the cached app is never changed, and callers
		// must not change the result either (api.Clone it first).
		app := *c.app
		src := c.source
		src.Repo, src.Commit, src.Path = opts.Repo, opts.Commit, opts.display(src.Path)
		app.Metadata.Source = &src
		r.App = &app
	}
	return r
}
