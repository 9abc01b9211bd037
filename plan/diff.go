package plan

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// fields collects field-level changes in the order they are found.
type fields []Field

// scalar records a change of a value rendered as a string; "" is unset.
func (fs *fields) scalar(subject, name, old, new string) {
	switch {
	case old == new:
	case old == "":
		*fs = append(*fs, Field{Subject: subject, Name: name, Op: Added, New: new})
	case new == "":
		*fs = append(*fs, Field{Subject: subject, Name: name, Op: Removed, Old: old})
	default:
		*fs = append(*fs, Field{Subject: subject, Name: name, Op: Changed, Old: old, New: new})
	}
}

// keyed records the changes of a map of named values ("env X", "port
// http"), keys in order.
func (fs *fields) keyed(subject, prefix string, old, new map[string]string) {
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range new {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		o, inOld := old[k]
		n, inNew := new[k]
		switch {
		case !inOld:
			*fs = append(*fs, Field{Subject: subject, Name: prefix + " " + k, Op: Added, New: n})
		case !inNew:
			*fs = append(*fs, Field{Subject: subject, Name: prefix + " " + k, Op: Removed, Old: o})
		case o != n:
			*fs = append(*fs, Field{Subject: subject, Name: prefix + " " + k, Op: Changed, Old: o, New: n})
		}
	}
}

func itoa[T ~int32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

func seconds(v int64) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatInt(v, 10) + "s"
}

// grace is a termination grace period as the agent applies it.
func grace(v *int64) string {
	if v == nil {
		return "30s"
	}
	return strconv.FormatInt(*v, 10) + "s"
}

func intOrString(v api.IntOrString) string {
	if v.IsZero() {
		return ""
	}
	return v.String()
}

func quantity(q api.Quantity) string {
	if q.IsZero() {
		return ""
	}
	return q.String()
}

// compact renders a value as one line of JSON; "" for nil and empty.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" || string(b) == "[]" || string(b) == "{}" {
		return ""
	}
	return string(b)
}

// diffWorkload lists the field-level changes of a workload's spec.
func diffWorkload(name string, o, n api.WorkloadSpec) []Field {
	var fs fields
	fs.scalar(name, "replicas", itoa(o.Replicas), itoa(n.Replicas))
	fs.scalar(name, "max surge", intOrString(o.Strategy.MaxSurge), intOrString(n.Strategy.MaxSurge))
	fs.scalar(name, "max unavailable", intOrString(o.Strategy.MaxUnavailable), intOrString(n.Strategy.MaxUnavailable))
	fs.scalar(name, "progress deadline", seconds(int64(o.Strategy.ProgressDeadlineSeconds)), seconds(int64(n.Strategy.ProgressDeadlineSeconds)))
	fs.scalar(name, "ordered", yes(o.Ordered), yes(n.Ordered))
	ot, nt := o.Template, n.Template
	fs.scalar(name, "restart policy", ot.RestartPolicy, nt.RestartPolicy)
	fs.scalar(name, "termination grace", grace(ot.TerminationGracePeriodSeconds), grace(nt.TerminationGracePeriodSeconds))
	fs.keyed(name, "node selector", ot.NodeSelector, nt.NodeSelector)
	fs.keyed(name, "label", ot.Labels, nt.Labels)
	fs.keyed(name, "volume", volumes(ot.Volumes), volumes(nt.Volumes))
	volumeFates(fs, ot.Volumes, nt.Volumes)
	diffFiles(&fs, name, ot.Files, nt.Files)
	diffSecretRefs(&fs, name, &ot, &nt)
	diffBatch(&fs, name, o, n)

	old := map[string]*api.Container{}
	for i := range ot.Containers {
		old[ot.Containers[i].Name] = &ot.Containers[i]
	}
	seen := map[string]bool{}
	for i := range nt.Containers {
		c := &nt.Containers[i]
		seen[c.Name] = true
		if oc := old[c.Name]; oc != nil {
			diffContainer(&fs, name+"/"+c.Name, oc, c)
		} else {
			fs = append(fs, Field{Subject: name, Name: "container " + c.Name, Op: Added, New: c.Image})
		}
	}
	for i := range ot.Containers {
		if c := &ot.Containers[i]; !seen[c.Name] {
			fs = append(fs, Field{Subject: name, Name: "container " + c.Name, Op: Removed, Old: c.Image})
		}
	}
	return fs
}

// dataDeleted ends the description of a volume whose data a change
// deletes.
const dataDeleted = ", reclaim delete: its data will be deleted"

// dataLoss lists the persistent volumes of a removed workload, with what
// becomes of their data: reclaim delete removes it with the workload,
// retain keeps it (docs/volumes.md).
func dataLoss(name string, vs []api.Volume) []Field {
	var fs []Field
	for _, v := range vs {
		p := v.Persistent
		if p == nil {
			continue
		}
		fate := ", reclaim retain: its data is kept"
		if p.Reclaim == api.ReclaimDelete {
			fate = dataDeleted
		}
		fs = append(fs, Field{Subject: name, Name: "volume " + v.Name, New: "persistent " + api.FormatBytes(p.Size.Value()) + fate})
	}
	return fs
}

