package sandbox

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/schema"
)

// Defaults of Options.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMemory      = 512 << 20
	DefaultMaxRefusals = 8
	// maxRecorded bounds the refused inputs kept in StateFile.
	maxRecorded = 1000
)

// Options configure an Evaluator. The zero value is usable.
type Options struct {
	// Exe is the binary started as the child; it must call Main first.
	// Default: this process's own binary (/proc/self/exe).
	Exe string
	// Timeout bounds the CPU time of one step: parsing one file or
	// evaluating one app. Default 2 s.
	Timeout time.Duration
	// WallTimeout bounds the wall-clock time of one step, which a loaded
	// machine stretches well beyond its CPU time. Default 15 x Timeout.
	WallTimeout time.Duration
	// Memory bounds the child's resident memory, in bytes: the parent
	// reads it from /proc and kills the child above it; the child's Go
	// heap limit is set to it, and its address space (RLIMIT_AS) may grow
	// by twice as much beyond its size at start-up (the Go runtime
	// reserves more address space than it uses). Default 512 MiB.
	Memory int64
	// MaxRefusals is how many inputs one Load may refuse before it gives
	// up on the whole tree (each costs up to Timeout). Default 8.
	MaxRefusals int
	// StateFile records refused inputs across restarts (JSON); empty keeps
	// them in memory only.
	StateFile string
	// Logger; default discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Timeout < 0 || o.WallTimeout < 0 || o.Memory < 0 || o.MaxRefusals < 0 {
		return o, fmt.Errorf("%w: sandbox limits must not be negative (0 means the default)", schema.ErrOptions)
	}
	if o.Exe == "" {
		o.Exe = "/proc/self/exe"
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.WallTimeout == 0 {
		o.WallTimeout = 15 * o.Timeout
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.MaxRefusals == 0 {
		o.MaxRefusals = DefaultMaxRefusals
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Evaluator loads descriptor trees in a bounded child process.
type Evaluator struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	ch      *child
	starts  int
	apps    map[string]schema.AppResult // the last result of each app, by name
	refused *refusals
	// read is the tree the last Load read, and its commit.
	read struct {
		files  []schema.File
		commit string
	}
}

// New checks the options and reads StateFile; the child starts on the
// first Load.
func New(opts Options) (*Evaluator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r, err := loadRefusals(opts.StateFile)
	if err != nil {
		return nil, err
	}
	return &Evaluator{opts: opts, log: opts.Logger, apps: map[string]schema.AppResult{}, refused: r}, nil
}

// Limits describes the bounds for messages: "2s / 512 MiB".
func (e *Evaluator) Limits() string {
	return fmt.Sprintf("%s / %d MiB", e.opts.Timeout, e.opts.Memory>>20)
}

// Starts counts the evaluation processes started so far: one, plus one
// after each refused input or failure.
func (e *Evaluator) Starts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.starts
}

// Close stops the child.
func (e *Evaluator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stop()
	return nil
}

func (e *Evaluator) stop() {
	if e.ch != nil {
		e.ch.kill()
		e.ch = nil
	}
}

// errResync: the child answered from a cache the parent does not have
// (it cannot happen unless the two went out of step); start afresh.
var errResync = errors.New("sandbox: the evaluator's cache is out of step")

// Load reads fsys like schema.Load and evaluates it in the child; it
// calls lo.Evaluated, when set, with each app's result as the child
// evaluates it (once per app, from Load's goroutine). Files
// and apps that exceed the bounds are refused (see the package doc) and
// the rest is loaded. It fails as a whole when the tree cannot be read,
// when ctx ends (the child is killed at once), when more than MaxRefusals
// inputs are refused, or when the child fails for another reason; the
// apps reported to lo.Evaluated before are valid results all the same.
func (e *Evaluator) Load(ctx context.Context, fsys fs.FS, lo schema.LoadOptions) (*schema.Result, error) {
	return e.LoadChanges(ctx, fsys, "", nil, lo)
}

// LoadChanges is Load for a tree of which only the paths changed differ
// from the tree of commit since: when this Evaluator's last Load was of
// since (lo.Commit), only those paths are read from fsys (see
// schema.UpdateTree); otherwise, or when changed is nil, all of it.
func (e *Evaluator) LoadChanges(ctx context.Context, fsys fs.FS, since string, changed []string, lo schema.LoadOptions) (*schema.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var (
		files []schema.File
		err   error
	)
	if changed != nil && since != "" && since == e.read.commit && e.read.files != nil {
		files, err = schema.UpdateTree(fsys, e.read.files, changed, lo)
	} else {
		files, err = schema.ReadTree(fsys, lo)
	}
	e.read.files, e.read.commit = nil, ""
	if err != nil {
		return nil, err
	}
	e.read.files, e.read.commit = files, lo.Commit
	refusedNow, resynced := 0, false
	reported := map[string]bool{} // apps handed to lo.Evaluated
	for {
		res, step, err := e.try(ctx, files, lo, reported)
		if err == nil {
			return res, nil
		}
		e.stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("descriptor evaluation stopped: %w", context.Cause(ctx))
		}
		if errors.Is(err, errResync) && !resynced {
			resynced = true
			continue
		}
		var be *boundError
		if !errors.As(err, &be) {
			return nil, err
		}
		if step == nil {
			// The child exceeded a bound before its first step: the
			// bounds are too small for the process itself, and no
			// descriptor is to blame.
			return nil, fmt.Errorf("%w before it read any descriptor: the bounds (%s) are too small for the evaluation process itself; raise --eval-memory / --eval-timeout (the defaults are %s / %d MiB)", err, e.Limits(), DefaultTimeout, DefaultMemory>>20)
		}
		key, kerr := parseKey(step.Key)
		if kerr != nil {
			return nil, kerr
		}
		msg := e.message(be, step, lo.PathPrefix)
		e.log.Warn("descriptor evaluation refused", "file", display(lo.PathPrefix, step.File), "app", step.App, "commit", lo.Commit, "reason", msg)
		if err := e.refused.add(key, msg); err != nil {
			e.log.Warn("cannot record the refused input; a restart will evaluate it again", "file", e.opts.StateFile, "err", err)
		}
		if refusedNow++; refusedNow >= e.opts.MaxRefusals {
			return nil, fmt.Errorf("%w: %d inputs exceeded the bounds of %s (last: %s); the commit is refused for the apps not evaluated before", ErrTooManyRefusals, refusedNow, e.Limits(), msg)
		}
	}
}

