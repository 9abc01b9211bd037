package gc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Kinds the garbage collector watches: every kind that owns or is owned.
var watched = []api.Kind{api.KindApp, api.KindWorkload, api.KindService, api.KindPod, api.KindEndpoints, api.KindJob, api.KindVolume, api.KindSecret}

// Options configure the garbage collector.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the garbage collector. Its keys are full object keys
// ("pods/shop/web-abcde") of objects that have an owner.
type Controller struct {
	opts      Options
	client    *client.Client
	log       *slog.Logger
	ctrl      *reconcile.Controller
	informers map[api.Kind]*client.Informer
	children  *reconcile.Index // owner UID -> children
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{opts: opts, client: m.Client(), log: m.Logger("gc"), informers: map[api.Kind]*client.Informer{}}
	var err error
	c.ctrl, err = m.NewController("gc", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	c.children = reconcile.NewIndex(func(o api.Object) []string {
		if k, ok := OwnerOf(o); ok {
			return []string{k.UID}
		}
		return nil
	})
	q := c.ctrl.Queue()
	for _, k := range watched {
		inf := m.Informer(k)
		inf.AddHandler(c.children.Handler())
		inf.AddHandler(client.Handler{
			OnAdd:    func(o api.Object) { c.enqueueIfOwned(o) },
			OnUpdate: func(_, o api.Object) { c.enqueueIfOwned(o) },
			OnDelete: func(o api.Object) {
				// The owner is gone: look at its children.
				for _, ch := range c.children.Get(o.Meta().UID) {
					q.Add(api.KeyOf(ch).String())
				}
			},
		})
		c.informers[k] = inf
	}
	return c, nil
}

func (c *Controller) enqueueIfOwned(o api.Object) {
	if _, ok := OwnerOf(o); ok {
		c.ctrl.Queue().Add(api.KeyOf(o).String())
	}
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// ownerExists looks the owner up in the cache, then, when the cache does
// not have it, in the API: a cache may lag behind an owner just created.
func (c *Controller) ownerExists(ctx context.Context, k OwnerKey) (bool, error) {
	key := api.Key{Kind: k.Kind, App: k.App, Name: k.Name}
	if inf := c.informers[k.Kind]; inf != nil {
		if o, ok := inf.Get(key.ObjectKey()); ok && o.Meta().UID == k.UID {
			return true, nil
		}
	}
	o, err := c.client.Get(ctx, key)
	if client.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return o.Meta().UID == k.UID, nil
}

// Reconcile deletes the object with full key key if its owner is gone.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	k, err := api.ParseKey(key)
	if err != nil {
		return reconcile.Result{}, nil // not a key this controller queued
	}
	inf := c.informers[k.Kind]
	if inf == nil {
		return reconcile.Result{}, nil
	}
	o, ok := inf.Get(k.ObjectKey())
	if !ok || len(Orphans([]api.Object{o}, nil)) == 0 {
		return reconcile.Result{}, nil
	}
	owner, _ := OwnerOf(o)
	exists, err := c.ownerExists(ctx, owner)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("gc %s: look up owner %s %s: %w", key, owner.Kind.Singular(), owner.Name, err)
	}
	if exists {
		return reconcile.Result{}, nil
	}
	if w, ok := o.(*api.Workload); ok {
		if err := c.releaseRetained(ctx, w); err != nil {
			return reconcile.Result{}, fmt.Errorf("gc %s: %w", key, err)
		}
	}
	// Pods are deleted gracefully: the agent stops the containers first.
	_, err = c.client.Delete(ctx, k, client.DeleteOptions{ResourceVersion: o.Meta().ResourceVersion})
	if err != nil && !client.IsNotFound(err) && !client.IsConflict(err) {
		return reconcile.Result{}, fmt.Errorf("gc %s: delete (owner %s %s is gone): %w", key, owner.Kind.Singular(), owner.Name, err)
	}
	c.log.Info("garbage collected", "object", key, "owner", owner.Kind.Singular()+" "+owner.Name)
	return reconcile.Result{}, nil
}

// releaseRetained writes, before w is deleted, the volumes w still owns
// that its template says to retain (api.ReleaseRetained): the workload
// controller may not have caught up with a switch to "retain" yet, and
// once w is gone this collector would delete them with it.
func (c *Controller) releaseRetained(ctx context.Context, w *api.Workload) error {
	var vols []*api.PersistentVolume
	for _, o := range c.children.Get(w.Metadata.UID) {
		if v, ok := o.(*api.PersistentVolume); ok {
			vols = append(vols, v)
		}
	}
	for _, v := range api.ReleaseRetained(w, vols) {
		if _, err := c.client.Update(ctx, v); err != nil {
			return fmt.Errorf("keep volume %s (reclaim retain) before deleting workload %s: %w", v.Metadata.Name, w.Metadata.Name, err)
		}
	}
	return nil
}
