package notify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// Detect tells whether a change of an API object is worth a notification:
// a Revision recorded Rejected or Failed (sync refused), a Workload whose
// Degraded condition turned true (rollout failed), a Node that stopped
// being Ready (node lost). old is nil for an added object; a Revision
// synced before since is history, not news. Pure.
func Detect(old, obj api.Object, since time.Time) (Message, bool) {
	switch o := obj.(type) {
	case *api.Revision:
		if old != nil || o.Spec.SyncedAt.Before(since) || (o.Spec.Result != api.SyncRejected && o.Spec.Result != api.SyncFailed) {
			return Message{}, false
		}
		msg := fmt.Sprintf("commit %q was %s", api.CommitSubject(o.Spec.Message), o.Spec.Result)
		if len(o.Spec.Errors) > 0 {
			msg += ": " + o.Spec.Errors[0].String()
			if n := len(o.Spec.Errors) - 1; n > 0 {
				msg += fmt.Sprintf(" (and %d more)", n)
			}
		}
		return Message{Kind: SyncRefused, Time: o.Spec.SyncedAt, App: o.Metadata.App, Repo: o.Metadata.Labels[applier.LabelRepo], Commit: o.Spec.Commit, Message: msg}, true
	case *api.Workload:
		now := api.FindCondition(o.Status.Conditions, api.WorkloadDegraded)
		if now == nil || now.Status != api.ConditionTrue {
			return Message{}, false
		}
		if ow, ok := old.(*api.Workload); ok {
			if was := api.FindCondition(ow.Status.Conditions, api.WorkloadDegraded); was != nil && was.Status == api.ConditionTrue {
				return Message{}, false
			}
		} else if now.LastTransitionTime.Before(since) {
			return Message{}, false
		}
		m := Message{Kind: RolloutFailed, Time: now.LastTransitionTime, App: o.Metadata.App,
			Message: fmt.Sprintf("pod group %s: %s", o.Metadata.Name, now.Message)}
		if src := o.Metadata.Source; src != nil {
			m.Commit = src.Commit // the commit its spec came from
		}
		return m, true
	case *api.Node:
		on, ok := old.(*api.Node)
		if !ok || !ready(on) || ready(o) {
			return Message{}, false
		}
		why := "not ready"
		if c := api.FindCondition(o.Status.Conditions, api.NodeReady); c != nil && c.Message != "" {
			why = c.Message
		}
		return Message{Kind: NodeLost, Node: o.Metadata.Name, Message: why + "; its pods are replaced elsewhere after the eviction timeout"}, true
	}
	return Message{}, false
}

func ready(n *api.Node) bool {
	c := api.FindCondition(n.Status.Conditions, api.NodeReady)
	return c != nil && c.Status == api.ConditionTrue
}

// Watch feeds n from the API until ctx ends.
func Watch(ctx context.Context, c *client.Client, n *Notifier, now func() time.Time, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	since := now()
	g, ctx := errgroup.WithContext(ctx)
	for _, k := range []api.Kind{api.KindRevision, api.KindWorkload, api.KindNode} {
		i := client.NewInformer(c, k, client.ListOptions{}, log)
		send := func(old, obj api.Object) {
			if m, ok := Detect(old, obj, since); ok {
				if m.Time.IsZero() {
					m.Time = now()
				}
				n.Notify(m)
			}
		}
		i.AddHandler(client.Handler{OnAdd: func(obj api.Object) { send(nil, obj) }, OnUpdate: send})
		g.Go(func() error { return i.Start(ctx) })
	}
	g.Go(func() error { return n.Start(ctx) })
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
