package gitsync

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/capstanhq/capstan/internal/atomicfile"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/prometheus/client_golang/prometheus"
)

// Sink receives what the Syncer finds. It is owned by the consumer (the
// server wires it to the schema loader and the API).
type Sink interface {
	// Apply is called when a repository's head changed (and on the first
	// sync after Start). An error is reported and the same head is offered
	// again on the next sync.
	Apply(ctx context.Context, s Snapshot) error
	// Report is called after every sync attempt with its outcome.
	Report(ctx context.Context, r Result)
}

// Drifter is implemented by a Sink that can tell when what it applied
// for a repository was changed behind its back (an App deleted through the
// API): the Syncer then offers the unchanged head again, so polling and
// explicit syncs restore it.
type Drifter interface {
	Drifted(ctx context.Context, repo string) (bool, error)
}

// Result is the outcome of one sync attempt of one repository.
type Result struct {
	Repo string
	// At is when the attempt finished.
	At time.Time
	// Head is the commit the remote's tracked ref points at ("" when the
	// fetch failed).
	Head string
	// Applied is true when Apply was called for Head and returned nil.
	Applied bool
	// Recloned is true when the cache clone was found corrupted and cloned
	// again during this attempt.
	Recloned bool
	// Err is nil on success (applied or unchanged), else a *FetchError, a
	// *SignatureError or the error Apply returned.
	Err error
	// Changed is true when this outcome differs from the previous attempt's
	// (a new head, a first failure, a recovery, another error), so a caller
	// can record a Revision or an event once rather than on every poll.
	Changed bool
}

// Options configure a Syncer.
type Options struct {
	// DataDir holds the cache clones (DataDir/repos/NAME) and the last
	// applied heads (DataDir/state/NAME.json). Required.
	DataDir string
	// Repos are the tracked repositories; defaults are filled in and they
	// are validated by New.
	Repos []RepoConfig
	// Sink receives snapshots and results. Required.
	Sink Sink
	// Logger; default discards.
	Logger *slog.Logger
	// Rand jitters poll intervals; default seeded from the clock.
	Rand *rand.Rand
	// Now is the clock for results; default time.Now.
	Now func() time.Time
	// DisableWatch turns off fsnotify on local repositories (default on).
	DisableWatch bool
	// Debounce delays a sync after a file system event so a burst of ref
	// updates makes one sync. Default 20ms.
	Debounce time.Duration
	// MaxWebhookBody bounds webhook payloads. Default 1 MiB.
	MaxWebhookBody int64
	// WebhookReplayWindow is how long webhook delivery IDs are remembered:
	// a delivery with a known ID is acknowledged without a sync. Default
	// 24h; at most MaxWebhookDeliveries IDs are kept (the oldest go first).
	WebhookReplayWindow time.Duration
	// MaxWebhookDeliveries bounds the remembered delivery IDs. Default
	// 10,000.
	MaxWebhookDeliveries int
	// OnHook receives the authenticated, first-seen webhook deliveries
	// that are not pushes or pings (pull-request events: the forge
	// component), after the same signature, size and replay checks. It
	// must not block; true answers 202, false 200 "ignored". Default:
	// none, every such event ignored.
	OnHook func(repo string, forge Forge, event string, body []byte) bool
	// Relay, when set, is asked where the sync a webhook push triggers
	// runs: false has this Syncer sync (it runs: its server leads), true
	// says the trigger was passed on to the Syncer that runs (the
	// leader's), and an error that it could not be (the webhook gets 503
	// and the forge delivers it again). Default: none, this Syncer syncs.
	Relay func(repo string) (bool, error)
	// Registry, when set, receives the capstan_gitsync_* metrics (see
	// docs/gitsync.md).
	Registry prometheus.Registerer
}

// Defaults.
const (
	DefaultDebounce             = 20 * time.Millisecond
	DefaultMaxWebhookBody       = 1 << 20
	DefaultWebhookReplayWindow  = 24 * time.Hour
	DefaultMaxWebhookDeliveries = 10_000
)

