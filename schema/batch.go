package schema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// dJob is a pod group's job field, defaults filled in by the schema.
type dJob struct {
	Completions      int32  `json:"completions"`
	Parallelism      int32  `json:"parallelism"`
	BackoffLimit     int32  `json:"backoffLimit"`
	ActiveDeadline   int64  `json:"activeDeadline"`
	Concurrency      string `json:"concurrency"`
	History          int32  `json:"history"`
	StartingDeadline int64  `json:"startingDeadline"`
	TimeZone         string `json:"timeZone"`
	Suspend          bool   `json:"suspend"`
}

// defaultJob is the job of a group with a schedule and no job field: the
// schema's defaults.
var defaultJob = dJob{Completions: 1, Parallelism: 1, BackoffLimit: api.DefaultBackoffLimit,
	Concurrency: "forbid", History: api.DefaultHistoryLimit}

// batch converts a group's job, schedule, everyNode and dependsOn fields
// into w, and refuses the combinations that make no sense.
func (c *converter) batch(w *api.AppWorkload, g dGroup, wp string, sub func(...string) []string) {
	c.note(wp+".spec.job", sub("job")...)
	c.note(wp+".spec.job.schedule", sub("schedule")...)
	c.note(wp+".spec.job.concurrency", sub("job", "concurrency")...)
	c.note(wp+".spec.everyNode", sub("everyNode")...)
	c.note(wp+".spec.template.restartPolicy", sub("restartPolicy")...)
	for i := range g.DependsOn {
		c.note(fmt.Sprintf("%s.spec.dependsOn[%d]", wp, i), sub("dependsOn")...)
	}
	w.Spec.DependsOn = g.DependsOn
	w.Spec.EveryNode = g.EveryNode
	t := &w.Spec.Template
	if g.EveryNode {
		if g.Replicas != nil {
			c.fail(sub("replicas"), "an everyNode group runs one pod on every node, not replicas: remove replicas")
		}
		w.Spec.Replicas = 0
	}
	j := g.Job
	if j == nil && g.Schedule != "" {
		d := defaultJob
		j = &d
	}
	if j == nil {
		// A pod that ends is replaced at once, with no back-off: a group
		// that is not a job restarts its containers in place, as
		// Kubernetes' Deployments and DaemonSets allow only Always. The
		// descriptor refuses the others; the API does not, so that
		// workloads stored before keep taking status writes.
		if rp := g.RestartPolicy; rp != "" && rp != api.RestartAlways {
			c.fail(sub("restartPolicy"), "%q: the pods of a group that is not a job run until replaced: want Always (for work that runs to completion, make the group a job)", rp)
		}
		return
	}
	if g.Replicas != nil {
		c.fail(sub("replicas"), "a job runs job.completions pods, not replicas: remove replicas")
	}
	if g.EveryNode {
		c.fail(sub("everyNode"), "a job cannot also run on every node: remove everyNode or job")
	}
	w.Spec.Replicas = 0
	if g.RestartPolicy == "" { // api.Validate refuses "Always"
		t.RestartPolicy = api.RestartOnFailure
	}
	backoff, history := j.BackoffLimit, j.History
	w.Spec.Job = &api.JobPolicy{
		Completions:             j.Completions,
		Parallelism:             j.Parallelism,
		BackoffLimit:            &backoff,
		ActiveDeadlineSeconds:   j.ActiveDeadline,
		Schedule:                g.Schedule,
		TimeZone:                j.TimeZone,
		Concurrency:             concurrencyPolicy(j.Concurrency),
		HistoryLimit:            &history,
		StartingDeadlineSeconds: j.StartingDeadline,
		Suspend:                 j.Suspend,
	}
	if g.Schedule == "" && (j.TimeZone != "" || j.StartingDeadline != 0) {
		// api.Validate makes the same check, at spec.job.schedule and in
		// its own words (startingDeadlineSeconds): one error, this one.
		c.note(wp+".spec.job.schedule", sub("job")...)
		c.fail(sub("job"), "timeZone and startingDeadline apply to a cron job: add a schedule or remove them")
	}
}

