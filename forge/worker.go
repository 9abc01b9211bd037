package forge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/plan"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/capstanhq/capstan/secrets"
)

// maxTracked bounds the commits whose deploy status is followed at once;
// the oldest are dropped first.
const maxTracked = 100

// prState is what the worker knows of one open pull request. Owned by the
// worker's goroutine.
type prState struct {
	pr PullRequest
	// input is the evaluated base and head (nil when no plan could be
	// made; problem says why), kept so that a cluster change costs a
	// plan.Compute, not an evaluation.
	input   *plan.Input
	problem string
	sigErr  error
	// commentID is the plan comment, 0 until found or posted; body and
	// status are what was last posted, shown what body was made of.
	commentID int64
	body      string
	status    Status
	shown     CommentInput
	// previews are the preview Apps made for the head; refused, those
	// the repository's policy does not let run, with the reason.
	previews []string
	refused  []PreviewLink
	// expired are the previews deleted at their ttl, read from the
	// comment when the worker first sees the pull request; deployed,
	// what the previews ran when last written or seen.
	expired, deployed map[string]previewMark
	// writeRefused are the previews of the head the API refused to
	// write, with the reason: not written again until the next push.
	writeRefused map[string]string
	// renew: the pull request was labelled again; its previews' ttl
	// starts again.
	renew bool
	// retry looks at the pull request again after a round failed to
	// write or delete its previews.
	retry backoff
}

// tracked is a commit whose deploy status is followed.
type tracked struct {
	commit string
	posted Status
	// failed: the last post of its status failed (it is tried again,
	// unless a newer commit supersedes it).
	failed bool
	// rec is the commit's deploy record as written at key; zero key
	// until read from the Revisions.
	rec deployRecord
	key api.Key
}

// worker serves one repository.
type worker struct {
	c    *Component
	cfg  gitsync.RepoConfig
	fc   Client
	dir  string
	load plan.Loader
	ev   *sandbox.Evaluator

	mu    sync.Mutex
	dirty map[int]bool
	// previewAgain are the pull requests whose preview label a webhook
	// says was added since the last round (Pull.PreviewAgain).
	previewAgain map[int]bool
	// previewed are the preview Apps the worker made, for markPreview.
	previewed map[string]bool
	all       bool
	cluster   bool
	deploys   bool
	commits   []tracked
	timer     *time.Timer
	// retry posts the deploy statuses again after a failed deploy round.
	retry backoff
	wake  chan struct{}

	// Owned by run.
	prs map[int]*prState
	// uncommented are the previews deleted at start-up of pull requests
	// closed while the server was down, by number, whose comment does
	// not say so yet (commentClosed).
	uncommented map[int][]string
	// again is previewAgain as the round took it.
	again   map[int]bool
	failing bool
	// newest is the latest synced commit whose deploy status was
	// posted or queued, and when it was synced: an older commit's
	// status that fails to post is not tried again.
	newest struct {
		commit string
		at     time.Time
	}
}

func newWorker(c *Component, rc gitsync.RepoConfig, fc Client) *worker {
	return &worker{c: c, cfg: rc, fc: fc, dir: dataName(c.opts.DataDir, rc.Name), load: c.opts.Load,
		dirty: map[int]bool{}, previewAgain: map[int]bool{}, previewed: map[string]bool{}, wake: make(chan struct{}, 1), prs: map[int]*prState{}, uncommented: map[int][]string{}}
}

func (w *worker) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// mark asks for pull request n to be looked at again.
func (w *worker) mark(n int) {
	w.mu.Lock()
	w.dirty[n] = true
	w.mu.Unlock()
	w.kick()
}

// markPreview marks pull request n when app is one of its previews.
func (w *worker) markPreview(app string, n int) {
	w.mu.Lock()
	ok := w.previewed[app]
	w.mu.Unlock()
	if ok {
		w.mark(n)
	}
}

func (w *worker) markAll() {
	w.mu.Lock()
	w.all = true
	w.mu.Unlock()
	w.kick()
}

