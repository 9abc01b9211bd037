package endpoints

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

type sim struct {
	svc  *api.Service
	pods map[string]*api.Pod
	ep   *api.Endpoints
}

// TestPlan runs the scenario scripts in testdata. Commands:
//
//	service ports=(name:port:target,...) [selector=(k=v,...)]
//	pod name=P [app=A] [labels=(k=v)] [ip=IP] [node=N] [ready] [terminating] [failed] [ports=(name:port,...)]
//	delete-pod name=P
//	endpoints-without-owner [stale]  Endpoints made by hand (no owner), with
//	                                 the right addresses or (stale) none
//	reconcile
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &sim{pods: map[string]*api.Pod{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

func kv(d *datadriven.TestData, key string, def map[string]string) map[string]string {
	a, ok := d.Arg(key)
	if !ok {
		return def
	}
	m := map[string]string{}
	for _, v := range a.Vals {
		if k, val, _ := strings.Cut(v, "="); k != "" {
			m[k] = val
		}
	}
	return m
}

func (s *sim) run(t *testing.T, d *datadriven.TestData) string {
	str := func(key, def string) string {
		if a, ok := d.Arg(key); ok {
			return a.SingleVal(t)
		}
		return def
	}
	switch d.Cmd {
	case "service":
		s.svc = api.KindService.New().(*api.Service)
		s.svc.Metadata = api.ObjectMeta{Name: "web", App: "shop", UID: "uid-web"}
		s.svc.Spec.Selector = kv(d, "selector", map[string]string{api.LabelWorkload: "web"})
		if a, ok := d.Arg("ports"); ok {
			for _, v := range a.Vals {
				f := strings.Split(v, ":")
				port, _ := strconv.Atoi(f[1])
				sp := api.ServicePort{Name: f[0], Port: int32(port)}
				if len(f) > 2 {
					if n, err := strconv.Atoi(f[2]); err == nil {
						sp.TargetPort = api.FromInt(int32(n))
					} else {
						sp.TargetPort = api.FromString(f[2])
					}
				}
				s.svc.Spec.Ports = append(s.svc.Spec.Ports, sp)
			}
		}
		return "ok"
	case "pod":
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: str("name", ""), App: str("app", "shop"),
			Labels: kv(d, "labels", map[string]string{api.LabelWorkload: "web"})}
		c := api.Container{Name: "main", Image: "img"}
		if a, ok := d.Arg("ports"); ok {
			for _, v := range a.Vals {
				name, port, _ := strings.Cut(v, ":")
				n, _ := strconv.Atoi(port)
				c.Ports = append(c.Ports, api.ContainerPort{Name: name, Port: int32(n)})
			}
		}
		p.Spec.Containers = []api.Container{c, {Name: "sidecar", Image: "img", Ports: []api.ContainerPort{{Name: "metrics", Port: 9100}}}}
		p.Spec.NodeName = str("node", "n1")
		p.Status.PodIP = str("ip", "")
		if d.HasArg("ready") {
			p.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue}}
		}
		if d.HasArg("terminating") {
			p.Metadata.DeletionRequestedAt = new(p.Metadata.CreatedAt)
		}
		if d.HasArg("failed") {
			p.Status.Phase = api.PodFailed
		}
		s.pods[p.Metadata.Name] = p
		return "ok"
	case "delete-pod":
		delete(s.pods, str("name", ""))
		return "ok"
	case "endpoints-without-owner":
		ep := api.KindEndpoints.New().(*api.Endpoints)
		ep.Metadata = api.ObjectMeta{Name: s.svc.Metadata.Name, App: s.svc.Metadata.App, ResourceVersion: 7}
		if !d.HasArg("stale") {
			var pods []*api.Pod
			for _, p := range s.pods {
				pods = append(pods, p)
			}
			ep.Spec.Addresses = Addresses(s.svc, pods)
		}
		s.ep = ep
		return fmt.Sprintf("%d addresses", len(ep.Spec.Addresses))
	case "reconcile":
		// In name order, so that runs are reproducible.
		var pods []*api.Pod
		for _, p := range s.pods {
			pods = append(pods, p)
		}
		slices.SortFunc(pods, func(a, b *api.Pod) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
		plan := Compute(s.svc, pods, s.ep)
		verb, ep := "unchanged", s.ep
		switch {
		case plan.Create != nil:
			verb, ep = "create", plan.Create
		case plan.Update != nil:
			verb, ep = "update", plan.Update
		}
		s.ep = ep
		owner := "none"
		if o := ep.Metadata.Owner; o != nil {
			owner = fmt.Sprintf("%s/%s uid=%s", o.Kind, o.Name, o.UID)
		}
		out := []string{fmt.Sprintf("%s endpoints %s/%s owner=%s", verb, ep.Metadata.App, ep.Metadata.Name, owner)}
		if plan.Update != nil {
			out[0] += fmt.Sprintf(" resourceVersion=%d", ep.Metadata.ResourceVersion)
		}
		for _, a := range ep.Spec.Addresses {
			var ports []string
			for _, p := range a.Ports {
				ports = append(ports, fmt.Sprintf("%s=%d/%s", p.Name, p.Port, p.Protocol))
			}
			line := fmt.Sprintf("  %s %s node=%s ready=%v ports=%s", a.Pod, a.IP, a.Node, a.Ready, strings.Join(ports, ","))
			if a.Terminating {
				line += " terminating"
			}
			out = append(out, line)
		}
		return strings.Join(out, "\n")
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}
