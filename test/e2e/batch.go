package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// AddHost starts one more agent host, as a node joining the cluster, and
// waits until its Node is Ready. It is removed with the others.
func (c *Cluster) AddHost() *Host {
	c.t.Helper()
	i := len(c.Hosts)
	h := &Host{Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("%sh%d", nsPrefix, i), Address: fmt.Sprintf("%s%d", subnet, 10+i), c: c}
	h.Dir = filepath.Join(Base, h.Name)
	c.Hosts = append(c.Hosts, h)
	c.addHost(h.NS, h.Name, h.Address)
	h.writeConfig()
	h.Start()
	h.WaitReady()
	return h
}

// DeployJob creates in app a job Workload name of the echo image running
// args (["hostname"] exits 0, ["exit", "3"] exits 3) under restart policy,
// with policy as its job.
func (c *Cluster) DeployJob(app, name string, policy api.JobPolicy, restart string, args ...string) {
	c.t.Helper()
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = name, app
	w.Spec.Job = &policy
	w.Spec.Template.RestartPolicy = restart
	w.Spec.Template.TerminationGracePeriodSeconds = new(int64(2))
	w.Spec.Template.Labels = map[string]string{api.LabelApp: app, api.LabelWorkload: name}
	w.Spec.Template.Containers = []api.Container{{Name: "echo", Image: c.Image, Args: args}}
	if _, err := c.Admin.Create(context.Background(), w); err != nil {
		c.t.Fatalf("e2e: create job workload %s/%s: %v", app, name, err)
	}
}

// Jobs lists the runs of app.
func (c *Cluster) Jobs(app string) []*api.Job {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	objs, _, err := c.Admin.List(ctx, api.KindJob, client.ListOptions{App: app})
	if err != nil {
		c.t.Logf("e2e: list jobs of %s: %v", app, err)
		return nil
	}
	out := make([]*api.Job, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.Job))
	}
	return out
}