// clusterChanged re-plans every open pull request once the cluster has
// been quiet for ClusterDebounce.
func (w *worker) clusterChanged() {
	if !w.cfg.Forge.Enabled(gitsync.ForgeEventPlans) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Reset(w.c.opts.ClusterDebounce)
		return
	}
	w.timer = time.AfterFunc(w.c.opts.ClusterDebounce, func() {
		w.mu.Lock()
		w.cluster = true
		w.mu.Unlock()
		w.kick()
	})
}

// track follows the deploy status of a commit sync looked at; posted is
// what its deploy record says was posted (a server that started since).
func (w *worker) track(commit string, posted State) {
	if !w.cfg.Forge.Enabled(gitsync.ForgeEventDeploys) || commit == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.commits {
		if t.commit == commit {
			w.deploys = true
			w.kick()
			return
		}
	}
	w.commits = append(w.commits, tracked{commit: commit, posted: Status{State: posted}})
	if len(w.commits) > maxTracked {
		w.commits = w.commits[len(w.commits)-maxTracked:]
	}
	w.deploys = true
	w.kick()
}

func (w *worker) deploysChanged() {
	w.mu.Lock()
	n := len(w.commits)
	w.deploys = w.deploys || n > 0
	w.mu.Unlock()
	if n > 0 {
		w.kick()
	}
}

// retryDeploys schedules the deploy round again when err says it failed
// (the forge answered 5xx, or not at all), after a wait that doubles with
// each failure: a status is otherwise posted again only on the next
// change of the cluster. It returns err saying when the retry comes.
func (w *worker) retryDeploys(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.retry.reset()
		return nil
	}
	wait := w.retry.fail(w.c.opts.Retry, w.c.opts.RetryMax, func() {
		w.mu.Lock()
		w.deploys = w.deploys || len(w.commits) > 0
		w.mu.Unlock()
		w.kick()
	})
	return fmt.Errorf("deploy status: %w (posted again in %s, or on the next change)", err, wait)
}

func (w *worker) close() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.retry.reset()
	w.mu.Unlock()
	for _, st := range w.prs { // run has returned: w.prs is ours
		st.retry.reset()
	}
	if w.ev != nil {
		w.ev.Close()
	}
}

func (w *worker) run(ctx context.Context) {
	if w.load == nil {
		ev, err := sandbox.New(w.c.opts.Eval)
		if err != nil {
			w.c.log.Error("forge: no evaluator; plans are off", "repo", w.cfg.Name, "err", err)
			return
		}
		w.ev, w.load = ev, ev.Load
	}
	w.markAll()
	poll := time.NewTicker(w.cfg.Forge.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-poll.C:
			w.markAll()
		}
		w.round(ctx)
	}
}

// round does the work marked since the last one.
func (w *worker) round(ctx context.Context) {
	w.mu.Lock()
	all, dirty, cluster, deploys := w.all, w.dirty, w.cluster, w.deploys
	w.all, w.dirty, w.cluster, w.deploys = false, map[int]bool{}, false, false
	w.again, w.previewAgain = w.previewAgain, map[int]bool{}
	w.mu.Unlock()
	var errs []error
	if w.cfg.Forge.Enabled(gitsync.ForgeEventPlans) {
		if all {
			errs = append(errs, w.listAll(ctx))
		}
		for n := range dirty {
			if !all {
				errs = append(errs, w.refresh(ctx, n))
			}
		}
		if cluster && !all {
			errs = append(errs, w.replanAll(ctx))
		}
	}
	if deploys {
		errs = append(errs, w.retryDeploys(w.deployRound(ctx)))
	}
	if ctx.Err() != nil {
		return
	}
	w.report(ctx, errors.Join(errs...))
}

// report records a failed round as an Event (and its end once).
func (w *worker) report(ctx context.Context, err error) {
	if err != nil {
		w.failing = true
		w.c.log.Warn("forge", "repo", w.cfg.Name, "err", err)
		w.c.record(ctx, w.cfg.Name, ReasonForgeError, api.EventWarning, err.Error())
		return
	}
	if w.failing {
		w.failing = false
		w.c.record(ctx, w.cfg.Name, ReasonForgeOK, api.EventNormal, "forge calls succeed again")
	}
}

