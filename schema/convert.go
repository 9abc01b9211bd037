package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/distribution/reference"
	"slices"
	"sort"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Labels every pod and service selector of an app carries.
const (
	LabelApp      = "capstan.io/app"
	LabelWorkload = "capstan.io/workload"
)

// The descriptor as Go values, decoded from the JSON of an app that
// passed the schema: every default is filled in, every type is right.
type (
	dApp struct {
		Pods      map[string]dGroup `json:"pods"`
		DependsOn []string          `json:"dependsOn"`
		Rollback  string            `json:"rollback"`
		Preview   *struct {
			Enabled  bool   `json:"enabled"`
			TTL      string `json:"ttl"`
			Replicas int32  `json:"replicas"`
		} `json:"preview"`
		Secrets map[string]struct {
			From string `json:"from"`
		} `json:"secrets"`
	}
	dGroup struct {
		Replicas         *int32                `json:"replicas"`
		Containers       map[string]dContainer `json:"containers"`
		Volumes          map[string]dVolume    `json:"volumes"`
		Ordered          bool                  `json:"ordered"`
		RestartPolicy    string                `json:"restartPolicy"`
		NodeSelector     map[string]string     `json:"nodeSelector"`
		Labels           map[string]string     `json:"labels"`
		Strategy         dStrategy             `json:"strategy"`
		TerminationGrace int64                 `json:"terminationGrace"`
		Service          *dService             `json:"service"`
		Files            map[string]dFile      `json:"files"`
		Job              *dJob                 `json:"job"`
		Schedule         string                `json:"schedule"`
		EveryNode        bool                  `json:"everyNode"`
		DependsOn        []string              `json:"dependsOn"`
	}
	dVolume struct {
		Persistent *struct {
			Size    json.RawMessage `json:"size"`
			Reclaim string          `json:"reclaim"`
		} `json:"persistent"`
	}
	dStrategy struct {
		MaxSurge         api.IntOrString `json:"maxSurge"`
		MaxUnavailable   api.IntOrString `json:"maxUnavailable"`
		ProgressDeadline int32           `json:"progressDeadline"`
	}
	dContainer struct {
		Image      string                     `json:"image"`
		PullPolicy string                     `json:"pullPolicy"`
		Command    []string                   `json:"command"`
		Args       []string                   `json:"args"`
		Env        map[string]json.RawMessage `json:"env"`
		WorkingDir string                     `json:"workingDir"`
		Ports      map[string]json.RawMessage `json:"ports"`
		Resources  *dResources                `json:"resources"`
		Readiness  *dProbe                    `json:"readiness"`
		Liveness   *dProbe                    `json:"liveness"`
		Mounts     map[string]json.RawMessage `json:"mounts"`
	}
	dContainerPort struct {
		Port     int32  `json:"port"`
		Protocol string `json:"protocol"`
		HostPort int32  `json:"hostPort"`
	}
	dMount struct {
		Path     string `json:"path"`
		ReadOnly bool   `json:"readOnly"`
	}
	dResources struct {
		CPU      json.RawMessage `json:"cpu"`
		Memory   json.RawMessage `json:"memory"`
		Requests *dResourceList  `json:"requests"`
		Limits   *dResourceList  `json:"limits"`
	}
	dResourceList struct {
		CPU    json.RawMessage `json:"cpu"`
		Memory json.RawMessage `json:"memory"`
	}
	dProbe struct {
		HTTP *struct {
			Path string          `json:"path"`
			Port api.IntOrString `json:"port"`
		} `json:"http"`
		TCP *struct {
			Port api.IntOrString `json:"port"`
		} `json:"tcp"`
		Exec *struct {
			Command []string `json:"command"`
		} `json:"exec"`
		InitialDelay     int32 `json:"initialDelay"`
		Period           int32 `json:"period"`
		Timeout          int32 `json:"timeout"`
		FailureThreshold int32 `json:"failureThreshold"`
		SuccessThreshold int32 `json:"successThreshold"`
	}
	dService struct {
		Ports    map[string]json.RawMessage `json:"ports"`
		External bool                       `json:"external"`
		Headless bool                       `json:"headless"`
	}
	dServicePort struct {
		Port     int32            `json:"port"`
		Target   *api.IntOrString `json:"target"`
		Protocol string           `json:"protocol"`
	}
)