// concurrencyPolicy maps the descriptor's "forbid" to the API's "Forbid".
func concurrencyPolicy(s string) string {
	if s == "" {
		return api.ConcurrencyForbid
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// dependencies checks the pod groups' dependsOn within the app (every
// name a group of the app, no cycle) and sets the app's dependsOn.
func (c *converter) dependencies(app *api.App, d dApp) {
	app.Spec.DependsOn = d.DependsOn
	for i := range d.DependsOn {
		c.note(fmt.Sprintf("spec.dependsOn[%d]", i), "dependsOn")
	}
	for _, dep := range d.DependsOn {
		if dep == c.app {
			c.fail([]string{"dependsOn"}, "app %s depends on itself: remove %q", c.app, dep)
		}
	}
	graph := map[string][]string{}
	for g, grp := range d.Pods {
		for _, dep := range grp.DependsOn {
			if _, ok := d.Pods[dep]; !ok {
				c.fail([]string{"pods", g, "dependsOn"}, "pod group %s depends on %q, which app %s does not have (its groups: %s)",
					g, dep, c.app, strings.Join(sortedKeys(d.Pods), ", "))
				continue
			}
			graph[g] = append(graph[g], dep)
		}
	}
	if cyc := Cycle(graph); cyc != nil {
		c.fail([]string{"pods", cyc[0], "dependsOn"}, "pod groups depend on each other in a cycle: %s; remove one of these dependsOn entries",
			strings.Join(cyc, " -> "))
	}
}

// Cycle returns a cycle of graph (node -> the nodes it depends on) as a
// path whose last element is its first ("a", "b", "a"), or nil. Nodes are
// visited in name order, so the answer is stable.
func Cycle(graph map[string][]string) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		deps := slices.Clone(graph[n])
		slices.Sort(deps)
		for _, m := range deps {
			switch state[m] {
			case onPath:
				i := slices.Index(path, m)
				return append(slices.Clone(path[i:]), m)
			case unseen:
				if cyc := visit(m); cyc != nil {
					return cyc
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range sortedKeys(graph) {
		if state[n] == unseen {
			if cyc := visit(n); cyc != nil {
				return cyc
			}
		}
	}
	return nil
}

// refuseAppCycles refuses every valid app on a cycle of dependsOn between
// apps: each gets an error at its dependsOn field naming the cycle.
func refuseAppCycles(res *Result, caches map[string]*appCache, opts LoadOptions) {
	for {
		graph := map[string][]string{}
		for _, a := range res.Apps {
			if a.Valid() {
				graph[a.Name] = a.App.Spec.DependsOn
			}
		}
		cyc := Cycle(graph)
		if cyc == nil {
			return
		}
		on := map[string]bool{}
		for _, n := range cyc {
			on[n] = true
		}
		for i := range res.Apps {
			a := &res.Apps[i]
			if !on[a.Name] {
				continue
			}
			e := caches[a.Name].dependsOn
			e.Message = fmt.Sprintf("apps depend on each other in a cycle: %s; remove one of these dependsOn entries", strings.Join(cyc, " -> "))
			a.Errors = append(a.Errors, opts.displayError(e))
			a.App = nil
		}
	}
}

// stampDependencies records in each valid app the revision of each of its
// dependencies that this tree declares (api.AppSpec.DependsOnSpecs).
func stampDependencies(res *Result) {
	specs := map[string]string{}
	for _, a := range res.Apps {
		if a.Valid() {
			specs[a.Name] = api.DependencySpecHash(&a.App.Spec)
		}
	}
	for i := range res.Apps {
		a := &res.Apps[i]
		if !a.Valid() || len(a.App.Spec.DependsOn) == 0 {
			continue
		}
		m := map[string]string{}
		for _, d := range a.App.Spec.DependsOn {
			if h, ok := specs[d]; ok {
				m[d] = h
			}
		}
		if len(m) > 0 {
			app := *a.App // the loader's cached app stays as it was
			app.Spec.DependsOnSpecs = m
			a.App = &app
		}
	}
}

func (c *appCache) hasDependencies() bool { return c.app != nil && len(c.app.Spec.DependsOn) > 0 }

// reportDependents reports every app with dependencies as evaluated, with
// its result after the stages that look at every app: a dependency that
// changed changes the dependent's result (its dependsOnSpecs, a cycle)
// even when the dependent's files did not change, and the evaluation
// sandbox's parent learns results only from what is reported.
func reportDependents(res *Result, caches map[string]*appCache, opts LoadOptions) {
	added := false
	for _, a := range res.Apps {
		if !caches[a.Name].hasDependencies() {
			continue
		}
		if !slices.Contains(res.Evaluated, a.Name) {
			res.Evaluated = append(res.Evaluated, a.Name)
			added = true
		}
		if opts.Evaluated != nil {
			opts.Evaluated(a)
		}
	}
	if added {
		slices.Sort(res.Evaluated)
	}
}