func (w *worker) listAll(ctx context.Context) error {
	prs, err := w.fc.OpenPullRequests(ctx, w.cfg.Branch)
	if err != nil {
		return err
	}
	open := map[int]bool{}
	var errs []error
	for _, pr := range prs {
		open[pr.Number] = true
		errs = append(errs, w.consider(ctx, pr))
	}
	for n := range w.prs {
		if !open[n] {
			errs = append(errs, w.closed(ctx, n))
		}
	}
	errs = append(errs, w.expirePreviews(ctx, open))
	return errors.Join(errs...)
}

func (w *worker) refresh(ctx context.Context, n int) error {
	pr, err := w.fc.PullRequest(ctx, n)
	if errors.Is(err, ErrNotFound) {
		delete(w.prs, n)
		return nil
	}
	if err != nil {
		return err
	}
	if !pr.Open || pr.Base != w.cfg.Branch {
		return w.closed(ctx, n)
	}
	return w.consider(ctx, pr)
}

// closed forgets pull request n, no longer open against the tracked
// branch (merged, closed, moved to another base): its previews are
// deleted, and its comment, when it listed them, says so in their place
// (their links would lead nowhere).
func (w *worker) closed(ctx context.Context, n int) error {
	st := w.prs[n]
	delete(w.prs, n)
	if st == nil {
		st = &prState{pr: PullRequest{Number: n}}
	}
	listed := st.previews
	st.pr.Open = false
	if err := w.syncPreviews(ctx, st); err != nil || len(listed) == 0 || st.body == "" {
		return err
	}
	in := st.shown
	in.Previews = nil
	for _, name := range listed {
		in.Previews = append(in.Previews, PreviewLink{App: name, Deleted: true, Refused: w.closedWhy()})
	}
	return w.upsertComment(ctx, st, CommentBody(in))
}

// closedWhy is why the previews of a closed pull request were deleted.
func (w *worker) closedWhy() string {
	return "the pull request is no longer open against " + w.cfg.Branch
}

// commentClosed edits the plan comment of pull request n, closed while
// the server was down, whose previews names were deleted at start-up: it
// says so in place of their links, as closed does for a close seen live.
// The server no longer has the plan; the rest of the comment stays. A
// comment that cannot be found (deleted by hand) is left alone.
func (w *worker) commentClosed(ctx context.Context, n int, names []string) error {
	c, ok, err := w.ownComment(ctx, n)
	if err != nil || !ok {
		return err
	}
	body, changed := ClosedBody(c.Body, names, w.closedWhy())
	if !changed {
		return nil
	}
	if err := w.fc.EditComment(ctx, n, c.ID, body); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("pull request %d: say that its previews are deleted: %w", n, err)
	}
	return nil
}

// ownComment is the server's plan comment on pull request n, found by
// its marker (FindOwn).
func (w *worker) ownComment(ctx context.Context, n int) (Comment, bool, error) {
	self, err := w.fc.Self(ctx)
	if err != nil {
		return Comment{}, false, err
	}
	comments, err := w.fc.Comments(ctx, n)
	if err != nil {
		return Comment{}, false, err
	}
	c, ok := FindOwn(comments, self, Marker(w.cfg.Name))
	return c, ok, nil
}

// consider plans a pull request whose head is new to the worker.
func (w *worker) consider(ctx context.Context, pr PullRequest) error {
	st := w.prs[pr.Number]
	if st != nil && st.pr.HeadSHA == pr.HeadSHA {
		st.pr.Title, st.pr.Labels, st.pr.Open = pr.Title, pr.Labels, pr.Open
		w.askedAgain(st)
		var perr error
		listed := len(st.previews)+len(st.refused) > 0
		if w.wantsPreview(pr) || listed {
			// The label came or went, a preview was deleted by hand, or
			// a write failed: the previews converge on every round.
			perr = w.syncPreviews(ctx, st)
		}
		// Nothing new to post, unless the comment listed previews (the
		// label removed takes them off), or the last round failed to
		// post the comment or the status (a rate limit, a 5xx): try
		// again.
		if !listed && len(st.previews)+len(st.refused) == 0 && st.body != "" && (st.status.State != "" || st.pr.HeadSHA == "") {
			return perr
		}
		return errors.Join(perr, w.publish(ctx, st, w.c.live(), false))
	}
	if st == nil {
		st = &prState{}
		w.prs[pr.Number] = st
	}
	// The status posted was on the old head: the new one has none yet,
	// whatever its verdict.
	st.pr, st.status, st.writeRefused = pr, Status{}, nil
	w.askedAgain(st)
	err := w.prepare(ctx, st)
	if err == nil && st.expired == nil && w.wantsPreview(pr) {
		st.expired, err = w.readExpired(ctx, pr.Number)
	}
	if err != nil {
		// Try again on the next round.
		st.pr.HeadSHA = ""
		return err
	}
	perr := w.syncPreviews(ctx, st)
	return errors.Join(perr, w.publish(ctx, st, w.c.live(), false))
}