// converter turns one app's validated value into an api.App. It records
// which descriptor path each API path came from, so that api.Validate's
// errors can be reported where the user wrote the field. It knows nothing
// of positions: its problems name descriptor paths, and the positioning
// stage (position.go) places them.
type converter struct {
	app   string
	desc  map[string][]string // API path -> descriptor path below the app
	probs []problem
	// refs are the files to read from the repository (podfiles.go);
	// workloads counts the workloads converted so far.
	refs      []fromRef
	workloads int
	// secrets declared by the app; secretRefs are the references to
	// them, and containers counts the containers of the current group
	// (secretfiles.go).
	secrets    map[string]bool
	secretRefs []secretRef
	containers int
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isObject(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '{'
}

// convert builds the App from data, the JSON of the app's value after the
// schema accepted it.
func convert(name string, data []byte) (*api.App, *converter, error) {
	var d dApp
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, &converter{app: name, desc: map[string][]string{}}, fmt.Errorf("decode app %s: %w", name, err)
	}
	app, c := convertApp(name, d)
	return app, c, nil
}

// convertApp builds the App from the decoded descriptor d.
func convertApp(name string, d dApp) (*api.App, *converter) {
	c := &converter{app: name, desc: map[string][]string{}}
	app := api.KindApp.New().(*api.App)
	app.Metadata.Name = name
	app.Metadata.App = name
	c.appSecrets(app, d)
	for _, g := range sortedKeys(d.Pods) {
		c.group(app, g, d.Pods[g])
	}
	c.derivedNames(app)
	c.dependencies(app, d)
	if p := d.Preview; p != nil {
		// Kept when off too: it opts the app out of a repository's
		// previews of every app.
		app.Spec.Preview = &api.AppPreview{Enabled: p.Enabled, TTL: p.TTL, Replicas: p.Replicas}
		c.note("spec.preview", "preview")
	}
	if d.Rollback == api.RollbackAuto {
		app.Spec.Rollback = api.RollbackAuto
		c.note("spec.rollback", "rollback")
	}
	return app, c
}

func (c *converter) note(apiPath string, desc ...string) { c.desc[apiPath] = desc }

// fail records an error of the descriptor at desc (below the app).
func (c *converter) fail(desc []string, format string, args ...any) {
	c.probs = append(c.probs, problem{path: desc, msg: fmt.Sprintf(format, args...)})
}

// validation maps api.Validate's field errors to the descriptor path of
// the longest API path the converter noted, leaving out those at a path
// where the converter already failed.
func (c *converter) validation(err error) []problem {
	if err == nil {
		return nil
	}
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		return []problem{{msg: err.Error()}}
	}
	var out []problem
	for _, fe := range ve.Fields {
		var desc []string
		for p := fe.Path; p != ""; p = parentPath(p) {
			if d, ok := c.desc[p]; ok {
				desc = d
				break
			}
		}
		// A field the converter refused (a size too large to parse) is
		// left zero: Validate's complaint about that zero would mislead.
		if desc != nil && slices.ContainsFunc(c.probs, func(p problem) bool { return slices.Equal(p.path, desc) }) {
			continue
		}
		out = append(out, problem{path: desc, msg: fe.Message})
	}
	return out
}

// parentPath drops the last element of "a.b[1].c": "a.b[1]", then "a.b".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// surge keeps a maxSurge of 0 the user wrote: the API cannot tell the
// number 0 from unset (the default, 25%), so it is written as "0%".
func surge(v api.IntOrString) api.IntOrString {
	if !v.IsString && v.IntVal == 0 {
		return api.FromString("0%")
	}
	return v
}

