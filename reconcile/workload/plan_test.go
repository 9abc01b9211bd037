package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

// sim is a tiny cluster for the scenario scripts: the plan's creates and
// deletes are applied to it, and commands stand in for the scheduler, the
// agents and time.
type sim struct {
	now  time.Time
	rnd  *rand.Rand
	w    *api.Workload
	pods map[string]*api.Pod
}

func newSim() *sim {
	return &sim{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), rnd: rand.New(rand.NewPCG(1, 2)), pods: map[string]*api.Pod{}}
}

func (s *sim) sorted() []*api.Pod {
	out := make([]*api.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *api.Pod) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out
}

// image returns the image of a pod or template, which the scripts use as a
// readable stand-in for the template hash.
func image(t *api.PodTemplate) string { return t.Containers[0].Image }

func (s *sim) reconcile() Plan {
	plan := Compute(s.w, s.sorted(), s.now, s.rnd)
	for _, p := range plan.Create {
		p.Metadata.UID = "uid-" + p.Metadata.Name
		p.Metadata.CreatedAt = s.now
		p.Status.Phase = api.PodPending
		s.pods[p.Metadata.Name] = p
	}
	for _, p := range plan.Delete {
		t := s.now
		s.pods[p.Metadata.Name].Metadata.DeletionRequestedAt = &t
	}
	if plan.StatusChanged {
		s.w.Status = plan.Status
	}
	return plan
}

func (s *sim) setReady(p *api.Pod, ready bool) {
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
		p.Status.Phase = api.PodRunning
		p.Status.Containers = nil
	}
	api.SetCondition(&p.Status.Conditions, api.Condition{Type: api.PodReady, Status: st, LastTransitionTime: s.now})
}

// TestPlan runs the scenario scripts in testdata. Commands:
//
//	workload replicas=N image=I [surge=S] [unavailable=U] [deadline=SECONDS] [ordered]
//	reconcile                 plan once and apply it
//	schedule [image=I]        bind unbound pods (of image I) to node n1
//	ready [image=I] [pods=(..)] [false]  set Ready on scheduled live pods
//	ready-one [image=I]       set Ready on the first scheduled live pod
//	                          (of I) that is not Ready, by name
//	crash image=I             containers of pods of I go CrashLoopBackOff
//	gone                      terminating pods finish and disappear
//	fail pod=P | image=I      a pod (the first live one of I) fails
//	advance D                 move the clock (Go duration)
//	converge [image=I]        reconcile, schedule, ready (pods of I, or
//	                          all), gone until nothing changes
//	pods                      list the pods
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newSim()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

