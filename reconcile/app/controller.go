package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Options configure the app controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the app controller.
type Controller struct {
	opts      Options
	client    *client.Client
	ctrl      *reconcile.Controller
	apps      *client.Informer
	workloads *client.Informer
	services  *client.Informer
	secrets   *client.Informer
	pods      *client.Informer
	secByNS   *reconcile.Index
	appsByNS  *reconcile.Index
	wByNS     *reconcile.Index
	sByNS     *reconcile.Index
	podsByNS  *reconcile.Index
	// dependents: app name -> the Apps whose dependsOn names it.
	dependents *reconcile.Index
	rec        *reconcile.Recorder
	written    reconcile.Written
	// volumes: persistent volumes by the UID of the workload that owns
	// them (reclaim Delete), released before the workload is pruned.
	volumes *reconcile.Index
}

func appByNamespace(o api.Object) []string { return []string{Namespace(o.(*api.App))} }

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{opts: opts, client: m.Client(),
		appsByNS:   reconcile.NewIndex(appByNamespace),
		dependents: reconcile.NewIndex(func(o api.Object) []string { return o.(*api.App).Spec.DependsOn }),
		rec:        m.Recorder("app-controller")}
	var err error
	c.ctrl, err = m.NewController("app", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	q := c.ctrl.Queue()
	c.apps = m.Informer(api.KindApp)
	c.workloads = m.Informer(api.KindWorkload)
	c.services = m.Informer(api.KindService)
	c.pods = m.Informer(api.KindPod)
	c.secrets = m.Informer(api.KindSecret)
	if reg := m.Registry(); reg != nil {
		if err := reg.Register(newAppInfo(c.apps)); err != nil {
			return nil, fmt.Errorf("app controller: register metrics: %w", err)
		}
	}
	c.wByNS = m.Index(api.KindWorkload, reconcile.ByApp)
	c.sByNS = m.Index(api.KindService, reconcile.ByApp)
	c.podsByNS = m.Index(api.KindPod, reconcile.ByApp)
	c.secByNS = m.Index(api.KindSecret, reconcile.ByApp)
	c.secrets.AddHandler(reconcile.EnqueueHandler(q, c.appsIn))
	c.apps.AddHandler(c.appsByNS.Handler())
	c.apps.AddHandler(c.dependents.Handler())
	c.apps.AddHandler(reconcile.EnqueueHandler(q, reconcile.ObjectKeyOf))
	c.apps.AddHandler(reconcile.EnqueueHandler(q, c.dependentsOf))
	c.workloads.AddHandler(reconcile.EnqueueHandler(q, c.appsIn))
	c.workloads.AddHandler(reconcile.EnqueueHandler(q, c.dependentsOf))
	c.services.AddHandler(reconcile.EnqueueHandler(q, c.appsIn))
	// Pods change an app's health, not its plan: only state changes that
	// matter for health queue the app, not every status write.
	c.pods.AddHandler(client.Handler{
		OnAdd: func(o api.Object) { c.enqueueApps(o) },
		OnUpdate: func(old, o api.Object) {
			if healthOf(old.(*api.Pod)) != healthOf(o.(*api.Pod)) {
				c.enqueueApps(o)
			}
		},
		OnDelete: func(o api.Object) { c.enqueueApps(o) },
	})
	c.volumes = reconcile.NewIndex(func(o api.Object) []string {
		if ow := o.Meta().Owner; ow != nil && ow.Kind == api.KindWorkload && ow.UID != "" {
			return []string{ow.UID}
		}
		return nil
	})
	m.Informer(api.KindVolume).AddHandler(c.volumes.Handler())
	return c, nil
}

// healthOf is what a pod contributes to its app's health (a pod that
// starts terminating may free room for an unschedulable one).
func healthOf(p *api.Pod) string {
	return fmt.Sprint(podDegraded(p, false), api.IsPodReady(p), p.Spec.NodeName != "", api.Terminating(p))
}

func (c *Controller) enqueueApps(o api.Object) {
	for _, k := range c.appsIn(o) {
		c.ctrl.Queue().Add(k)
	}
}

// appsIn returns the keys of the apps whose namespace o lives in.
func (c *Controller) appsIn(o api.Object) []string {
	var keys []string
	for _, a := range c.appsByNS.Get(o.Meta().App) {
		keys = append(keys, api.KeyOf(a).ObjectKey())
	}
	return keys
}