// Syncer tracks repositories and feeds their heads to a Sink.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	randMu  sync.Mutex
	workers map[string]*worker
	names   []string
	// deliveries are the webhook delivery IDs seen lately.
	deliveries *deliveries
	// hookDecoy is a random secret that webhooks for unknown repositories
	// are checked against, so they answer like a bad signature.
	hookDecoy string
	metrics   *metrics
}

// New validates the options and prepares a Syncer; nothing runs until
// Start.
func New(opts Options) (*Syncer, error) {
	if opts.DataDir == "" {
		return nil, fmt.Errorf("%w: gitsync: DataDir is required", ErrInvalidConfig)
	}
	if opts.Sink == nil {
		return nil, fmt.Errorf("%w: gitsync: Sink is required", ErrInvalidConfig)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Rand == nil {
		seed := uint64(time.Now().UnixNano())
		opts.Rand = rand.New(rand.NewPCG(seed, seed>>7))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxWebhookBody <= 0 {
		opts.MaxWebhookBody = DefaultMaxWebhookBody
	}
	if opts.WebhookReplayWindow <= 0 {
		opts.WebhookReplayWindow = DefaultWebhookReplayWindow
	}
	if opts.MaxWebhookDeliveries <= 0 {
		opts.MaxWebhookDeliveries = DefaultMaxWebhookDeliveries
	}
	repos := append([]RepoConfig(nil), opts.Repos...)
	if err := ValidateRepos(repos); err != nil {
		return nil, err
	}
	opts.Repos = repos
	decoy := make([]byte, 32)
	if _, err := crand.Read(decoy); err != nil {
		return nil, fmt.Errorf("gitsync: random webhook decoy: %w", err)
	}
	m, err := newMetrics(opts.Registry, repos)
	if err != nil {
		return nil, err
	}
	s := &Syncer{opts: opts, log: opts.Logger, workers: map[string]*worker{},
		deliveries: newDeliveries(opts.WebhookReplayWindow, opts.MaxWebhookDeliveries), hookDecoy: hex.EncodeToString(decoy), metrics: m}
	for _, rc := range repos {
		w, err := s.newWorker(rc)
		if err != nil {
			return nil, err
		}
		s.workers[rc.Name] = w
		s.names = append(s.names, rc.Name)
	}
	return s, nil
}

// Start runs polling, watching and syncing until ctx ends. The first sync
// of every repository happens at once. It fails at once if another Syncer
// holds the data directory.
func (s *Syncer) Start(ctx context.Context) error {
	unlock, err := lockDataDir(s.opts.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	var wg sync.WaitGroup
	for _, name := range s.names {
		w := s.workers[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
		kind, _ := classifyURL(w.cfg.URL)
		if !w.cfg.Polls() && w.cfg.WebhookSecret == "" && (kind != transportLocal || s.opts.DisableWatch) {
			s.log.Warn("polling is off and the repository has no webhook secret: it syncs at start and on 'capstan sync' only; set webhookSecret, or a poll interval", "repo", name)
		}
		if kind == transportLocal && !s.opts.DisableWatch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.watchLoop(ctx)
			}()
		}
	}
	wg.Wait()
	return nil
}

// Trigger asks for an immediate sync of one repository. Triggers arriving
// while a sync runs coalesce into one more sync.
func (s *Syncer) Trigger(repo string) error {
	w, ok := s.workers[repo]
	if !ok {
		return fmt.Errorf("%w: %q (configured: %v)", ErrUnknownRepo, repo, s.names)
	}
	w.kick()
	return nil
}

// TriggerAll asks for an immediate sync of every repository.
func (s *Syncer) TriggerAll() {
	for _, w := range s.workers {
		w.kick()
	}
}

// Sync runs one sync of a repository now, in the caller's goroutine, and
// returns its result; it waits for a sync already running. Start need not
// be running.
func (s *Syncer) Sync(ctx context.Context, repo string) (Result, error) {
	w, ok := s.workers[repo]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q (configured: %v)", ErrUnknownRepo, repo, s.names)
	}
	r := w.sync(ctx)
	return r, r.Err
}

// ConfirmPrune lets the head held for mass deletion (ErrPruneHeld) of a
// repository apply on its next sync, which it triggers, and returns that
// head. Only the held commit is confirmed: a newer head is judged anew.
func (s *Syncer) ConfirmPrune(repo string) (string, error) {
	w, ok := s.workers[repo]
	if !ok {
		return "", fmt.Errorf("%w: %q (configured: %v)", ErrUnknownRepo, repo, s.names)
	}
	// A sync in progress may be holding its head right now (its apps
	// already show Held): let it finish, so that what a user saw can be
	// confirmed.
	w.mu.Lock()
	w.mu.Unlock()
	w.statusMu.Lock()
	held := w.held
	if !held.IsZero() {
		w.confirm = held
	}
	w.statusMu.Unlock()
	if held.IsZero() {
		return "", fmt.Errorf("repo %s: %w (see 'capstan history')", repo, ErrNothingHeld)
	}
	w.kick()
	return held.String(), nil
}

// Status returns the last result of a repository (zero before any sync).
func (s *Syncer) Status(repo string) (Result, error) {
	w, ok := s.workers[repo]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownRepo, repo)
	}
	w.statusMu.Lock()
	defer w.statusMu.Unlock()
	return w.last, nil
}

