package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// EchoApp is the app of the echo workload and service.
const EchoApp = "e2e"

// DeployEcho creates the echo Service and a Workload of replicas echo pods
// in app EchoApp (see DeployApp).
func (c *Cluster) DeployEcho(replicas int32) {
	c.t.Helper()
	c.DeployApp(EchoApp, "echo", replicas)
}

// DeployApp creates in app a Service name (port 80 to 8080) and a Workload
// name of replicas pods of the echo image labelled run=name: HTTP on 8080,
// ready while GET /healthz answers 200 (probed every second, unready at
// the first failure; see testdata/echo for the readiness switch).
func (c *Cluster) DeployApp(app, name string, replicas int32) {
	c.t.Helper()
	ctx := context.Background()
	labels := map[string]string{"run": name}
	svc := api.KindService.New().(*api.Service)
	svc.Metadata.Name, svc.Metadata.App = name, app
	svc.Spec.Selector = labels
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromInt(8080)}}
	if _, err := c.Admin.Create(ctx, svc); err != nil {
		c.t.Fatalf("e2e: create service %s/%s: %v", app, name, err)
	}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = name, app
	w.Spec.Replicas = replicas
	w.Spec.Template.Labels = labels
	w.Spec.Template.TerminationGracePeriodSeconds = new(int64(2))
	w.Spec.Template.Containers = []api.Container{{
		Name: "echo", Image: c.Image,
		Ports:     []api.ContainerPort{{Name: "http", Port: 8080}},
		Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromInt(8080)}, PeriodSeconds: 1, FailureThreshold: 1},
	}}
	if _, err := c.Admin.Create(ctx, w); err != nil {
		c.t.Fatalf("e2e: create workload %s/%s: %v", app, name, err)
	}
}

// Pods lists the echo pods.
func (c *Cluster) Pods() []*api.Pod {
	c.t.Helper()
	return c.AppPods(EchoApp)
}

// AppPods lists the pods of app, by name.
func (c *Cluster) AppPods(app string) []*api.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	objs, _, err := c.Admin.List(ctx, api.KindPod, client.ListOptions{App: app})
	if err != nil {
		c.t.Logf("e2e: list pods of %s: %v", app, err)
		return nil
	}
	out := make([]*api.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.Pod))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// ReadyPods returns the echo pods that run, are ready and not being
// deleted, by node.
func ReadyPods(pods []*api.Pod) map[string][]*api.Pod {
	out := map[string][]*api.Pod{}
	for _, p := range pods {
		c := api.FindCondition(p.Status.Conditions, api.PodReady)
		if p.Metadata.DeletionRequestedAt == nil && p.Status.Phase == api.PodRunning && c != nil && c.Status == api.ConditionTrue && p.Status.PodIP != "" {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
		}
	}
	return out
}

// Spread renders pods per node, such as "h0=2 h1=2 h2=2 (6 pods)".
func Spread(pods []*api.Pod) string {
	by := ReadyPods(pods)
	var nodes []string
	for n := range by {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s=%d ", n, len(by[n]))
	}
	fmt.Fprintf(&b, "(%d pods)", len(pods))
	return b.String()
}

// PodNetNS is the pod's network namespace file on its host.
func (c *Cluster) PodNetNS(p *api.Pod) string {
	return filepath.Join(Base, p.Spec.NodeName, "run", "netns", p.Metadata.UID)
}

// Get requests http://addr/ from inside the network namespace of pod
// from, and returns the answer: the answering pod's host name and the
// source address it saw.
func (c *Cluster) Get(from *api.Pod, addr string) (host, source string, err error) {
	return get(httpClientIn(c.PodNetNS(from)), addr)
}

// GetFromPort is Get with the connection sent from source port port of
// the pod (see dialerFromPort).
func (c *Cluster) GetFromPort(from *api.Pod, addr string, port int) (host, source string, err error) {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialerFromPort(c.PodNetNS(from), port), DisableKeepAlives: true}}
	return get(hc, addr)
}

func get(hc *http.Client, addr string) (host, source string, err error) {
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q: want HOST SOURCE", b)
	}
	return f[0], f[1], nil
}

// Post sends POST http://addr+path (path such as "/unready") from inside
// the network namespace of pod from and fails unless it answers 200.
func (c *Cluster) Post(from *api.Pod, addr, path string) error {
	resp, err := httpClientIn(c.PodNetNS(from)).Post("http://"+addr+path, "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s%s: %s: %s", addr, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// ReadyEndpoints returns the ready addresses of the echo service.
func (c *Cluster) ReadyEndpoints(ctx context.Context) ([]api.EndpointAddress, error) {
	return c.AppReadyEndpoints(ctx, EchoApp, "echo")
}

// AppReadyEndpoints returns the ready addresses of service app/name.
func (c *Cluster) AppReadyEndpoints(ctx context.Context, app, name string) ([]api.EndpointAddress, error) {
	o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindEndpoints, App: app, Name: name})
	if err != nil {
		return nil, err
	}
	var out []api.EndpointAddress
	for _, a := range o.(*api.Endpoints).Spec.Addresses {
		if a.Ready {
			out = append(out, a)
		}
	}
	return out, nil
}

// EchoVIP is the echo service's virtual IP.
func (c *Cluster) EchoVIP() string {
	c.t.Helper()
	return c.VIP(EchoApp, "echo")
}

// VIP is service app/name's virtual IP.
func (c *Cluster) VIP(app, name string) string {
	c.t.Helper()
	o, err := c.Admin.Get(context.Background(), api.Key{Kind: api.KindService, App: app, Name: name})
	if err != nil {
		c.t.Fatalf("e2e: get service %s/%s: %v", app, name, err)
	}
	vip := o.(*api.Service).Spec.VIP
	if vip == "" {
		c.t.Fatalf("e2e: service %s/%s has no VIP", app, name)
	}
	return vip
}