// askedAgain starts st's previews again when a webhook said the preview
// label was added since the last round, as a reviewer asks for them
// again (the label removed and added within one round): those deleted
// at their ttl are deployed again, and every preview's ttl starts again.
func (w *worker) askedAgain(st *prState) {
	if w.again[st.pr.Number] && w.wantsPreview(st.pr) {
		st.expired, st.renew, st.writeRefused = map[string]previewMark{}, true, nil
	}
}

// publicProblem is err as the pull request's comment and status show it:
// without the server's paths (its clone of repo under dataDir), which
// are none of the forge's users' business.
func publicProblem(err error, dataDir, clone, repo string) string {
	msg := strings.ReplaceAll(err.Error(), clone, "the server's clone of "+repo)
	if dataDir != "" {
		msg = strings.ReplaceAll(msg, dataDir, "DATA")
	}
	return msg
}

// prepare fetches the pull request's head and its base branch into the
// worker's clone and evaluates both sides of the change.
func (w *worker) prepare(ctx context.Context, st *prState) error {
	n := st.pr.Number
	headRef := "refs/capstan/pr/" + strconv.Itoa(n)
	baseRef := "refs/capstan/base"
	st.input, st.problem, st.sigErr = nil, "", nil
	err := gitsync.FetchRefs(ctx, w.cfg, w.dir, "+refs/heads/"+w.cfg.Branch+":"+baseRef, "+"+w.fc.HeadRef(n)+":"+headRef)
	if errors.Is(err, gitsync.ErrRefNotFound) {
		if berr := gitsync.FetchRefs(ctx, w.cfg, w.dir, "+refs/heads/"+w.cfg.Branch+":"+baseRef); berr == nil {
			st.problem = fmt.Sprintf("%v: the forge has no %s any more (a deleted branch?); push to the pull request again", ErrHeadGone, w.fc.HeadRef(n))
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("pull request %d: %w", n, err)
	}
	head, err := gitsync.ResolveCommit(w.dir, headRef)
	if err != nil {
		return err
	}
	// The forge may move its head ref a moment after it answers; plan what
	// was fetched and let the next round catch up.
	st.pr.HeadSHA = head
	base, err := gitsync.MergeBase(w.dir, baseRef, head)
	if err != nil {
		st.problem = publicProblem(err, w.c.opts.DataDir, w.dir, w.cfg.Name)
		return nil
	}
	// A secret file of head not encrypted for the cluster's key is an
	// error in the plan, as sync will refuse it.
	var recipients []string
	if w.c.opts.SecretsDir != "" {
		if keys, err := secrets.Load(w.c.opts.SecretsDir); err == nil {
			recipients = keys.Recipients()
		}
	}
	in, err := plan.Read(ctx, plan.ReadOptions{Repo: w.dir, Base: base, Head: head, Path: w.cfg.Path, Load: w.load, Recipients: recipients})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st.problem = publicProblem(err, w.c.opts.DataDir, w.dir, w.cfg.Name)
		return nil
	}
	in.Base.Ref = w.cfg.Branch
	in.Head.Ref = st.pr.Head
	in.Prune = w.cfg.Prune
	in.Repo = w.cfg.Name
	if in.Head.Ref == "" {
		in.Head.Ref = "#" + strconv.Itoa(n)
	}
	st.input = &in
	if w.cfg.Verify.Enabled {
		_, st.sigErr = gitsync.VerifyRef(w.cfg, w.dir, head)
	}
	return nil
}

// replanAll re-plans every open pull request against the cluster as it
// is now, publishing those whose verdict flips.
func (w *worker) replanAll(ctx context.Context) error {
	live := w.c.live()
	var errs []error
	for _, st := range w.prs {
		if st.input != nil {
			errs = append(errs, w.publish(ctx, st, live, true))
		}
	}
	return errors.Join(errs...)
}

