package schema

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"slices"
	"sort"
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
	// dependsOn is where the app's dependsOn field is, for an error of a
	// cycle between apps (batch.go).
	dependsOn api.SourceError
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
					errs: []api.SourceError{{File: f.path, Message: msg}}}
				u.guess(f.data, prev)
			} else {
				opts.step(Step{File: f.path, Key: f.hash})
				u = parseUnit(l.ctx, f, prev)
			}
		}
		units = append(units, u)
		files[f.path] = u
	}
	l.files = files

	res := &Result{}
	// Gather, per app, the files that declare it (sorted by path, as walk
	// returns them).
	byApp := map[string][]*unit{}
	for _, u := range units {
		for _, name := range u.owners {
			byApp[name] = append(byApp[name], u)
		}
	}
	names := make([]string, 0, len(byApp))
	for name := range byApp {
		names = append(names, name)
	}
	sort.Strings(names)
	// A file's fragments are released when the last of its apps is done.
	pending := make(map[*unit]int, len(units))
	for _, u := range units {
		pending[u] = len(u.owners)
	}
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
		// An app with dependencies is reported after the stages that
		// need every app (batch.go).
		if evaluated && opts.Evaluated != nil && !c.hasDependencies() {
			opts.Evaluated(ar)
		}
		for _, u := range us {
			if pending[u]--; pending[u] == 0 {
				u.release()
			}
		}
	}
	l.apps = apps
	// A file a valid app reads as a config file (files: from:) or a
	// secret (secrets: from:) that declares no app is data, not a
	// descriptor: its errors as one (a JSON file's top-level fields) are
	// not the repository's.
	data := fromFiles(apps)
	for _, u := range units {
		if len(u.owners) == 0 && data[u.path] {
			continue
		}
		res.Files++
		if len(u.errs) > 0 && (len(u.owners) == 0 || u.guessed) {
			res.Errors = append(res.Errors, u.errs...)
		}
	}
	refuseAppCycles(res, apps, opts)
	stampDependencies(res)
	reportDependents(res, apps, opts)
	for i := range res.Errors {
		res.Errors[i].File = opts.display(res.Errors[i].File)
	}
	sortErrors(res.Errors)
	return res
}

// fromFiles is the set of paths the valid apps read as config files
// and secrets.
func fromFiles(apps map[string]*appCache) map[string]bool {
	out := map[string]bool{}
	for _, c := range apps {
		if c.app == nil || len(c.errs) > 0 {
			continue
		}
		for _, s := range c.app.Spec.Secrets {
			out[s.Spec.From] = true
		}
		for _, w := range c.app.Spec.Workloads {
			for _, f := range w.Spec.Template.Files {
				if f.From != "" {
					out[f.From] = true
				}
			}
		}
	}
	return out
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
// and converts it. It reports every error it finds. The stages (check,
// convert, api.Validate) report problems at descriptor paths; placing
// them in the user's files is the last stage (placer, position.go).
func (l *Loader) evalApp(name string, us []*unit) *appCache {
	c := &appCache{}
	var (
		errs     []api.SourceError // of the files, positioned by the parser
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
	v := l.appSchema
	var frags []cue.Value
	for _, u := range us {
		if frag, ok := u.fragment(l.ctx, name); ok {
			v = v.Unify(frag)
			frags = append(frags, frag)
		}
	}
	pl := placer{app: name, v: v, fb: fb}
	var probs []problem
	if !api.IsDNSLabel(name) {
		probs = append(probs, problem{anchor: atApp,
			msg: fmt.Sprintf("%q is not a valid app name: want a DNS label (lowercase letters, digits and '-', at most 63)", name)})
	}
	if err := v.Validate(cue.Concrete(true), cue.Final()); err != nil {
		nameProbs, badNames := checkNames(v)
		unknown, unknownPaths := l.unknownFields(frags, badNames)
		refused := slices.Concat(nameProbs, unknown, dropCovered(cueProblems(err, v, badNames, l.schemaSrc), unknownPaths))
		probs = append(probs, refused...)
		if len(errs) == 0 { // with a file that does not parse, the app is not all there
			probs = append(probs, afterSchema(name, v, frags, refused)...)
		}
	}
	if len(errs) > 0 || len(probs) > 0 {
		c.errs = dedupe(append(errs, pl.place(probs)...))
		return c
	}
	app, conv, err := l.convert(name, v)
	if err != nil {
		c.errs = pl.place([]problem{{anchor: atApp, msg: err.Error()}})
		return c
	}
	probs = append(conv.probs, conv.validation(api.Validate(app))...)
	if len(probs) > 0 {
		c.errs = pl.place(probs)
		return c
	}
	conv.placeRefs(app, pl)
	c.app = app
	if len(app.Spec.DependsOn) > 0 {
		c.dependsOn = pl.one(problem{path: []string{"dependsOn"}})
	}
	return c
}

// convert encodes the app's value and converts it.
func (l *Loader) convert(name string, v cue.Value) (*api.App, *converter, error) {
	data, err := v.MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("encode app %s: %w", name, err)
	}
	return convert(name, data)
}

// stamp returns the app's result with provenance for this load.
func (c *appCache) stamp(name string, opts LoadOptions) AppResult {
	r := AppResult{Name: name}
	for _, f := range c.files {
		r.Files = append(r.Files, opts.display(f))
	}
	for _, e := range c.errs {
		r.Errors = append(r.Errors, opts.displayError(e))
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