// Repos lists the configured repositories with defaults filled in.
func (s *Syncer) Repos() []RepoConfig { return append([]RepoConfig(nil), s.opts.Repos...) }

func (s *Syncer) jitter(d time.Duration) time.Duration {
	s.randMu.Lock()
	f := s.opts.Rand.Float64()
	s.randMu.Unlock()
	return Jitter(d, f)
}

// Jitter spreads d by ±10%: f in [0,1) maps to [0.9d, 1.1d).
func Jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*f))
}

// worker owns one repository.
type worker struct {
	s       *Syncer
	cfg     RepoConfig
	trust   *trust
	trigger chan struct{}
	state   string

	mu       sync.Mutex // held for a whole sync: one fetch at a time
	mirror   *mirror
	applied  plumbing.Hash // last applied head (persisted)
	started  bool          // something was applied since New
	refused  plumbing.Hash // head refused by signature policy
	checked  plumbing.Hash // tree whose objects were read back in this run
	statusMu sync.Mutex
	last     Result
	held     plumbing.Hash // head the Sink held (ErrPruneHeld); statusMu
	confirm  plumbing.Hash // head whose prunes an admin confirmed; statusMu
}

func (s *Syncer) newWorker(rc RepoConfig) (*worker, error) {
	w := &worker{
		s:       s,
		cfg:     rc,
		trigger: make(chan struct{}, 1),
		state:   filepath.Join(s.opts.DataDir, "state", rc.Name+".json"),
	}
	if rc.Verify.Enabled {
		t, err := parseTrust(rc.Verify)
		if err != nil {
			return nil, fmt.Errorf("%w: repo %q: verify: %w", ErrInvalidConfig, rc.Name, err)
		}
		w.trust = t
	}
	m, err := newMirror(rc, filepath.Join(s.opts.DataDir, "repos", rc.Name), s.log)
	if err != nil {
		return nil, err
	}
	w.mirror = m
	w.applied = w.loadState()
	return w, nil
}

func (w *worker) kick() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.trigger:
		case <-t.C:
		}
		r := w.sync(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case w.cfg.Polls():
			t.Reset(w.s.jitter(w.cfg.Interval))
		case r.Err != nil:
			// No polling, and the webhook's push was not applied (the
			// remote did not answer, say): try again, as a poll would.
			t.Reset(w.s.jitter(DefaultInterval))
		}
	}
}

// sync is one attempt: fetch, verify, apply, report.
func (w *worker) sync(ctx context.Context) Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	r := w.attempt(ctx)
	r.Repo = w.cfg.Name
	r.At = w.s.opts.Now()
	if ctx.Err() == nil {
		w.s.metrics.observe(w.cfg.Name, r, time.Since(start))
	}
	w.statusMu.Lock()
	prev := w.last
	r.Changed = r.Applied || r.Recloned || prev.At.IsZero() || prev.Head != r.Head || errKey(prev.Err) != errKey(r.Err)
	w.last = r
	w.statusMu.Unlock()
	if ctx.Err() == nil {
		w.s.opts.Sink.Report(ctx, r)
	}
	if r.Err != nil && r.Changed {
		w.s.log.Warn("git sync failed", "repo", w.cfg.Name, "err", r.Err)
	}
	return r
}