// isZeroCount reports whether a count is 0 whatever the replicas: 0 or
// "0%".
func isZeroCount(v api.IntOrString) bool {
	if v.IsString {
		return v.StrVal == "0%"
	}
	return v.IntVal == 0
}

func (c *converter) group(app *api.App, name string, g dGroup) {
	desc := []string{"pods", name}
	sub := func(s ...string) []string { return append(append([]string{}, desc...), s...) }
	wp := fmt.Sprintf("spec.workloads[%d]", len(app.Spec.Workloads))
	tp := wp + ".spec.template"
	c.note(wp, desc...)
	c.note(wp+".spec.replicas", sub("replicas")...)
	c.note(tp+".labels", sub("labels")...)
	c.note(tp+".restartPolicy", sub("restartPolicy")...)
	c.note(tp+".nodeSelector", sub("nodeSelector")...)
	c.note(tp+".terminationGracePeriodSeconds", sub("terminationGrace")...)
	c.note(wp+".spec.strategy.maxSurge", sub("strategy", "maxSurge")...)
	c.note(wp+".spec.strategy.maxUnavailable", sub("strategy", "maxUnavailable")...)
	c.note(wp+".spec.strategy.progressDeadlineSeconds", sub("strategy", "progressDeadline")...)

	w := api.AppWorkload{Name: name}
	w.Spec.Replicas = 1
	if g.Replicas != nil {
		w.Spec.Replicas = *g.Replicas
	}
	if isZeroCount(g.Strategy.MaxSurge) && isZeroCount(g.Strategy.MaxUnavailable) {
		c.fail(sub("strategy", "maxSurge"), "maxSurge and maxUnavailable are both 0, so a rollout could neither add a pod nor remove one: "+
			"set maxUnavailable: 1 to replace pods in place, or maxSurge above 0")
	}
	w.Spec.Strategy = api.RolloutStrategy{
		MaxSurge:                surge(g.Strategy.MaxSurge),
		MaxUnavailable:          g.Strategy.MaxUnavailable,
		ProgressDeadlineSeconds: g.Strategy.ProgressDeadline,
	}
	t := &w.Spec.Template
	t.Labels = map[string]string{}
	for _, k := range sortedKeys(g.Labels) {
		if k == LabelApp || k == LabelWorkload {
			c.fail(sub("labels", k), "label %q is set by Capstan; remove it", k)
			continue
		}
		t.Labels[k] = g.Labels[k]
	}
	t.Labels[LabelApp] = c.app
	t.Labels[LabelWorkload] = name
	t.RestartPolicy = g.RestartPolicy
	if t.RestartPolicy == "" {
		t.RestartPolicy = api.RestartAlways
	}
	c.batch(&w, g, wp, sub)
	t.NodeSelector = g.NodeSelector
	t.TerminationGracePeriodSeconds = new(g.TerminationGrace)
	volumes := sortedKeys(g.Volumes)
	for i, v := range volumes {
		t.Volumes = append(t.Volumes, c.volume(v, g.Volumes[v], sub("volumes", v)))
		c.note(fmt.Sprintf("%s.volumes[%d]", tp, i), sub("volumes", v)...)
		c.note(fmt.Sprintf("%s.volumes[%d].persistent", tp, i), sub("volumes", v, "persistent")...)
		c.note(fmt.Sprintf("%s.volumes[%d].persistent.size", tp, i), sub("volumes", v, "persistent", "size")...)
	}
	w.Spec.Ordered = g.Ordered
	c.note(wp+".spec.ordered", sub("ordered")...)
	c.ordered(g, sub)
	portNames := map[string]bool{}
	c.containers = 0
	for _, cn := range sortedKeys(g.Containers) {
		cp := fmt.Sprintf("%s.containers[%d]", tp, len(t.Containers))
		ct := c.container(cn, g.Containers[cn], sub("containers", cn), cp, volumes)
		for _, p := range ct.Ports {
			portNames[p.Name] = true
		}
		t.Containers = append(t.Containers, ct)
		c.containers++
	}
	c.files(t, g.Files, sub("files"), tp)
	app.Spec.Workloads = append(app.Spec.Workloads, w)
	c.workloads++
	if g.Service != nil {
		c.service(app, name, g.Service, sub("service"), portNames)
	}
}