// dependentsOf returns the keys of the apps that depend on the app that o
// is, or that o belongs to.
func (c *Controller) dependentsOf(o api.Object) []string {
	name := o.Meta().App
	if a, ok := o.(*api.App); ok {
		name = a.Metadata.Name
	}
	var keys []string
	for _, a := range c.dependents.Get(name) {
		keys = append(keys, api.KeyOf(a).ObjectKey())
	}
	return keys
}

// appNamed returns the App named name, or nil.
func (c *Controller) appNamed(name string) *api.App {
	for _, o := range c.appsByNS.Get(name) {
		if o.Meta().Name == name && !api.Terminating(o) {
			return o.(*api.App)
		}
	}
	return nil
}

func (c *Controller) workloadsIn(ns string) []*api.Workload {
	var ws []*api.Workload
	for _, w := range c.wByNS.Get(ns) {
		ws = append(ws, w.(*api.Workload))
	}
	return ws
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile plans and applies one App, then writes its health.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.apps.Get(key)
	if !ok {
		c.written.Forget(key)
		return reconcile.Result{}, nil // the garbage collector removes what it owned
	}
	a := c.written.Newer(key, o).(*api.App)
	if api.Terminating(a) {
		return reconcile.Result{}, nil
	}
	ns := Namespace(a)
	var ws []*api.Workload
	for _, w := range c.wByNS.Get(ns) {
		ws = append(ws, w.(*api.Workload))
	}
	var ss []*api.Service
	for _, s := range c.sByNS.Get(ns) {
		ss = append(ss, s.(*api.Service))
	}
	var secs []*api.Secret
	for _, s := range c.secByNS.Get(ns) {
		secs = append(secs, s.(*api.Secret))
	}
	plan := ComputeSecrets(a, secs).then(Compute(a, ws, ss))
	waits := Waits(a, c.appNamed, c.workloadsIn)
	plan.Hold(waits)
	var errs []error
	for _, obj := range plan.Create {
		if _, err := c.client.Create(ctx, obj); err != nil && !client.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("app %s: create %s: %w", key, api.KeyOf(obj), err))
		}
	}
	for _, u := range plan.Update {
		if _, err := c.client.Update(ctx, u.Object); err != nil {
			errs = append(errs, fmt.Errorf("app %s: update %s: %w", key, api.KeyOf(u.Object), err))
		}
	}
	for _, obj := range plan.Delete {
		if w, ok := obj.(*api.Workload); ok {
			if err := c.releaseRetained(ctx, w); err != nil {
				errs = append(errs, fmt.Errorf("app %s: prune %s: %w", key, api.KeyOf(obj), err))
				continue // pruned on the retry, once the volumes are kept
			}
		}
		_, err := c.client.Delete(ctx, api.KeyOf(obj), client.DeleteOptions{ResourceVersion: obj.Meta().ResourceVersion})
		if err != nil && !client.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("app %s: prune %s: %w", key, api.KeyOf(obj), err))
		}
	}
	for _, e := range plan.Events {
		c.rec.Record(ctx, e)
	}
	health, msg := Health(a, ws, reconcile.Pods(c.podsByNS.Get(ns)))
	if len(waits) > 0 && health != api.HealthDegraded {
		health, msg = api.HealthProgressing, WaitsMessage(waits)
	}
	if health != a.Status.Health || msg != a.Status.HealthMessage || !api.EqualJSON(waits, a.Status.Waits) {
		u := api.Clone(a)
		u.Status.Health, u.Status.HealthMessage, u.Status.Waits = health, msg, waits
		out, err := c.client.UpdateStatus(ctx, u)
		switch {
		case err == nil:
			c.written.Put(key, out)
		case !client.IsNotFound(err):
			errs = append(errs, fmt.Errorf("app %s: write health: %w", key, err))
		}
	}
	return reconcile.Result{}, errors.Join(errs...)
}

// releaseRetained writes, before w is pruned, the volumes w still owns
// that its template says to retain (api.ReleaseRetained): the workload
// controller may not have caught up with a switch to "retain" yet (it is
// behind, or backing off after errors), and once w is gone the garbage
// collector would delete them with it.
func (c *Controller) releaseRetained(ctx context.Context, w *api.Workload) error {
	var vols []*api.PersistentVolume
	for _, o := range c.volumes.Get(w.Metadata.UID) {
		vols = append(vols, o.(*api.PersistentVolume))
	}
	for _, v := range api.ReleaseRetained(w, vols) {
		if _, err := c.client.Update(ctx, v); err != nil {
			return fmt.Errorf("keep volume %s (reclaim retain) before deleting workload %s: %w", v.Metadata.Name, w.Metadata.Name, err)
		}
	}
	return nil
}
