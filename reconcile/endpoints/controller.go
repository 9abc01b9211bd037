package endpoints

import (
	"context"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Options configure the endpoints controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the endpoints controller.
type Controller struct {
	opts      Options
	client    *client.Client
	ctrl      *reconcile.Controller
	services  *client.Informer
	endpoints *client.Informer
	pods      *client.Informer
	podsByApp *reconcile.Index
	svcByApp  *reconcile.Index
	written   reconcile.Written
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{opts: opts, client: m.Client()}
	var err error
	c.ctrl, err = m.NewController("endpoints", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	c.services = m.Informer(api.KindService)
	c.endpoints = m.Informer(api.KindEndpoints)
	c.pods = m.Informer(api.KindPod)
	c.svcByApp = m.Index(api.KindService, reconcile.ByApp)
	c.podsByApp = m.Index(api.KindPod, reconcile.ByApp)
	c.services.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	c.endpoints.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	c.pods.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), c.servicesOf))
	return c, nil
}

// servicesOf returns the keys of the services selecting pod o.
func (c *Controller) servicesOf(o api.Object) []string {
	var keys []string
	for _, s := range c.svcByApp.Get(o.Meta().App) {
		if Selects(s.(*api.Service).Spec.Selector, o.Meta().Labels) {
			keys = append(keys, api.KeyOf(s).ObjectKey())
		}
	}
	return keys
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile brings one service's Endpoints up to date.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.services.Get(key)
	if !ok {
		return reconcile.Result{}, nil // the garbage collector removes its Endpoints
	}
	svc := o.(*api.Service)
	var have *api.Endpoints
	var cached api.Object
	if e, ok := c.endpoints.Get(key); ok {
		cached = e
	}
	if e := c.written.Newer(key, cached); e != nil {
		have = e.(*api.Endpoints)
	}
	plan := Compute(svc, reconcile.Pods(c.podsByApp.Get(svc.Metadata.App)), have)
	var out api.Object
	var err error
	switch {
	case plan.Create != nil:
		out, err = c.client.Create(ctx, plan.Create)
	case plan.Update != nil:
		out, err = c.client.Update(ctx, plan.Update)
	}
	if out != nil {
		c.written.Put(key, out)
	}
	if err != nil {
		c.written.Forget(key)
		// A conflict or an existing name: the informer brings the newer
		// Endpoints, and the retry works from them.
		return reconcile.Result{}, fmt.Errorf("endpoints %s: %w", key, err)
	}
	return reconcile.Result{}, nil
}
