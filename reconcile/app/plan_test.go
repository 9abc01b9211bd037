package app

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

// store stands in for the API: objects of one app namespace.
type store struct {
	app       *api.App
	workloads map[string]*api.Workload
	services  map[string]*api.Service
	pods      map[string]*api.Pod
	rev       int64
	vips      int
}

func (s *store) observed() ([]*api.Workload, []*api.Service) {
	return slices.Collect(maps.Values(s.workloads)), slices.Collect(maps.Values(s.services))
}

func (s *store) apply(p Plan) {
	for _, o := range p.Create {
		s.rev++
		o.Meta().UID = fmt.Sprintf("uid-%d", s.rev)
		o.Meta().ResourceVersion = s.rev
		s.put(o)
	}
	for _, u := range p.Update {
		s.rev++
		u.Object.Meta().ResourceVersion = s.rev
		s.put(u.Object)
	}
	for _, o := range p.Delete {
		switch o.(type) {
		case *api.Workload:
			delete(s.workloads, o.Meta().Name)
		case *api.Service:
			delete(s.services, o.Meta().Name)
		}
	}
}

func (s *store) put(o api.Object) {
	switch v := o.(type) {
	case *api.Workload:
		s.workloads[v.Metadata.Name] = v
	case *api.Service:
		if v.Spec.VIP == "" && !v.Spec.Headless { // the server allocates
			s.vips++
			v.Spec.VIP = fmt.Sprintf("10.96.0.%d", s.vips)
		}
		for i := range v.Spec.Ports {
			if v.Spec.External && v.Spec.Ports[i].NodePort == 0 {
				v.Spec.Ports[i].NodePort = int32(30000 + s.vips*10 + i)
			}
		}
		s.services[v.Metadata.Name] = v
	}
}