func (c *converter) container(name string, d dContainer, desc []string, cp string, volumes []string) api.Container {
	sub := func(s ...string) []string { return append(append([]string{}, desc...), s...) }
	c.note(cp, desc...)
	c.note(cp+".image", sub("image")...)
	c.note(cp+".workingDir", sub("workingDir")...)
	c.note(cp+".resources", sub("resources")...)
	c.note(cp+".readiness", sub("readiness")...)
	c.note(cp+".liveness", sub("liveness")...)
	// The nodes parse the reference as containerd does; one they cannot
	// pull would only show as ErrImagePull on every node, retried for ever.
	if _, err := reference.ParseDockerRef(d.Image); err != nil && d.Image != "" {
		c.fail(sub("image"), "%q is not an image reference a node can pull: %v (want [REGISTRY[:PORT]/]REPOSITORY[:TAG][@DIGEST], the repository in lowercase)", d.Image, err)
	}
	ct := api.Container{
		Name:            name,
		Image:           d.Image,
		ImagePullPolicy: d.PullPolicy,
		Command:         d.Command,
		Args:            d.Args,
		WorkingDir:      d.WorkingDir,
	}
	for i, k := range sortedKeys(d.Env) {
		ct.Env = append(ct.Env, c.envVar(k, d.Env[k], sub("env", k), i))
		c.note(fmt.Sprintf("%s.env[%d]", cp, i), sub("env", k)...)
	}
	for i, k := range sortedKeys(d.Ports) {
		port := api.ContainerPort{Name: k, Protocol: api.ProtocolTCP}
		raw := d.Ports[k]
		if isObject(raw) {
			var long dContainerPort
			_ = json.Unmarshal(raw, &long) // the schema checked the shape
			port.Port, port.Protocol, port.HostPort = long.Port, long.Protocol, long.HostPort
			if hp := long.HostPort; hp >= api.MinNodePort && hp <= api.MaxNodePort {
				c.fail(sub("ports", k, "hostPort"), "%d is in the range services' node ports come from (%d-%d): a service given that node port would take the same port on every node; pick a host port outside it, or expose the group through a service's nodePort",
					hp, api.MinNodePort, api.MaxNodePort)
			}
		} else {
			_ = json.Unmarshal(raw, &port.Port)
		}
		ct.Ports = append(ct.Ports, port)
		c.note(fmt.Sprintf("%s.ports[%d]", cp, i), sub("ports", k)...)
	}
	if d.Resources != nil {
		ct.Resources = c.resources(d.Resources, sub("resources"))
	}
	ct.Readiness = probe(d.Readiness)
	ct.Liveness = probe(d.Liveness)
	if d.Mounts != nil {
		for i, k := range sortedKeys(d.Mounts) {
			vm := api.VolumeMount{Name: k}
			raw := d.Mounts[k]
			if isObject(raw) {
				var long dMount
				_ = json.Unmarshal(raw, &long)
				vm.MountPath, vm.ReadOnly = long.Path, long.ReadOnly
			} else {
				_ = json.Unmarshal(raw, &vm.MountPath)
			}
			ct.VolumeMounts = append(ct.VolumeMounts, vm)
			c.note(fmt.Sprintf("%s.volumeMounts[%d]", cp, i), sub("mounts", k)...)
		}
	} else {
		// Without mounts, a container sees every volume of its group.
		for _, v := range volumes {
			ct.VolumeMounts = append(ct.VolumeMounts, api.VolumeMount{Name: v, MountPath: "/" + v})
		}
	}
	return ct
}

