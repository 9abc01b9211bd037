package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/forge"
	"github.com/capstanhq/capstan/forge/notify"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/gitsync/autorevert"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// AttachGitSync wires the syncer and its applier into srv: the webhook
// endpoint and POST /sync/{repo}. It returns the syncer's Start, or nil
// when no repository is tracked. New calls it; so do tests that bring
// their own API server.
func AttachGitSync(srv *apiserver.Server, dataDir string, repos []gitsync.RepoConfig, eval sandbox.Options, log *slog.Logger) (func(context.Context) error, error) {
	return attachGitSync(srv, nil, dataDir, repos, eval, nil, nil, nil, log)
}

// attachGitSync is AttachGitSync writing through c (the leader's client,
// with its fence; nil: the admin config's), telling nt (nil: nobody) of
// automatic reverts, registering the sync metrics in reg (nil: none) and
// passing the triggers it gets while it does not lead on through relay
// (nil: it always leads).
func attachGitSync(srv *apiserver.Server, c *client.Client, dataDir string, repos []gitsync.RepoConfig, eval sandbox.Options, nt *notify.Notifier, reg prometheus.Registerer, relay *syncRelay, log *slog.Logger) (func(context.Context) error, error) {
	if len(repos) == 0 {
		return nil, nil
	}
	if c == nil {
		var err error
		if c, err = client.FromFile(srv.AdminConfigPath()); err != nil {
			return nil, err
		}
	}
	urls := map[string]string{}
	for _, r := range repos {
		urls[r.Name] = gitsync.RedactURL(r.URL)
	}
	ap, err := applier.New(applier.Options{Client: c, RepoURLs: urls, Eval: eval, DataDir: filepath.Join(dataDir, "gitsync", "eval"), SecretsDir: filepath.Join(dataDir, "secrets"), Registry: reg, Logger: log.With("component", "applier")})
	if err != nil {
		return nil, err
	}
	// The forge component (pull-request plans, commit statuses) gets the
	// pull-request webhooks gitsync authenticates.
	fg, err := forge.New(forge.Options{API: c, Repos: repos, DataDir: filepath.Join(dataDir, "forge"), Eval: eval, SecretsDir: filepath.Join(dataDir, "secrets"), Logger: log.With("component", "forge")})
	if err != nil {
		return nil, err
	}
	// Every server takes webhooks and checks their signatures; one that
	// does not lead passes what they trigger on to the leader, whose
	// syncer and forge workers are the ones that run.
	onHook := func(repo string, forge gitsync.Forge, event string, body []byte) bool {
		if !relay.relays() {
			return fg.HandleHook(repo, forge, event, body)
		}
		p, ok := fg.Accept(repo, forge, event, body)
		if !ok {
			return false
		}
		if err := relay.pass(context.Background(), relayedTrigger{Repo: repo, Kind: relayPull, Pull: p.Number, PreviewAgain: p.PreviewAgain}); err != nil {
			log.Error("webhook: pass the pull request on to the leader; it is planned at the leader's next poll of the forge", "repo", repo, "pull", p.Number, "err", err)
			return false
		}
		return true
	}
	relayPush := func(repo string) (bool, error) {
		if !relay.relays() {
			return false, nil
		}
		return true, relay.pass(context.Background(), relayedTrigger{Repo: repo, Kind: relaySync})
	}
	syncer, err := gitsync.New(gitsync.Options{DataDir: filepath.Join(dataDir, "gitsync"), Repos: repos, Sink: ap, Logger: log.With("component", "gitsync"), OnHook: onHook, Relay: relayPush, Registry: reg})
	if err != nil {
		return nil, err
	}
	srv.Handle(gitsync.WebhookPath, syncer.WebhookHandler())
	srv.HandleAdmin("POST /sync/{repo}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if relay.relays() {
			serveRelayedSync(w, r, syncer, relay)
			return
		}
		serveSync(w, r, syncer, repos)
	}))
	for _, r := range repos {
		log.Info("tracking repository", "name", r.Name, "url", gitsync.RedactURL(r.URL), "ref", r.Ref(), "path", r.Path)
	}
	// Apps with rollback "auto" get their failed rollouts reverted in git.
	ar, err := autorevert.New(autorevert.Options{API: c, Repos: repos, DataDir: filepath.Join(dataDir, "autorevert"), Eval: eval, Logger: log.With("component", "autorevert"),
		OnRevert: func(a autorevert.Action, commit string, err error) {
			m := notify.Message{Kind: notify.RollbackMade, Time: time.Now(), App: a.App, Repo: a.Repo, Commit: a.Failed}
			switch {
			case errors.Is(err, gitsync.ErrUnreachable):
				m.Message = fmt.Sprintf("the failed rollout of %s is NOT reverted yet: %v", api.ShortCommit(a.Failed), err)
			case err != nil:
				m.Message = fmt.Sprintf("the failed rollout of %s was NOT reverted: %v", api.ShortCommit(a.Failed), err)
			default:
				m.Message = fmt.Sprintf("the failed rollout of %s (%s) was reverted by commit %s", api.ShortCommit(a.Failed), a.Why, api.ShortCommit(commit))
			}
			nt.Notify(m)
		}})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		defer ap.Close() // stops the evaluation processes
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return syncer.Start(ctx) })
		g.Go(func() error { return ar.Start(ctx) })
		if fg.Enabled() {
			g.Go(func() error { return fg.Start(ctx) })
		}
		if relay != nil && relay.docs != nil {
			g.Go(func() error {
				return relay.follow(ctx, func(t relayedTrigger) { actOnRelayed(t, syncer, fg, log) })
			})
		}
		return g.Wait()
	}, nil
}