// TestPlan runs the scenario scripts in testdata. Commands:
//
//	app commit=C [workloads=(name:replicas:image,...)] [services=(name:port[:external],...)] [first-rejected=C]
//	reconcile
//	edit workload=N replicas=K | edit service=N port=P   (a manual API write)
//	foreign workload=N | foreign service=N               (an object the App does not own)
//	objects
//	wstatus name=N replicas=K updated=K available=K [generation=G] [observed=G]
//	    [template=HASH] [progressing=(Reason,msg)] [degraded=msg]
//	pod name=P workload=W [template=HASH] [crash] [unschedulable=msg] [failed] [pull] [running]
//	    [waiting=REASON] [stale-unschedulable] [owner=none|KIND] [terminating]
//	health
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &store{workloads: map[string]*api.Workload{}, services: map[string]*api.Service{}, pods: map[string]*api.Pod{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

func (s *store) run(t *testing.T, d *datadriven.TestData) string {
	str := func(key, def string) string {
		if a, ok := d.Arg(key); ok {
			return strings.Join(a.Vals, ", ")
		}
		return def
	}
	num := func(key string, def int) int32 {
		n, err := strconv.Atoi(str(key, strconv.Itoa(def)))
		if err != nil {
			d.Fatalf(t, "%s: %v", key, err)
		}
		return int32(n)
	}
	switch d.Cmd {
	case "app":
		if s.app == nil {
			s.app = api.KindApp.New().(*api.App)
			s.app.Metadata = api.ObjectMeta{Name: "shop", App: "shop", UID: "uid-shop"}
		}
		s.app.Metadata.Source = &api.Source{Repo: "git@example:deploy", Commit: str("commit", "c1"), Path: "apps/shop.cue"}
		s.app.Spec = api.AppSpec{}
		s.app.Status = api.AppStatus{}
		if c := str("first-rejected", ""); c != "" { // git sync made it to show its first commit rejected
			s.app.Status.AttemptedCommit, s.app.Status.LastSyncResult = c, api.SyncRejected
		}
		if a, ok := d.Arg("workloads"); ok {
			for _, v := range a.Vals {
				f := strings.Split(v, ":")
				n, _ := strconv.Atoi(f[1])
				s.app.Spec.Workloads = append(s.app.Spec.Workloads, api.AppWorkload{Name: f[0], Spec: api.WorkloadSpec{
					Replicas: int32(n),
					Template: api.PodTemplate{Containers: []api.Container{{Name: "main", Image: f[2], Ports: []api.ContainerPort{{Name: "http", Port: 8080}}}}},
				}})
			}
		}
		if a, ok := d.Arg("services"); ok {
			for _, v := range a.Vals {
				f := strings.Split(v, ":")
				n, _ := strconv.Atoi(f[1])
				s.app.Spec.Services = append(s.app.Spec.Services, api.AppService{Name: f[0], Spec: api.ServiceSpec{
					Ports:    []api.ServicePort{{Name: "http", Port: int32(n), TargetPort: api.FromString("http")}},
					External: len(f) > 2 && f[2] == "external",
				}})
			}
		}
		return "ok"
	case "reconcile":
		w, sv := s.observed()
		p := Compute(s.app, w, sv)
		s.apply(p)
		if out := p.String(); out != "" {
			return out
		}
		return "nothing to do"
	case "edit":
		if n := str("workload", ""); n != "" {
			s.workloads[n].Spec.Replicas = num("replicas", 0)
		}
		if n := str("service", ""); n != "" {
			s.services[n].Spec.Ports[0].Port = num("port", 0)
		}
		return "ok"
	case "foreign":
		if n := str("workload", ""); n != "" {
			w := api.KindWorkload.New().(*api.Workload)
			w.Metadata = api.ObjectMeta{Name: n, App: "shop", UID: "uid-foreign-" + n}
			w.Spec.Replicas = 1
			s.workloads[n] = w
		}
		if n := str("service", ""); n != "" {
			sv := api.KindService.New().(*api.Service)
			sv.Metadata = api.ObjectMeta{Name: n, App: "shop", UID: "uid-foreign-" + n,
				Owner: &api.OwnerRef{Kind: api.KindApp, Name: "other", UID: "uid-other"}}
			s.services[n] = sv
		}
		return "ok"
	case "objects":
		var out []string
		for _, n := range slices.Sorted(maps.Keys(s.workloads)) {
			w := s.workloads[n]
			out = append(out, fmt.Sprintf("workload %s replicas=%d image=%s owner=%s source=%s labels=%v", n, w.Spec.Replicas,
				imageOf(w), ownerOf(w), commitOf(w), w.Spec.Template.Labels))
		}
		for _, n := range slices.Sorted(maps.Keys(s.services)) {
			sv := s.services[n]
			var ports []string
			for _, p := range sv.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%d->%s/node:%d", p.Port, p.TargetPort, p.NodePort))
			}
			out = append(out, fmt.Sprintf("service %s vip=%s ports=%v selector=%v owner=%s source=%s", n, sv.Spec.VIP, ports,
				sv.Spec.Selector, ownerOf(sv), commitOf(sv)))
		}
		return strings.Join(out, "\n")
	case "wstatus":
		w := s.workloads[str("name", "")]
		w.Metadata.Generation = int64(num("generation", 1))
		w.Status = api.WorkloadStatus{ObservedGeneration: int64(num("observed", 1)), TemplateHash: str("template", ""),
			Replicas: num("replicas", 0), UpdatedReplicas: num("updated", 0),
			ReadyReplicas: num("available", 0), AvailableReplicas: num("available", 0)}
		reason, msg := "RolloutComplete", "done"
		if a, ok := d.Arg("progressing"); ok {
			reason, msg = a.Vals[0], a.Vals[1]
		}
		w.Status.Conditions = []api.Condition{{Type: api.WorkloadProgressing, Status: api.ConditionTrue, Reason: reason, Message: msg}}
		if m := str("degraded", ""); m != "" {
			w.Status.Conditions = append(w.Status.Conditions, api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Message: m})
		}
		return "ok"
	case "pod":
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: str("name", ""), App: "shop",
			Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: str("workload", "")}}
		switch k := str("owner", ""); k {
		case "":
		case "none":
			p.Metadata.Owner = nil
		default:
			p.Metadata.Owner.Kind = api.Kind(k)
		}
		if h := str("template", ""); h != "" {
			p.Metadata.Labels = map[string]string{api.LabelTemplateHash: h}
		}
		p.Spec.NodeName = "n1"
		if r := str("waiting", ""); r != "" {
			p.Status.Containers = []api.ContainerStatus{{Name: "main", State: api.ContainerState{Waiting: &api.WaitingState{Reason: r}}}}
		}
		if d.HasArg("running") {
			p.Status.Phase = api.PodRunning
			p.Status.Containers = []api.ContainerStatus{{Name: "main", State: api.ContainerState{Running: &api.RunningState{}}}}
		}
		if d.HasArg("stale-unschedulable") {
			p.Status.Conditions = []api.Condition{{Type: api.PodScheduled, Status: api.ConditionFalse, Message: "0/1 nodes available"}}
		}
		if d.HasArg("crash") || d.HasArg("pull") {
			reason := "CrashLoopBackOff"
			if d.HasArg("pull") {
				reason = "ImagePullBackOff"
			}
			p.Status.Containers = []api.ContainerStatus{{Name: "main", RestartCount: 7, State: api.ContainerState{Waiting: &api.WaitingState{Reason: reason}}}}
		}
		if m := str("unschedulable", ""); m != "" {
			p.Spec.NodeName = ""
			p.Status.Conditions = []api.Condition{{Type: api.PodScheduled, Status: api.ConditionFalse, Message: m}}
		}
		if d.HasArg("failed") {
			p.Status.Phase = api.PodFailed
			p.Status.Reason = "Evicted"
		}
		if d.HasArg("terminating") {
			now := time.Unix(1_700_000_000, 0)
			p.Metadata.DeletionRequestedAt = &now
		}
		s.pods[p.Metadata.Name] = p
		return "ok"
	case "health":
		w, _ := s.observed()
		h, msg := Health(s.app, w, slices.Collect(maps.Values(s.pods)))
		return h + ": " + msg
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func imageOf(w *api.Workload) string {
	if len(w.Spec.Template.Containers) == 0 {
		return "-"
	}
	return w.Spec.Template.Containers[0].Image
}

func ownerOf(o api.Object) string {
	if ow := o.Meta().Owner; ow != nil {
		return string(ow.Kind) + "/" + ow.Name
	}
	return "-"
}

func commitOf(o api.Object) string {
	if src := o.Meta().Source; src != nil {
		return src.Commit
	}
	return "-"
}