func (c *converter) resources(r *dResources, desc []string) api.Resources {
	sub := func(s ...string) []string { return append(append([]string{}, desc...), s...) }
	var out api.Resources
	req, lim := r.Requests, r.Limits
	if req == nil {
		req = &dResourceList{}
	}
	if lim == nil {
		lim = &dResourceList{}
	}
	for _, res := range []struct {
		name               string
		short, long, limit json.RawMessage
		req, lim           *api.Quantity
	}{
		{"cpu", r.CPU, req.CPU, lim.CPU, &out.Requests.CPU, &out.Limits.CPU},
		{"memory", r.Memory, req.Memory, lim.Memory, &out.Requests.Memory, &out.Limits.Memory},
	} {
		if res.short != nil && res.long != nil {
			c.fail(sub(res.name), "set either %s or requests.%s, not both", res.name, res.name)
		}
		if res.short != nil {
			c.quantity(res.short, res.req, sub(res.name))
		}
		if res.long != nil {
			c.quantity(res.long, res.req, sub("requests", res.name))
		}
		if res.limit != nil {
			c.quantity(res.limit, res.lim, sub("limits", res.name))
		}
	}
	return out
}

func (c *converter) quantity(raw json.RawMessage, into *api.Quantity, desc []string) {
	s := string(bytes.TrimSpace(raw))
	if strings.HasPrefix(s, `"`) {
		_ = json.Unmarshal(raw, &s)
	}
	q, err := api.ParseQuantity(s)
	if err != nil {
		c.fail(desc, "%v", err)
		return
	}
	*into = q
}

func probe(d *dProbe) *api.Probe {
	if d == nil {
		return nil
	}
	p := &api.Probe{
		InitialDelaySeconds: d.InitialDelay,
		PeriodSeconds:       d.Period,
		TimeoutSeconds:      d.Timeout,
		FailureThreshold:    d.FailureThreshold,
		SuccessThreshold:    d.SuccessThreshold,
	}
	if d.HTTP != nil {
		p.HTTP = &api.HTTPProbe{Path: d.HTTP.Path, Port: d.HTTP.Port}
	}
	if d.TCP != nil {
		p.TCP = &api.TCPProbe{Port: d.TCP.Port}
	}
	if d.Exec != nil {
		p.Exec = &api.ExecProbe{Command: d.Exec.Command}
	}
	return p
}

// service builds the service of pod group g: named g, selecting the
// group's pods. A port's target defaults to the container port of the
// same name.
func (c *converter) service(app *api.App, g string, d *dService, desc []string, portNames map[string]bool) {
	sub := func(s ...string) []string { return append(append([]string{}, desc...), s...) }
	sp := fmt.Sprintf("spec.services[%d]", len(app.Spec.Services))
	c.note(sp, desc...)
	svc := api.AppService{Name: g, Spec: api.ServiceSpec{
		Selector: map[string]string{LabelApp: c.app, LabelWorkload: g},
		External: d.External,
		Headless: d.Headless,
		Ports:    []api.ServicePort{},
	}}
	for i, k := range sortedKeys(d.Ports) {
		port := api.ServicePort{Name: k, Protocol: api.ProtocolTCP, TargetPort: api.FromString(k)}
		raw := d.Ports[k]
		if isObject(raw) {
			var long dServicePort
			_ = json.Unmarshal(raw, &long)
			port.Port, port.Protocol = long.Port, long.Protocol
			if long.Target != nil {
				port.TargetPort = *long.Target
			}
		} else {
			_ = json.Unmarshal(raw, &port.Port)
		}
		if port.TargetPort.IsString && !portNames[port.TargetPort.StrVal] {
			c.fail(sub("ports", k), "no container of pod group %q has a port named %q; name a container port %q or set target",
				g, port.TargetPort.StrVal, port.TargetPort.StrVal)
		}
		svc.Spec.Ports = append(svc.Spec.Ports, port)
		c.note(fmt.Sprintf("%s.spec.ports[%d]", sp, i), sub("ports", k)...)
	}
	app.Spec.Services = append(app.Spec.Services, svc)
}