// volumeFates ends the description of each changed volume with what the
// change does to the persistent volumes that exist (docs/volumes.md): a
// removal alone deletes no data, and an addition (a rename is both)
// starts empty; a larger size grows the volumes, a
// smaller one applies only to volumes made after it, a new reclaim to all
// of them; a persistent volume turned into
// a scratch one keeps its data out of the pods' sight, and a scratch one
// turned persistent starts empty.
func volumeFates(fs fields, old, new []api.Volume) {
	for i := range fs {
		f := &fs[i]
		name, ok := strings.CutPrefix(f.Name, "volume ")
		if !ok {
			continue
		}
		o, n := persistentOf(old, name), persistentOf(new, name)
		switch {
		case f.Op == Removed && o != nil && o.Reclaim == api.ReclaimDelete:
			f.Note = "data kept while the group exists, no longer mounted (put volume " + name + " back to find it)"
		case f.Op == Removed && o != nil:
			f.Note = "data kept, no longer mounted (put volume " + name + " back to find it)"
		case f.Op == Added && n != nil:
			f.Note = "a replica with no kept volume of that name starts on a new empty one (no data is copied from another volume)"
		case f.Op != Changed:
		case o != nil && n == nil:
			f.Note = "the persistent data is kept but no longer mounted: the pods start on an empty scratch dir (put persistent back to find it)"
		case o == nil && n != nil:
			f.Note = "each replica starts on a new empty volume (the scratch dir's files are not copied)"
		default:
			var notes []string
			switch was, now := o.Size.Value(), n.Size.Value(); {
			case now > was:
				notes = append(notes, "the existing volumes grow to "+api.FormatBytes(now)+" in place, data kept")
			case now < was:
				notes = append(notes, "the existing volumes keep "+api.FormatBytes(was)+
					" (a volume never shrinks); new replicas get "+api.FormatBytes(now))
			}
			if o.Reclaim != n.Reclaim {
				notes = append(notes, "reclaim "+strings.ToLower(n.Reclaim)+" applies to the existing volumes too")
			}
			if len(notes) > 0 {
				f.Note = strings.Join(notes, "; ")
			}
		}
	}
}

// persistentOf returns the persistent source of volume name in vs, nil
// when it is absent or a scratch volume.
func persistentOf(vs []api.Volume, name string) *api.PersistentSource {
	for i := range vs {
		if vs[i].Name == name {
			return vs[i].Persistent
		}
	}
	return nil
}

func volumes(vs []api.Volume) map[string]string {
	out := map[string]string{}
	for _, v := range vs {
		out[v.Name] = "empty dir"
		if p := v.Persistent; p != nil {
			out[v.Name] = "persistent " + api.FormatBytes(p.Size.Value()) + ", reclaim " + strings.ToLower(p.Reclaim)
		}
	}
	return out
}

func diffContainer(fs *fields, subject string, o, n *api.Container) {
	fs.scalar(subject, "image", o.Image, n.Image)
	fs.scalar(subject, "pull policy", o.ImagePullPolicy, n.ImagePullPolicy)
	fs.scalar(subject, "command", compact(o.Command), compact(n.Command))
	fs.scalar(subject, "args", compact(o.Args), compact(n.Args))
	fs.scalar(subject, "working dir", o.WorkingDir, n.WorkingDir)
	fs.keyed(subject, "port", containerPorts(o.Ports), containerPorts(n.Ports))
	fs.scalar(subject, "cpu request", quantity(o.Resources.Requests.CPU), quantity(n.Resources.Requests.CPU))
	fs.scalar(subject, "memory request", quantity(o.Resources.Requests.Memory), quantity(n.Resources.Requests.Memory))
	fs.scalar(subject, "cpu limit", quantity(o.Resources.Limits.CPU), quantity(n.Resources.Limits.CPU))
	fs.scalar(subject, "memory limit", quantity(o.Resources.Limits.Memory), quantity(n.Resources.Limits.Memory))
	fs.keyed(subject, "env", env(o.Env), env(n.Env))
	fs.scalar(subject, "readiness", probe(o.Readiness), probe(n.Readiness))
	fs.scalar(subject, "liveness", probe(o.Liveness), probe(n.Liveness))
	fs.keyed(subject, "mount", mounts(o.VolumeMounts), mounts(n.VolumeMounts))
}

// probe renders a probe on one line: "http /healthz on http, period 10s".
func probe(p *api.Probe) string {
	if p == nil {
		return ""
	}
	var parts []string
	switch {
	case p.HTTP != nil:
		parts = append(parts, "http "+p.HTTP.Path+" on "+p.HTTP.Port.String())
	case p.TCP != nil:
		parts = append(parts, "tcp on "+p.TCP.Port.String())
	case p.Exec != nil:
		parts = append(parts, "exec "+compact(p.Exec.Command))
	}
	for _, t := range []struct {
		name string
		v    int32
		unit string
	}{
		{"delay", p.InitialDelaySeconds, "s"}, {"period", p.PeriodSeconds, "s"}, {"timeout", p.TimeoutSeconds, "s"},
		{"failures", p.FailureThreshold, ""}, {"successes", p.SuccessThreshold, ""},
	} {
		if t.v != 0 {
			parts = append(parts, t.name+" "+itoa(t.v)+t.unit)
		}
	}
	return strings.Join(parts, ", ")
}

