package forge

import (
	"context"
	"errors"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// deployRound posts the deploy status of every followed commit whose
// state changed, and stops following those that are final, and those
// whose post failed once a newer commit's status is posted or queued
// (superseded: the forge would show a stale status, as Flux's
// notification controller does not post one).
func (w *worker) deployRound(ctx context.Context) error {
	c := w.c
	in := DeployInput{Repo: w.cfg.Name}
	for _, o := range c.revisions.List() {
		in.Revisions = append(in.Revisions, o.(*api.Revision))
	}
	for _, o := range c.apps.List() {
		in.Apps = append(in.Apps, o.(*api.App))
	}
	for _, o := range c.workloads.List() {
		in.Workloads = append(in.Workloads, o.(*api.Workload))
	}
	w.mu.Lock()
	commits := append([]tracked(nil), w.commits...)
	w.mu.Unlock()
	synced := map[string]time.Time{}
	for _, t := range commits {
		synced[t.commit] = syncedAt(in.Revisions, w.cfg.Name, t.commit)
		if synced[t.commit].After(w.newest.at) {
			w.newest.commit, w.newest.at = t.commit, synced[t.commit]
		}
	}
	var errs []error
	done := map[string]tracked{}
	dropped := map[string]bool{}
	for _, t := range commits {
		superseded := w.newest.at.After(synced[t.commit])
		if t.failed && superseded {
			w.supersede(ctx, &t, nil)
			dropped[t.commit] = true
			continue
		}
		in.Commit = t.commit
		st := DeployState(in)
		st.TargetURL = w.target(t.commit, 0)
		if st.State == t.posted.State && t.posted.State != "" {
			continue
		}
		err := w.deploy(ctx, in.Revisions, &t, st)
		t.failed = err != nil
		done[t.commit] = t
		switch {
		case err != nil && superseded:
			w.supersede(ctx, &t, err)
			dropped[t.commit] = true
		case err != nil:
			errs = append(errs, err)
		}
	}
	w.mu.Lock()
	kept := w.commits[:0]
	for _, t := range w.commits {
		if d, ok := done[t.commit]; ok {
			t = d
		}
		if dropped[t.commit] || t.posted.State == StateSuccess || t.posted.State == StateFailure {
			continue
		}
		kept = append(kept, t)
	}
	w.commits = kept
	w.mu.Unlock()
	return errors.Join(errs...)
}

// supersede stops following t, whose status failed to post (err, or an
// earlier round) while a newer commit's is posted or queued, and records
// it as superseded, so a restart does not take it up again.
func (w *worker) supersede(ctx context.Context, t *tracked, err error) {
	log := w.c.log.With("repo", w.cfg.Name, "commit", t.commit, "newer", w.newest.commit)
	if err != nil {
		log = log.With("err", err)
	}
	log.Info("forge: deploy status of an older commit not posted again: superseded by a newer commit's")
	if t.key == (api.Key{}) {
		return
	}
	rec := t.rec
	rec.State = stateSuperseded
	if err := saveDeployRecord(ctx, w.c.opts.API, t.key, rec); err != nil && !client.IsNotFound(err) {
		log.Warn("forge: record the superseded deploy status", "err", err)
	}
}

// syncedAt is when sync last recorded repo's commit (zero: not yet).
func syncedAt(revs []*api.Revision, repo, commit string) time.Time {
	var at time.Time
	for _, r := range revs {
		if r.Spec.Commit == commit && r.Metadata.Labels[labelRepo] == repo && r.Spec.SyncedAt.After(at) {
			at = r.Spec.SyncedAt
		}
	}
	return at
}

// deploy posts st as the deploy status of t's commit (and its forge
// deployment), keeping the commit's deploy record in the API store so
// that a restart completes what it started: the record says pending
// before anything is posted, and the final state and the deployment's ID
// once posted.
func (w *worker) deploy(ctx context.Context, revs []*api.Revision, t *tracked, st Status) error {
	if t.key == (api.Key{}) {
		key, rec, has, ok := recordHolder(revs, w.cfg.Name, t.commit)
		if ok {
			t.key = key
		}
		if has {
			t.rec = rec
		}
	}
	save := func(rec deployRecord) error {
		if t.key == (api.Key{}) || rec == t.rec {
			return nil
		}
		if err := saveDeployRecord(ctx, w.c.opts.API, t.key, rec); err != nil {
			if client.IsNotFound(err) {
				// The Revision went (its app was deleted): the next
				// round keeps the record on another.
				t.key, t.rec = api.Key{}, deployRecord{ID: t.rec.ID}
			}
			return err
		}
		t.rec = rec
		return nil
	}
	rec := deployRecord{State: StatePending, ID: t.rec.ID, Environment: w.cfg.Name}
	if err := save(rec); err != nil {
		return err
	}
	if err := w.fc.SetStatus(ctx, t.commit, st); err != nil {
		return err
	}
	if d, ok := w.fc.(Deployer); ok {
		id, err := d.Deploy(ctx, t.commit, rec.Environment, rec.ID, st)
		rec.ID = id
		if err != nil {
			// Keep the ID, so that the next try need not find it.
			return errors.Join(err, save(rec))
		}
	}
	rec.State = st.State
	if err := save(rec); err != nil {
		return err
	}
	t.posted = st
	return nil
}
