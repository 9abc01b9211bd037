package schema

import (
	"fmt"
	"sort"
	"strconv"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Labels every pod and service selector of an app carries.
const (
	LabelApp      = "capstan.io/app"
	LabelWorkload = "capstan.io/workload"
)

// loc is where an API field came from in the descriptor.
type loc struct {
	desc string // descriptor path: apps.shop.pods.web.replicas
	pos  token.Pos
}

// converter turns one app's validated CUE value into an api.App,
// recording where each API field came from so that api.Validate's errors
// can be reported at the descriptor's file:line:col.
type converter struct {
	app  string
	idx  map[string]loc
	errs []api.SourceError
	fb   api.SourceError
}

type field struct {
	name string
	v    cue.Value
}

// fieldsOf returns the regular fields of a struct value, sorted by name.
func fieldsOf(v cue.Value) []field {
	if !v.Exists() {
		return nil
	}
	iter, err := v.Fields()
	if err != nil {
		return nil
	}
	var out []field
	for iter.Next() {
		out = append(out, field{iter.Selector().Unquoted(), iter.Value()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func fieldMap(v cue.Value) map[string]cue.Value {
	m := map[string]cue.Value{}
	for _, f := range fieldsOf(v) {
		m[f.name] = f.v
	}
	return m
}

// posOf is v's position in the user's files, or fallback when v comes
// from the schema (a default).
func posOf(v cue.Value, fallback token.Pos) token.Pos {
	if !v.Exists() {
		return fallback
	}
	if p := v.Pos(); isUserPos(p) {
		return p
	}
	// A value unified with the schema may report the schema's position;
	// look for the user's own conjunct.
	if op, args := v.Expr(); op == cue.AndOp {
		for _, a := range args {
			if p := a.Pos(); isUserPos(p) {
				return p
			}
		}
	}
	return fallback
}

func (c *converter) note(apiPath, desc string, p token.Pos) { c.idx[apiPath] = loc{desc, p} }

func (c *converter) fail(p token.Pos, desc, format string, args ...any) {
	e := api.SourceError{File: c.fb.File, Line: c.fb.Line, Column: c.fb.Column, Path: desc, Message: fmt.Sprintf(format, args...)}
	if p.IsValid() {
		setPos(&e, p)
	}
	c.errs = append(c.errs, e)
}

// The accessors below read values the schema has already checked; an
// absent value (the zero cue.Value) reads as the zero value.

func str(v cue.Value) string {
	if !v.Exists() {
		return ""
	}
	s, _ := v.String()
	return s
}

func i64(v cue.Value) int64 {
	if !v.Exists() {
		return 0
	}
	n, _ := v.Int64()
	return n
}

func boolean(v cue.Value) bool {
	if !v.Exists() {
		return false
	}
	b, _ := v.Bool()
	return b
}

func strList(v cue.Value) []string {
	if !v.Exists() {
		return nil
	}
	iter, err := v.List()
	if err != nil {
		return nil
	}
	var out []string
	for iter.Next() {
		out = append(out, str(iter.Value()))
	}
	return out
}

func strMap(v cue.Value) map[string]string {
	fs := fieldsOf(v)
	if len(fs) == 0 {
		return nil
	}
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.name] = str(f.v)
	}
	return m
}

// kind is the kind of v, or of its default when v has one.
func kind(v cue.Value) cue.Kind {
	d, _ := v.Default()
	return d.IncompleteKind()
}

func intOrString(v cue.Value) api.IntOrString {
	if !v.Exists() {
		return api.IntOrString{}
	}
	if kind(v) == cue.IntKind {
		return api.FromInt(int32(i64(v)))
	}
	return api.FromString(str(v))
}

// convert builds the App. appPos is where the app is first declared.
func convert(name string, v cue.Value, appPos token.Pos, fb api.SourceError) (*api.App, map[string]loc, []api.SourceError) {
	c := &converter{app: name, idx: map[string]loc{}, fb: fb}
	app := api.KindApp.New().(*api.App)
	app.Metadata.Name = name
	app.Metadata.App = name
	c.note("metadata", "apps."+name, appPos)
	pods := fieldMap(v)["pods"]
	for _, g := range fieldsOf(pods) {
		c.group(app, g, posOf(g.v, appPos))
	}
	return app, c.idx, c.errs
}

func (c *converter) group(app *api.App, g field, gpos token.Pos) {
	desc := "apps." + c.app + ".pods." + g.name
	wp := fmt.Sprintf("spec.workloads[%d]", len(app.Spec.Workloads))
	c.note(wp, desc, gpos)
	f := fieldMap(g.v)
	w := api.AppWorkload{Name: g.name}
	w.Spec.Replicas = int32(i64(f["replicas"]))
	c.note(wp+".spec.replicas", desc+".replicas", posOf(f["replicas"], gpos))

	t := &w.Spec.Template
	tp := wp + ".spec.template"
	t.Labels = map[string]string{}
	if lv, ok := f["labels"]; ok {
		c.note(tp+".labels", desc+".labels", posOf(lv, gpos))
		for _, l := range fieldsOf(lv) {
			if l.name == LabelApp || l.name == LabelWorkload {
				c.fail(posOf(l.v, gpos), desc+".labels."+l.name, "label %q is set by Capstan; remove it", l.name)
				continue
			}
			t.Labels[l.name] = str(l.v)
		}
	}
	t.Labels[LabelApp] = c.app
	t.Labels[LabelWorkload] = g.name
	t.RestartPolicy = str(f["restartPolicy"])
	c.note(tp+".restartPolicy", desc+".restartPolicy", posOf(f["restartPolicy"], gpos))
	if ns, ok := f["nodeSelector"]; ok {
		t.NodeSelector = strMap(ns)
		c.note(tp+".nodeSelector", desc+".nodeSelector", posOf(ns, gpos))
	}
	t.TerminationGracePeriodSeconds = i64(f["terminationGrace"])
	c.note(tp+".terminationGracePeriodSeconds", desc+".terminationGrace", posOf(f["terminationGrace"], gpos))

	var volumes []string
	for i, vol := range fieldsOf(f["volumes"]) {
		t.Volumes = append(t.Volumes, api.Volume{Name: vol.name})
		volumes = append(volumes, vol.name)
		c.note(fmt.Sprintf("%s.volumes[%d]", tp, i), desc+".volumes."+vol.name, posOf(vol.v, gpos))
	}
	portNames := map[string]bool{}
	for _, cf := range fieldsOf(f["containers"]) {
		ct := c.container(cf, desc+".containers."+cf.name, fmt.Sprintf("%s.containers[%d]", tp, len(t.Containers)), posOf(cf.v, gpos), volumes)
		for _, p := range ct.Ports {
			portNames[p.Name] = true
		}
		t.Containers = append(t.Containers, ct)
	}

	s := fieldMap(f["strategy"])
	sp := wp + ".spec.strategy"
	w.Spec.Strategy = api.RolloutStrategy{
		MaxSurge:                intOrString(s["maxSurge"]),
		MaxUnavailable:          intOrString(s["maxUnavailable"]),
		ProgressDeadlineSeconds: int32(i64(s["progressDeadline"])),
	}
	spos := posOf(f["strategy"], gpos)
	c.note(sp+".maxSurge", desc+".strategy.maxSurge", posOf(s["maxSurge"], spos))
	c.note(sp+".maxUnavailable", desc+".strategy.maxUnavailable", posOf(s["maxUnavailable"], spos))
	c.note(sp+".progressDeadlineSeconds", desc+".strategy.progressDeadline", posOf(s["progressDeadline"], spos))
	app.Spec.Workloads = append(app.Spec.Workloads, w)

	if sv, ok := f["service"]; ok {
		c.service(app, g.name, sv, desc+".service", posOf(sv, gpos), portNames)
	}
}

func (c *converter) container(cf field, desc, cp string, cpos token.Pos, volumes []string) api.Container {
	c.note(cp, desc, cpos)
	f := fieldMap(cf.v)
	ct := api.Container{
		Name:            cf.name,
		Image:           str(f["image"]),
		ImagePullPolicy: str(f["pullPolicy"]),
		Command:         strList(f["command"]),
		Args:            strList(f["args"]),
		WorkingDir:      str(f["workingDir"]),
	}
	c.note(cp+".image", desc+".image", posOf(f["image"], cpos))
	c.note(cp+".workingDir", desc+".workingDir", posOf(f["workingDir"], cpos))
	for i, e := range fieldsOf(f["env"]) {
		ct.Env = append(ct.Env, api.EnvVar{Name: e.name, Value: str(e.v)})
		c.note(fmt.Sprintf("%s.env[%d]", cp, i), desc+".env."+e.name, posOf(e.v, cpos))
	}
	for i, p := range fieldsOf(f["ports"]) {
		port := api.ContainerPort{Name: p.name, Protocol: api.ProtocolTCP}
		if kind(p.v) == cue.IntKind {
			port.Port = int32(i64(p.v))
		} else {
			pf := fieldMap(p.v)
			port.Port = int32(i64(pf["port"]))
			port.Protocol = str(pf["protocol"])
			if hp, ok := pf["hostPort"]; ok {
				port.HostPort = int32(i64(hp))
			}
		}
		ct.Ports = append(ct.Ports, port)
		c.note(fmt.Sprintf("%s.ports[%d]", cp, i), desc+".ports."+p.name, posOf(p.v, cpos))
	}
	if r, ok := f["resources"]; ok {
		ct.Resources = c.resources(r, desc+".resources", posOf(r, cpos))
		c.note(cp+".resources", desc+".resources", posOf(r, cpos))
	}
	if p, ok := f["readiness"]; ok {
		ct.Readiness = probe(p)
		c.note(cp+".readiness", desc+".readiness", posOf(p, cpos))
	}
	if p, ok := f["liveness"]; ok {
		ct.Liveness = probe(p)
		c.note(cp+".liveness", desc+".liveness", posOf(p, cpos))
	}
	if m, ok := f["mounts"]; ok {
		for i, mf := range fieldsOf(m) {
			vm := api.VolumeMount{Name: mf.name}
			if kind(mf.v) == cue.StringKind {
				vm.MountPath = str(mf.v)
			} else {
				mm := fieldMap(mf.v)
				vm.MountPath = str(mm["path"])
				vm.ReadOnly = boolean(mm["readOnly"])
			}
			ct.VolumeMounts = append(ct.VolumeMounts, vm)
			c.note(fmt.Sprintf("%s.volumeMounts[%d]", cp, i), desc+".mounts."+mf.name, posOf(mf.v, cpos))
		}
	} else {
		// Without mounts, a container sees every volume of its group.
		for _, name := range volumes {
			ct.VolumeMounts = append(ct.VolumeMounts, api.VolumeMount{Name: name, MountPath: "/" + name})
		}
	}
	return ct
}

func (c *converter) resources(r cue.Value, desc string, rpos token.Pos) api.Resources {
	var out api.Resources
	f := fieldMap(r)
	req := fieldMap(f["requests"])
	lim := fieldMap(f["limits"])
	for _, res := range []string{"cpu", "memory"} {
		short, hasShort := f[res]
		long, hasLong := req[res]
		if hasShort && hasLong {
			c.fail(posOf(short, rpos), desc+"."+res, "set either %s or requests.%s, not both", res, res)
		}
		if hasShort {
			c.quantity(short, res, &out.Requests, desc+"."+res, rpos)
		}
		if hasLong {
			c.quantity(long, res, &out.Requests, desc+".requests."+res, rpos)
		}
		if l, ok := lim[res]; ok {
			c.quantity(l, res, &out.Limits, desc+".limits."+res, rpos)
		}
	}
	return out
}

func (c *converter) quantity(v cue.Value, res string, into *api.ResourceList, desc string, fallback token.Pos) {
	s := str(v)
	if kind(v) == cue.IntKind {
		s = strconv.FormatInt(i64(v), 10)
	}
	q, err := api.ParseQuantity(s)
	if err != nil {
		c.fail(posOf(v, fallback), desc, "%v", err)
		return
	}
	if res == "cpu" {
		into.CPU = q
	} else {
		into.Memory = q
	}
}

func probe(v cue.Value) *api.Probe {
	f := fieldMap(v)
	p := &api.Probe{}
	if h, ok := f["http"]; ok {
		hf := fieldMap(h)
		p.HTTP = &api.HTTPProbe{Path: str(hf["path"]), Port: intOrString(hf["port"])}
	}
	if t, ok := f["tcp"]; ok {
		p.TCP = &api.TCPProbe{Port: intOrString(fieldMap(t)["port"])}
	}
	if e, ok := f["exec"]; ok {
		p.Exec = &api.ExecProbe{Command: strList(fieldMap(e)["command"])}
	}
	p.InitialDelaySeconds = int32(i64(f["initialDelay"]))
	p.PeriodSeconds = int32(i64(f["period"]))
	p.TimeoutSeconds = int32(i64(f["timeout"]))
	p.FailureThreshold = int32(i64(f["failureThreshold"]))
	p.SuccessThreshold = int32(i64(f["successThreshold"]))
	return p
}

// service builds the service of pod group g: named g, selecting the
// group's pods. A port's target defaults to the container port of the
// same name.
func (c *converter) service(app *api.App, g string, sv cue.Value, desc string, spos token.Pos, portNames map[string]bool) {
	sp := fmt.Sprintf("spec.services[%d]", len(app.Spec.Services))
	c.note(sp, desc, spos)
	f := fieldMap(sv)
	svc := api.AppService{Name: g, Spec: api.ServiceSpec{
		Selector: map[string]string{LabelApp: c.app, LabelWorkload: g},
	}}
	svc.Spec.External = boolean(f["external"])
	svc.Spec.Headless = boolean(f["headless"])
	svc.Spec.Ports = []api.ServicePort{}
	for i, p := range fieldsOf(f["ports"]) {
		ppos := posOf(p.v, spos)
		port := api.ServicePort{Name: p.name, Protocol: api.ProtocolTCP, TargetPort: api.FromString(p.name)}
		if kind(p.v) == cue.IntKind {
			port.Port = int32(i64(p.v))
		} else {
			pf := fieldMap(p.v)
			port.Port = int32(i64(pf["port"]))
			port.Protocol = str(pf["protocol"])
			if t, ok := pf["target"]; ok {
				port.TargetPort = intOrString(t)
			}
		}
		if port.TargetPort.IsString && !portNames[port.TargetPort.StrVal] {
			c.fail(ppos, desc+".ports."+p.name, "no container of pod group %q has a port named %q; name a container port %q or set target", g, port.TargetPort.StrVal, port.TargetPort.StrVal)
		}
		svc.Spec.Ports = append(svc.Spec.Ports, port)
		c.note(fmt.Sprintf("%s.spec.ports[%d]", sp, i), desc+".ports."+p.name, ppos)
	}
	app.Spec.Services = append(app.Spec.Services, svc)
}

func isUserPos(p token.Pos) bool {
	return p.IsValid() && p.Filename() != SchemaFile && p.Filename() != ""
}