// env renders each variable's value: quoted, or the secret key it comes
// from ("secret db key password"), so that a switch of secret shows.
func env(vs []api.EnvVar) map[string]string {
	out := make(map[string]string, len(vs))
	for _, v := range vs {
		out[v.Name] = strconv.Quote(v.Value)
		if v.Secret != nil {
			out[v.Name] = secretRef(v.Secret)
		}
	}
	return out
}

// secretRef names the secret key a value comes from; "" for none.
func secretRef(r *api.SecretKeyRef) string {
	if r == nil {
		return ""
	}
	return "secret " + r.Name + " key " + r.Key
}

func protocol(p string) string {
	if p == "" {
		return api.ProtocolTCP
	}
	return p
}

// containerPorts keys ports by name, else by number.
func containerPorts(ps []api.ContainerPort) map[string]string {
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		v := itoa(p.Port) + "/" + protocol(p.Protocol)
		if p.HostPort != 0 {
			v += " host " + itoa(p.HostPort)
		}
		out[portKey(p.Name, p.Port)] = v
	}
	return out
}

func portKey(name string, port int32) string {
	if name != "" {
		return name
	}
	return itoa(port)
}

func mounts(ms []api.VolumeMount) map[string]string {
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		v := m.MountPath
		if m.ReadOnly {
			v += " (read-only)"
		}
		out[m.Name] = v
	}
	return out
}

// diffService lists the field-level changes of a service's spec.
func diffService(name string, o, n api.ServiceSpec) []Field {
	var fs fields
	fs.keyed(name, "port", servicePorts(o.Ports), servicePorts(n.Ports))
	fs.scalar(name, "external", yes(o.External), yes(n.External))
	fs.scalar(name, "headless", yes(o.Headless), yes(n.Headless))
	fs.keyed(name, "selector", o.Selector, n.Selector)
	return fs
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// servicePorts renders each port as "80 -> http/TCP" (service port to the
// pods' target port), keyed by name, else by number.
func servicePorts(ps []api.ServicePort) map[string]string {
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		target := p.TargetPort.String()
		if p.TargetPort.IsZero() {
			target = itoa(p.Port)
		}
		out[portKey(p.Name, p.Port)] = itoa(p.Port) + " -> " + target + "/" + protocol(p.Protocol)
	}
	return out
}

// describeWorkload lists what an added or removed workload runs.
func describeWorkload(name string, w *api.Workload) []Field {
	fs := []Field{{Subject: name, Name: "replicas", New: itoa(w.Spec.Replicas)}}
	if w.Spec.Job != nil || w.Spec.EveryNode {
		fs = nil // no replica count
	}
	fs = append(fs, describeBatch(name, w)...)
	if w.Spec.Ordered {
		fs = append(fs, Field{Subject: name, Name: "ordered", New: "yes"})
	}
	for _, c := range w.Spec.Template.Containers {
		sub := name + "/" + c.Name
		fs = append(fs, Field{Subject: sub, Name: "image", New: c.Image})
		var req []string
		if q := quantity(c.Resources.Requests.CPU); q != "" {
			req = append(req, "cpu "+q)
		}
		if q := quantity(c.Resources.Requests.Memory); q != "" {
			req = append(req, "memory "+q)
		}
		if len(req) > 0 {
			fs = append(fs, Field{Subject: sub, Name: "requests", New: strings.Join(req, ", ")})
		}
	}
	return fs
}

// describeService lists the ports of an added or removed service.
func describeService(name string, s *api.Service) []Field {
	var fs []Field
	ports := servicePorts(s.Spec.Ports)
	for _, k := range slices.Sorted(maps.Keys(ports)) {
		fs = append(fs, Field{Subject: name, Name: "port " + k, New: ports[k]})
	}
	if s.Spec.External {
		fs = append(fs, Field{Subject: name, Name: "external", New: "yes"})
	}
	if s.Spec.Headless {
		fs = append(fs, Field{Subject: name, Name: "headless", New: "yes"})
	}
	return fs
}

// shortImage renders a changed image's new reference relative to the old
// one: the same repository with a new tag shows as ":v2", with a digest as
// "@sha256:...".
func shortImage(old, new string) string {
	on, _ := splitImage(old)
	nn, suffix := splitImage(new)
	if on == nn && suffix != "" {
		return suffix
	}
	return new
}

// splitImage cuts a reference into its name and its ":tag" or "@digest".
func splitImage(ref string) (name, suffix string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], ref[i:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i:]
	}
	return ref, ""
}