// ErrTooManyRefusals: a tree had more than Options.MaxRefusals inputs
// exceeding the bounds.
var ErrTooManyRefusals = errors.New("too many descriptors exceed the evaluation bounds")

// try runs one request; on failure it returns the step that was running.
func (e *Evaluator) try(ctx context.Context, files []schema.File, lo schema.LoadOptions, reported map[string]bool) (*schema.Result, *wireStep, error) {
	if e.ch == nil {
		ch, err := startChild(e.opts)
		if err != nil {
			return nil, nil, err
		}
		e.ch = ch
		e.starts++
	}
	req := request{Repo: lo.Repo, Commit: lo.Commit, Prefix: lo.PathPrefix, Refused: e.refused.wire(), Full: e.ch.tree == nil}
	// Send what changed since the tree the child holds: a commit that
	// changes one file of 10,000 sends one.
	held := e.ch.tree
	tree := make(map[string]string, len(files))
	var contents map[string]bool // hashes of the contents the child holds
	for _, f := range files {
		if f.Err == nil && f.Data == nil {
			continue // a link to a directory
		}
		wf := wireFile{Path: f.Path, Hash: hex.EncodeToString(f.Hash[:]), Err: f.Err}
		id := wf.Hash
		if f.Err != nil {
			id = "refused:" + id
		}
		tree[f.Path] = id
		if held[f.Path] == id {
			continue
		}
		if f.Err == nil {
			if contents == nil {
				contents = make(map[string]bool, len(held))
				for _, h := range held {
					contents[h] = true
				}
			}
			if contents[wf.Hash] {
				wf.Sent = true
			} else {
				wf.Data = f.Data
			}
		}
		req.Files = append(req.Files, wf)
	}
	for p := range held {
		if _, ok := tree[p]; !ok {
			req.Removed = append(req.Removed, p)
		}
	}
	streamed := map[string]schema.AppResult{}
	wr, step, err := e.ch.do(ctx, req, e.opts.Timeout, e.opts.WallTimeout, e.opts.Memory, func(wa wireApp) {
		ar := schema.AppResult{Name: wa.Name, Files: wa.Files, App: wa.App, Errors: wa.Errors}
		streamed[wa.Name] = ar
		// A result survives a restart of the child (the same inputs give
		// the same result): report each app once per Load.
		if lo.Evaluated != nil && !reported[wa.Name] {
			reported[wa.Name] = true
			lo.Evaluated(ar)
		}
	})
	if err != nil {
		return nil, step, err
	}
	e.ch.tree = tree
	res, err := e.merge(wr, lo, streamed)
	return res, nil, err
}

// merge completes the child's answer with the parent's copies of the
// apps the child did not evaluate again.
func (e *Evaluator) merge(wr *wireResult, lo schema.LoadOptions, streamed map[string]schema.AppResult) (*schema.Result, error) {
	res := &schema.Result{Errors: wr.Errors, Files: wr.Files, Apps: make([]schema.AppResult, 0, len(wr.Names))}
	apps := make(map[string]schema.AppResult, len(wr.Names))
	for _, name := range wr.Names {
		ar, ok := streamed[name]
		if ok {
			res.Evaluated = append(res.Evaluated, name)
		} else {
			prev, ok := e.apps[name]
			if !ok {
				return nil, fmt.Errorf("%w: app %s", errResync, name)
			}
			ar = restamp(prev, lo)
		}
		apps[name] = ar
		res.Apps = append(res.Apps, ar)
	}
	e.apps = apps
	return res, nil
}

// restamp gives a reused result this load's provenance.
func restamp(ar schema.AppResult, lo schema.LoadOptions) schema.AppResult {
	if ar.App == nil || ar.App.Metadata.Source == nil {
		return ar
	}
	app := *ar.App
	src := *ar.App.Metadata.Source
	src.Repo, src.Commit = lo.Repo, lo.Commit
	app.Metadata.Source = &src
	ar.App = &app
	return ar
}

// message is what users read about a refused input.
func (e *Evaluator) message(be *boundError, step *wireStep, prefix string) string {
	where := display(prefix, step.File)
	if step.App != "" {
		where = fmt.Sprintf("app %s (%s)", step.App, where)
	}
	if be.kind == boundCrash {
		return fmt.Sprintf("evaluation crashed in %s: %s; fix the descriptor (the commit is refused for its apps)", where, be.detail)
	}
	if be.kind == boundTime {
		return fmt.Sprintf("evaluation exceeded %s of wall-clock time in %s; simplify the descriptor or raise the server's --eval-timeout", e.opts.WallTimeout, where)
	}
	return fmt.Sprintf("evaluation exceeded %s in %s (%s); simplify the descriptor or raise the server's --eval-timeout / --eval-memory", e.Limits(), where, be.kind)
}

func display(prefix, p string) string {
	prefix = strings.Trim(path.Clean("/"+prefix), "/")
	if prefix == "" {
		return p
	}
	return prefix + "/" + p
}