func (s *sim) run(t *testing.T, d *datadriven.TestData) string {
	str := func(key, def string) string {
		if a, ok := d.Arg(key); ok {
			return a.SingleVal(t)
		}
		return def
	}
	matches := func(p *api.Pod) bool {
		if img := str("image", ""); img != "" && image(&p.Spec.PodTemplate) != img {
			return false
		}
		if a, ok := d.Arg("pods"); ok && !slices.Contains(a.Vals, p.Metadata.Name) {
			return false
		}
		return p.Metadata.DeletionRequestedAt == nil
	}
	switch d.Cmd {
	case "workload":
		if s.w == nil {
			s.w = &api.Workload{TypeMeta: api.TypeMeta{Kind: "Workload"}}
			s.w.Metadata = api.ObjectMeta{Name: "web", App: "shop", UID: "uid-web"}
		}
		n, _ := strconv.Atoi(str("replicas", "1"))
		s.w.Spec.Replicas = int32(n)
		s.w.Spec.Template = api.PodTemplate{
			Labels:     map[string]string{api.LabelApp: "shop", api.LabelWorkload: "web"},
			Containers: []api.Container{{Name: "main", Image: str("image", "v1")}},
		}
		s.w.Spec.Strategy = api.RolloutStrategy{}
		if v := str("surge", ""); v != "" {
			s.w.Spec.Strategy.MaxSurge = intOrString(v)
		}
		if v := str("unavailable", ""); v != "" {
			s.w.Spec.Strategy.MaxUnavailable = intOrString(v)
		}
		if v := str("deadline", ""); v != "" {
			n, _ := strconv.Atoi(v)
			s.w.Spec.Strategy.ProgressDeadlineSeconds = int32(n)
		}
		s.w.Spec.Ordered = d.HasArg("ordered")
		s.w.Metadata.Generation++
		return fmt.Sprintf("generation %d template %s", s.w.Metadata.Generation, TemplateHash(&s.w.Spec.Template))
	case "reconcile":
		return s.describePlan(s.reconcile())
	case "schedule":
		k := 0
		for _, p := range s.sorted() {
			if p.Spec.NodeName == "" && matches(p) {
				p.Spec.NodeName = "n1"
				k++
			}
		}
		return fmt.Sprintf("%d scheduled", k)
	case "unschedulable":
		for _, p := range s.sorted() {
			if p.Spec.NodeName == "" && matches(p) {
				api.SetCondition(&p.Status.Conditions, api.Condition{Type: api.PodScheduled, Status: api.ConditionFalse,
					Reason: "Unschedulable", Message: "0/1 nodes available: 1 insufficient memory"})
			}
		}
		return "ok"
	case "ready":
		k := 0
		for _, p := range s.sorted() {
			if p.Spec.NodeName != "" && matches(p) {
				s.setReady(p, !d.HasArg("false"))
				k++
			}
		}
		return fmt.Sprintf("%d changed", k)
	case "crash":
		for _, p := range s.sorted() {
			if p.Spec.NodeName != "" && matches(p) {
				s.setReady(p, false)
				p.Status.Phase = api.PodRunning
				p.Status.Containers = []api.ContainerStatus{{Name: "main", RestartCount: 4,
					State: api.ContainerState{Waiting: &api.WaitingState{Reason: "CrashLoopBackOff"}}}}
			}
		}
		return "ok"
	case "ready-one":
		for _, p := range s.sorted() {
			if p.Spec.NodeName != "" && !api.IsPodReady(p) && matches(p) {
				s.setReady(p, true)
				return p.Metadata.Name + " ready"
			}
		}
		return "none"
	case "fail":
		if name := str("pod", ""); name != "" {
			s.pods[name].Status.Phase = api.PodFailed
			return "ok"
		}
		for _, p := range s.sorted() {
			if p.Status.Phase != api.PodFailed && matches(p) {
				p.Status.Phase = api.PodFailed
				return p.Metadata.Name + " failed"
			}
		}
		return "none"
	case "gone":
		k := 0
		for name, p := range s.pods {
			if p.Metadata.DeletionRequestedAt != nil {
				delete(s.pods, name)
				k++
			}
		}
		return fmt.Sprintf("%d gone", k)
	case "advance":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		s.now = s.now.Add(dur)
		return "now +" + s.now.Sub(newSim().now).String()
	case "converge":
		var out []string
		for round := 1; round <= 50; round++ {
			plan := s.reconcile()
			changed := len(plan.Create) + len(plan.Delete)
			for _, p := range s.sorted() {
				if p.Metadata.DeletionRequestedAt != nil {
					delete(s.pods, p.Metadata.Name)
					continue
				}
				if p.Spec.NodeName == "" {
					p.Spec.NodeName = "n1"
					changed++
				}
				if !api.IsPodReady(p) && matches(p) {
					s.setReady(p, true)
					changed++
				}
			}
			out = append(out, fmt.Sprintf("round %d: +%d -%d %s", round, len(plan.Create), len(plan.Delete), s.census()))
			if changed == 0 {
				break
			}
			s.now = s.now.Add(time.Second)
		}
		return strings.Join(out, "\n")
	case "pods":
		var out []string
		for _, p := range s.sorted() {
			out = append(out, describePod(p))
		}
		return strings.Join(out, "\n")
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func intOrString(v string) api.IntOrString {
	if n, err := strconv.Atoi(v); err == nil {
		return api.FromInt(int32(n))
	}
	return api.FromString(v)
}

// census counts live pods by image and readiness: "v1=2/3 v2=1/1".
func (s *sim) census() string {
	total, ready := map[string]int{}, map[string]int{}
	for _, p := range s.pods {
		if p.Metadata.DeletionRequestedAt != nil {
			continue
		}
		img := image(&p.Spec.PodTemplate)
		total[img]++
		if api.IsPodReady(p) {
			ready[img]++
		}
	}
	var out []string
	for img, n := range total {
		out = append(out, fmt.Sprintf("%s=%d/%d", img, ready[img], n))
	}
	slices.Sort(out)
	return "ready/live " + strings.Join(out, " ")
}

func describePod(p *api.Pod) string {
	state := []string{image(&p.Spec.PodTemplate)}
	if p.Spec.NodeName == "" {
		state = append(state, "unscheduled")
	}
	if api.IsPodReady(p) {
		state = append(state, "ready")
	}
	if p.Status.Phase == api.PodFailed {
		state = append(state, "failed")
	}
	if p.Metadata.DeletionRequestedAt != nil {
		state = append(state, "terminating")
	}
	return p.Metadata.Name + " " + strings.Join(state, " ")
}

func (s *sim) describePlan(plan Plan) string {
	var out []string
	for _, p := range plan.Create {
		out = append(out, "create "+p.Metadata.Name+" "+image(&p.Spec.PodTemplate))
	}
	for _, p := range plan.Delete {
		out = append(out, "delete "+strings.TrimSuffix(describePod(p), " terminating"))
	}
	st := plan.Status
	out = append(out, fmt.Sprintf("status replicas=%d updated=%d ready=%d available=%d", st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas))
	for _, c := range st.Conditions {
		out = append(out, fmt.Sprintf("  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	for _, e := range plan.Events {
		out = append(out, fmt.Sprintf("event %s %s: %s", e.Type, e.Reason, e.Message))
	}
	if plan.RequeueAfter > 0 {
		out = append(out, "requeue after "+plan.RequeueAfter.String())
	}
	out = append(out, s.census())
	return strings.Join(out, "\n")
}