// errKey identifies an error for Result.Changed by its kind and commit,
// not its text, which may carry changing details (ports, timings).
func errKey(err error) string {
	if err == nil {
		return ""
	}
	var se *SignatureError
	if errors.As(err, &se) {
		kind := "untrusted"
		if errors.Is(se.Err, ErrUnsigned) {
			kind = "unsigned"
		}
		return "signature " + se.Head.Commit + " " + kind
	}
	for _, k := range []error{ErrUnreachable, ErrRefNotFound, ErrPathNotFound, ErrCorruptClone} {
		if errors.Is(err, k) {
			return "fetch " + k.Error()
		}
	}
	return err.Error()
}

func (w *worker) attempt(ctx context.Context) Result {
	var r Result
	c, tree, recloned, err := w.mirror.update(ctx, w.checked)
	r.Recloned = recloned
	if err != nil {
		if ctx.Err() != nil {
			r.Err = ctx.Err()
			return r
		}
		r.Err = &FetchError{Repo: w.cfg.Name, URL: w.cfg.URL, Ref: w.cfg.Ref(), Err: err}
		return r
	}
	head := c.Hash
	r.Head = head.String()
	w.checked = tree
	if head == w.applied && w.started && !w.drifted(ctx) {
		return r
	}
	sig, err := verifyCommit(w.cfg.Name, c, w.trust)
	if err != nil {
		if head != w.refused {
			w.s.log.Warn("git head refused by signature policy", "repo", w.cfg.Name, "commit", head.String(), "err", err)
		}
		w.refused = head
		r.Err = err
		return r
	}
	snap := Snapshot{
		Repo:       w.cfg.Name,
		CommitInfo: commitInfo(c),
		Path:       w.cfg.Path,
		Branch:     w.cfg.Branch,
		FS:         w.mirror.snapshotFS(tree, c),
		Signature:  sig,
		Prune:      w.cfg.Prune,
	}
	w.statusMu.Lock()
	snap.PruneConfirmed = head == w.confirm
	w.statusMu.Unlock()
	if !w.applied.IsZero() {
		snap.Previous = w.applied.String()
		if head != w.applied {
			desc, known, between := w.mirror.descends(ctx, w.applied, head)
			snap.HistoryRewrite = known && !desc
			for _, h := range between[:min(len(between), MaxIncludes)] {
				snap.Includes = append(snap.Includes, h.String())
			}
			if !known {
				w.s.log.Info("cannot tell whether the new head descends from the previous one", "repo", w.cfg.Name, "previous", w.applied.String(), "head", head.String())
			}
		}
		if w.started {
			if prevTree, ok := w.mirror.treeAt(w.applied); ok {
				paths, err := changedPaths(ctx, w.mirror.repo.Storer, prevTree, tree)
				if err == nil {
					snap.Paths = paths
				}
			}
		}
	}
	if err := w.s.opts.Sink.Apply(ctx, snap); err != nil {
		if errors.Is(err, ErrPruneHeld) {
			w.statusMu.Lock()
			w.held = head
			w.statusMu.Unlock()
		}
		r.Err = fmt.Errorf("repo %s: apply %s: %w", w.cfg.Name, api.ShortCommit(r.Head), err)
		return r
	}
	w.statusMu.Lock()
	w.held, w.confirm = plumbing.ZeroHash, plumbing.ZeroHash
	w.statusMu.Unlock()
	r.Applied = true
	w.applied = head
	w.started = true
	w.refused = plumbing.ZeroHash
	if err := w.saveState(); err != nil {
		w.s.log.Warn("cannot save git sync state", "repo", w.cfg.Name, "file", w.state, "err", err)
	}
	if err := w.mirror.markApplied(head); err != nil {
		w.s.log.Warn("cannot mark the applied head in the cache clone", "repo", w.cfg.Name, "err", err)
	}
	if done, err := w.mirror.compact(); err != nil {
		// Compaction reads every object the refs reach, so it also finds
		// damage the incremental checks skip: start afresh next time.
		w.s.log.Warn("cannot compact the cache clone; it will be cloned again", "repo", w.cfg.Name, "err", err)
		if err := w.mirror.reset(); err != nil {
			w.s.log.Warn("cannot remove the cache clone", "repo", w.cfg.Name, "err", err)
		}
		w.checked = plumbing.ZeroHash
	} else if done {
		w.s.log.Debug("compacted the cache clone", "repo", w.cfg.Name)
	}
	return r
}