// publish computes the plan of st against live and posts its comment and
// status where they changed; onlyFlip posts nothing unless the verdict
// changed (a cluster change).
func (w *worker) publish(ctx context.Context, st *prState, live *plan.Live, onlyFlip bool) error {
	var p *plan.Plan
	var status Status
	if st.input != nil {
		in := *st.input
		in.Live = live
		if live == nil {
			in.LiveNote = "the server does not watch the cluster"
		}
		p = plan.Compute(in)
		status = PlanStatus(p, st.sigErr)
	} else {
		status = Status{Context: PlanContext, State: StateError, Description: "no plan: " + st.problem}
	}
	if onlyFlip && status.State == st.status.State {
		return nil
	}
	status.TargetURL = w.target(st.pr.HeadSHA, st.pr.Number)
	st.shown = CommentInput{Repo: w.cfg.Name, PR: st.pr, Plan: p, Problem: st.problem, Status: status, SigErr: st.sigErr,
		Previews: w.previewLinks(ctx, st), Limit: w.fc.CommentLimit()}
	body := CommentBody(st.shown)
	if body != st.body {
		if err := w.upsertComment(ctx, st, body); err != nil {
			return err
		}
	}
	if st.pr.HeadSHA != "" && status != st.status {
		if err := w.fc.SetStatus(ctx, st.pr.HeadSHA, status); err != nil {
			return err
		}
		st.status = status
	}
	return nil
}

// upsertComment edits the pull request's plan comment, finding it by its
// marker among the token user's comments, or posts it. The token's user
// is asked each time the comment is looked for, not once: a token rotated
// in its file may be another user's. Then the plan comment of the earlier
// user is deleted once the new user's is up, so that the pull request
// keeps one plan comment.
func (w *worker) upsertComment(ctx context.Context, st *prState, body string) error {
	n := st.pr.Number
	var stale []Comment
	searched := st.commentID == 0
	if searched {
		self, err := w.fc.Self(ctx)
		if err != nil {
			return err
		}
		comments, err := w.fc.Comments(ctx, n)
		if err != nil {
			return err
		}
		marker := Marker(w.cfg.Name)
		stale = FindStale(comments, self, marker)
		if c, ok := FindOwn(comments, self, marker); ok {
			st.commentID = c.ID
			if c.Body == body {
				st.body = body
				return w.deleteStale(ctx, n, stale)
			}
		}
	}
	if st.commentID != 0 {
		err := w.fc.EditComment(ctx, n, st.commentID, body)
		switch {
		case err == nil:
			st.body = body
			return w.deleteStale(ctx, n, stale)
		case errors.Is(err, ErrUnauthorized) && !searched:
			// Maybe the token's earlier user's comment, which this
			// user may not edit: look again, as the token's user now.
			st.commentID = 0
			return w.upsertComment(ctx, st, body)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		// Deleted by a human: post it again.
	}
	c, err := w.fc.CreateComment(ctx, n, body)
	if err != nil {
		return err
	}
	st.commentID, st.body = c.ID, body
	return w.deleteStale(ctx, n, stale)
}

// deleteStale deletes the plan comments of the token's earlier users,
// once the plan comment is up. A forge that refuses (the new user may
// not delete others' comments) leaves them, with a log line that says
// what to do: the plan comment is up to date all the same.
func (w *worker) deleteStale(ctx context.Context, n int, stale []Comment) error {
	for _, c := range stale {
		if err := w.fc.DeleteComment(ctx, n, c.ID); err != nil && !errors.Is(err, ErrNotFound) {
			w.c.log.Warn("an older plan comment by another user (the token's user before a rotation?) is left on the pull request: delete it by hand",
				"repo", w.cfg.Name, "pr", n, "comment", c.ID, "author", c.Author, "err", err)
		}
	}
	return nil
}

func (w *worker) target(commit string, pr int) string {
	t := w.cfg.Forge.TargetURL
	if t == "" {
		return ""
	}
	return strings.NewReplacer("{commit}", commit, "{pr}", strconv.Itoa(pr), "{repo}", w.cfg.Name).Replace(t)
}