// serveSync triggers a sync of one repository or of "all"; with
// ?allowPruneAll=true it first confirms the commit each is holding for
// mass deletion (see gitsync.PrunePolicy), and says which.
func serveSync(w http.ResponseWriter, r *http.Request, syncer *gitsync.Syncer, repos []gitsync.RepoConfig) {
	name := r.PathValue("repo")
	reply := func(code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	fail := func(code int, reason wire.Reason, err error) {
		reply(code, wire.Status{Code: code, Reason: reason, Message: err.Error()})
	}
	names := []string{name}
	if name == "all" {
		names = nil
		for _, rc := range repos {
			names = append(names, rc.Name)
		}
	}
	if r.URL.Query().Get("allowPruneAll") == "true" {
		confirmed := map[string]string{}
		for _, n := range names {
			head, err := syncer.ConfirmPrune(n)
			switch {
			case errors.Is(err, gitsync.ErrUnknownRepo):
				fail(http.StatusNotFound, wire.ReasonNotFound, err)
				return
			case errors.Is(err, gitsync.ErrNothingHeld) && name == "all":
			case err != nil:
				fail(http.StatusConflict, wire.ReasonConflict, err)
				return
			default:
				confirmed[n] = head
			}
		}
		if len(confirmed) == 0 {
			fail(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("%w in any repository (see 'capstan history')", gitsync.ErrNothingHeld))
			return
		}
		reply(http.StatusAccepted, map[string]any{"triggered": name, "confirmed": confirmed})
		return
	}
	var err error
	if name == "all" {
		syncer.TriggerAll()
	} else {
		err = syncer.Trigger(name)
	}
	if err != nil {
		fail(http.StatusNotFound, wire.ReasonNotFound, err)
		return
	}
	// The last attempts: a repository that fails has no app to show it on
	// until it first synced.
	last := map[string]syncStatus{}
	for _, n := range names {
		if r, err := syncer.Status(n); err == nil {
			st := syncStatus{Head: r.Head, At: r.At}
			if r.Err != nil {
				st.Error = r.Err.Error()
			}
			last[n] = st
		}
	}
	reply(http.StatusAccepted, map[string]any{"triggered": name, "last": last})
}

// syncStatus is a repository's last sync attempt in the answer to POST
// /sync/{repo}: zero At before the first.
type syncStatus struct {
	Head  string    `json:"head,omitempty"`
	At    time.Time `json:"at,omitzero"`
	Error string    `json:"error,omitempty"`
}

// actOnRelayed is the leader's side of a trigger another server passed
// on: what that server's syncer or forge component would have done.
func actOnRelayed(t relayedTrigger, syncer *gitsync.Syncer, fg *forge.Component, log *slog.Logger) {
	log = log.With("repo", t.Repo, "kind", t.Kind)
	switch t.Kind {
	case relaySync:
		if t.Repo == "all" {
			syncer.TriggerAll()
		} else if err := syncer.Trigger(t.Repo); err != nil {
			log.Warn("sync triggered on another server", "err", err)
		}
	case relayConfirm:
		names := []string{t.Repo}
		if t.Repo == "all" {
			names = nil
			for _, rc := range syncer.Repos() {
				names = append(names, rc.Name)
			}
		}
		for _, n := range names {
			head, err := syncer.ConfirmPrune(n)
			switch {
			case errors.Is(err, gitsync.ErrNothingHeld):
				log.Info("'capstan sync --allow-prune-all' on another server: nothing held", "repo", n)
			case err != nil:
				log.Warn("'capstan sync --allow-prune-all' on another server", "repo", n, "err", err)
			default:
				log.Info("'capstan sync --allow-prune-all' on another server: deletions confirmed", "repo", n, "commit", head)
			}
		}
		if t.Repo == "all" {
			syncer.TriggerAll()
		}
	case relayPull:
		fg.Mark(t.Repo, forge.Pull{Number: t.Pull, PreviewAgain: t.PreviewAgain})
	default:
		log.Warn("unknown trigger from another server (a newer version?); ignored")
	}
}

// serveRelayedSync is POST /sync/{repo} on a server that does not lead:
// it records the trigger for the leader, and answers without the last
// sync status, which only the leader knows.
func serveRelayedSync(w http.ResponseWriter, r *http.Request, syncer *gitsync.Syncer, relay *syncRelay) {
	name := r.PathValue("repo")
	reply := func(code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	if name != "all" {
		if _, err := syncer.Status(name); err != nil {
			reply(http.StatusNotFound, wire.Status{Code: http.StatusNotFound, Reason: wire.ReasonNotFound, Message: err.Error()})
			return
		}
	}
	t := relayedTrigger{Repo: name, Kind: relaySync}
	what := "syncs it within a second"
	if r.URL.Query().Get("allowPruneAll") == "true" {
		t.Kind = relayConfirm
		what = "confirms the commit it holds for mass deletion, if any, and syncs within a second ('capstan history' shows the result)"
	}
	if err := relay.pass(r.Context(), t); err != nil {
		reply(http.StatusServiceUnavailable, wire.Status{Code: http.StatusServiceUnavailable, Reason: wire.ReasonServiceUnavailable,
			Message: fmt.Sprintf("%v: the store is unreachable from this server; retry, or ask another server", err)})
		return
	}
	reply(http.StatusAccepted, map[string]any{"triggered": name, "relayed": "this server does not lead: the leading server " + what})
}