// drifted asks the Sink, when it can tell, whether the applied head must
// be applied again.
func (w *worker) drifted(ctx context.Context) bool {
	d, ok := w.s.opts.Sink.(Drifter)
	if !ok {
		return false
	}
	drift, err := d.Drifted(ctx, w.cfg.Name)
	if err != nil {
		w.s.log.Debug("cannot check for drift", "repo", w.cfg.Name, "err", err)
		return false
	}
	if drift {
		w.s.log.Info("applied objects changed behind git's back; applying the head again", "repo", w.cfg.Name, "commit", api.ShortCommit(w.applied.String()))
	}
	return drift
}

type stateFile struct {
	Applied string `json:"applied"`
}

func (w *worker) loadState() plumbing.Hash {
	b, err := os.ReadFile(w.state)
	if err != nil {
		return plumbing.ZeroHash
	}
	var st stateFile
	if json.Unmarshal(b, &st) != nil || !fullSHA.MatchString(st.Applied) {
		w.s.log.Warn("ignoring unreadable git sync state", "repo", w.cfg.Name, "file", w.state)
		return plumbing.ZeroHash
	}
	return plumbing.NewHash(st.Applied)
}

func (w *worker) saveState() error {
	b, err := json.Marshal(stateFile{Applied: w.applied.String()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(w.state), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(w.state, b, 0o644)
}

// watchLoop runs fsnotify on a local repository. When the watch cannot
// be set up (the repository does not exist yet, say) it retries every poll
// interval, polling covering the gap. When the repository's directory is
// replaced under the watch, it is watched again at once (retrying quickly
// while the new directory appears) and a sync catches up on what happened
// meanwhile.
func (w *worker) watchLoop(ctx context.Context) {
	warned := false
	lost := false
	backoff := w.s.opts.Debounce
	for {
		root, gd, ok := w.localGitDir()
		err := errNotGitDir
		if ok {
			err = watch(ctx, root, gd, w.cfg, w.s.opts.Debounce, w.kick, func() {
				if lost {
					w.s.log.Info("fsnotify watch set up again on the replaced repository", "repo", w.cfg.Name, "dir", root)
					w.kick()
				}
				lost, warned, backoff = false, false, w.s.opts.Debounce
			})
		}
		if ctx.Err() != nil {
			return
		}
		// Without polling the watch is tried again as often as a poll
		// would have run by default.
		retry := w.cfg.Interval
		if !w.cfg.Polls() {
			retry = DefaultInterval
		}
		wait := w.s.jitter(retry)
		switch {
		case errors.Is(err, errWatchLost):
			w.s.log.Info("repository directory replaced; watching it again", "repo", w.cfg.Name, "err", err)
			lost, wait = true, w.s.opts.Debounce
		case lost && backoff < retry:
			// The new directory is not there yet: look again soon.
			wait, backoff = backoff, backoff*2
		case !warned:
			w.s.log.Warn("fsnotify unavailable for now; polling, and retrying the watch every interval", "repo", w.cfg.Name, "err", err)
			warned = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// localGitDir returns the directory and git directory of a local
// repository URL.
func (w *worker) localGitDir() (root, gitdir string, ok bool) {
	kind, p := classifyURL(w.cfg.URL)
	if kind != transportLocal {
		return "", "", false
	}
	gd, ok := gitDir(p)
	return p, gd, ok
}

// lockDataDir takes an exclusive lock on DataDir/gitsync.lock, so two
// servers never fetch into the same cache clones.
func lockDataDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gitsync: data dir %s: %w", dir, err)
	}
	// The cache clones hold the repositories' content: a directory made
	// beforehand with a looser mode is tightened, or refused.
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("gitsync: data dir %s has mode %04o, readable by other users, and cannot be made private: %w (run 'chmod 700 %s' as its owner)", dir, st.Mode().Perm(), err, dir)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "gitsync.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gitsync: data dir %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("gitsync: data dir %s is in use by another process (%w): give each server its own data directory", dir, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
