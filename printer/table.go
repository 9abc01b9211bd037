package printer

import (
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Options tune a table.
type Options struct {
	// Wide adds more columns (pod IP and node, node addresses, ...).
	Wide bool
	// ShowApp adds the APP column (when objects of several apps are
	// listed) to the tables of app-scoped kinds other than apps.
	ShowApp bool
	// NoHeaders leaves out the header row (for rows streamed by a watch).
	NoHeaders bool
	// Now is the time ages are measured from.
	Now time.Time
	// Endpoints, when set, lets the services table show ready/total
	// endpoints; keyed by "app/name".
	Endpoints map[string]*api.Endpoints
	// NodeAddress, when set, is a node's address on which the services
	// table shows where node ports answer (ADDRESS:NODEPORT). Node ports
	// answer on the nodes' addresses, not on 127.0.0.1.
	NodeAddress string
	// KindPrefix writes each NAME as KIND/NAME ("pod/web-1"), as kubectl
	// does when one listing holds several kinds ('get all').
	KindPrefix bool
}

// column is one column of a kind's table.
type column struct {
	name string
	wide bool
	cell func(o api.Object, opts *Options) string
}

// Table writes objs (all of one kind) as a table; events oldest first,
// the last one seen at the bottom (as 'kubectl events' and describe show
// them), not in the store's order of their names.
func Table(w io.Writer, kind api.Kind, objs []api.Object, opts Options) error {
	if kind == api.KindEvent {
		objs = slices.Clone(objs)
		slices.SortStableFunc(objs, func(a, b api.Object) int {
			return a.(*api.Event).Spec.LastSeen.Compare(b.(*api.Event).Spec.LastSeen)
		})
	}
	cols := columnsFor(kind)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	// An app is its own app: an APP column would repeat NAME.
	showApp := opts.ShowApp && !kind.ClusterScoped() && kind != api.KindApp
	var header []string
	if showApp {
		header = append(header, "APP")
	}
	for _, c := range cols {
		if !c.wide || opts.Wide {
			header = append(header, c.name)
		}
	}
	if !opts.NoHeaders {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, o := range objs {
		var row []string
		if showApp {
			row = append(row, o.Meta().App)
		}
		for _, c := range cols {
			if !c.wide || opts.Wide {
				cell := oneLine(c.cell(o, &opts))
				if opts.KindPrefix && c.name == "NAME" {
					cell = strings.ToLower(kind.Singular()) + "/" + cell
				}
				row = append(row, cell)
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// oneLine puts a cell on one line: a newline or a tab in it (an app's sync
// errors, an event's message) would break its row or shift its columns.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\t\n\v\f\r") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// Age renders a duration as kubectl does: 45s, 3m, 5h, 2d.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func age(t time.Time, opts *Options) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return Age(opts.Now.Sub(t))
}

// lastSeen is when e was last seen and, when it repeated, how often
// since when: "3s (x12 over 2m)", as kubectl events shows it.
func lastSeen(e api.EventSpec, opts *Options) string {
	s := age(e.LastSeen, opts)
	if e.Count > 1 && !e.FirstSeen.IsZero() {
		s += fmt.Sprintf(" (x%d over %s)", e.Count, age(e.FirstSeen, opts))
	}
	return s
}

var nameCol = column{name: "NAME", cell: func(o api.Object, _ *Options) string { return o.Meta().Name }}
var ageCol = column{name: "AGE", cell: func(o api.Object, opts *Options) string { return age(o.Meta().CreatedAt, opts) }}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func columnsFor(kind api.Kind) []column {
	switch kind {
	case api.KindNode:
		return []column{nameCol,
			{name: "STATUS", cell: func(o api.Object, _ *Options) string { return nodeStatus(o.(*api.Node)) }},
			{name: "CPU", cell: func(o api.Object, _ *Options) string { return o.(*api.Node).Status.Allocatable.CPU.String() }},
			{name: "MEMORY", cell: func(o api.Object, _ *Options) string { return o.(*api.Node).Status.Allocatable.Memory.String() }},
			{name: "PODS", cell: func(o api.Object, _ *Options) string {
				return strconv.FormatInt(o.(*api.Node).Status.Allocatable.Pods, 10)
			}},
			ageCol,
			{name: "ADDRESS", wide: true, cell: func(o api.Object, _ *Options) string { return nodeAddress(o.(*api.Node)) }},
			{name: "POD-CIDR", wide: true, cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Node).Spec.PodCIDR) }},
			{name: "VERSION", wide: true, cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Node).Status.Info.AgentVersion) }},
			{name: "VOLUME-ROOM", wide: true, cell: func(o api.Object, _ *Options) string { return volumeRoom(o.(*api.Node).Status.VolumeStorage) }},
		}
	case api.KindLease:
		return []column{nameCol,
			{name: "HOLDER", cell: func(o api.Object, _ *Options) string { return o.(*api.Lease).Spec.Holder }},
			{name: "RENEWED", cell: func(o api.Object, opts *Options) string { return age(o.(*api.Lease).Spec.RenewTime, opts) + " ago" }},
		}
	case api.KindApp:
		return []column{nameCol,
			{name: "COMMIT", cell: func(o api.Object, _ *Options) string { return orNone(api.ShortCommit(appCommit(o.(*api.App)))) }},
			{name: "SYNC", cell: func(o api.Object, _ *Options) string { return appSync(o.(*api.App)) }},
			{name: "SYNCED", cell: func(o api.Object, opts *Options) string { return age(o.(*api.App).Status.LastSyncTime, opts) }},
			{name: "HEALTH", cell: func(o api.Object, _ *Options) string {
				h := o.(*api.App).Status.Health
				if h == "" {
					return api.HealthUnknown
				}
				return h
			}},
			ageCol,
			{name: "MESSAGE", wide: true, cell: func(o api.Object, opts *Options) string {
				a := o.(*api.App)
				if c := api.FindCondition(a.Status.Conditions, "Synced"); c != nil && c.Status == api.ConditionFalse {
					return c.Message
				}
				msg := firstNonEmpty(a.Status.HealthMessage, a.Status.LastSyncMessage)
				if p := previewOf(a, opts); p != "" && msg != "" {
					msg = p + "; " + msg
				} else if p != "" {
					msg = p
				}
				return orNone(msg)
			}},
		}
	case api.KindWorkload:
		return []column{nameCol,
			{name: "READY", cell: func(o api.Object, _ *Options) string {
				w := o.(*api.Workload)
				return fmt.Sprintf("%d/%d", w.Status.ReadyReplicas, desiredPods(w))
			}},
			{name: "UP-TO-DATE", cell: func(o api.Object, _ *Options) string {
				return strconv.Itoa(int(o.(*api.Workload).Status.UpdatedReplicas))
			}},
			{name: "AVAILABLE", cell: func(o api.Object, _ *Options) string {
				return strconv.Itoa(int(o.(*api.Workload).Status.AvailableReplicas))
			}},
			ageCol,
			{name: "IMAGES", wide: true, cell: func(o api.Object, _ *Options) string { return images(o.(*api.Workload).Spec.Template.Containers) }},
		}
	case api.KindPod:
		return []column{nameCol,
			{name: "READY", cell: func(o api.Object, _ *Options) string { return podReady(o.(*api.Pod)) }},
			{name: "STATUS", cell: func(o api.Object, _ *Options) string { return PodStatus(o.(*api.Pod)) }},
			{name: "RESTARTS", cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(podRestarts(o.(*api.Pod)))) }},
			ageCol,
			{name: "IP", wide: true, cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Pod).Status.PodIP) }},
			{name: "NODE", wide: true, cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Pod).Spec.NodeName) }},
		}
	case api.KindService:
		return []column{nameCol,
			{name: "VIP", cell: func(o api.Object, _ *Options) string {
				s := o.(*api.Service)
				if s.Spec.Headless {
					return "None"
				}
				return orNone(s.Spec.VIP)
			}},
			{name: "PORTS", cell: func(o api.Object, _ *Options) string { return servicePorts(o.(*api.Service)) }},
			{name: "EXTERNAL", cell: func(o api.Object, opts *Options) string { return nodePortAddrs(o.(*api.Service), opts.NodeAddress) }},
			{name: "ENDPOINTS", cell: func(o api.Object, opts *Options) string {
				ep := opts.Endpoints[api.KeyOf(o).ObjectKey()]
				if ep == nil {
					return "0/0"
				}
				ready := 0
				for _, a := range ep.Spec.Addresses {
					if a.Ready {
						ready++
					}
				}
				return fmt.Sprintf("%d/%d", ready, len(ep.Spec.Addresses))
			}},
			ageCol,
		}
	case api.KindEndpoints:
		return []column{nameCol,
			{name: "ENDPOINTS", cell: func(o api.Object, _ *Options) string { return endpointList(o.(*api.Endpoints)) }},
			ageCol,
		}
	case api.KindRevision:
		return []column{nameCol,
			{name: "COMMIT", cell: func(o api.Object, _ *Options) string { return orNone(api.ShortCommit(o.(*api.Revision).Spec.Commit)) }},
			{name: "RESULT", cell: func(o api.Object, _ *Options) string { return o.(*api.Revision).Spec.Result }},
			{name: "AUTHOR", cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Revision).Spec.Author) }},
			ageCol,
			{name: "MESSAGE", cell: func(o api.Object, _ *Options) string { return api.CommitSubject(o.(*api.Revision).Spec.Message) }},
		}
	case api.KindSecret:
		return []column{nameCol,
			{name: "KEYS", cell: func(o api.Object, _ *Options) string {
				return orNone(strings.Join(slices.Sorted(maps.Keys(o.(*api.Secret).Spec.Versions)), ","))
			}},
			{name: "FROM", cell: func(o api.Object, _ *Options) string { return orNone(o.(*api.Secret).Spec.From) }},
			ageCol,
		}
	case api.KindJob:
		return jobColumns()
	case api.KindVolume:
		return volumeColumns(nameCol, ageCol)
	case api.KindEvent:
		return []column{
			{name: "LAST SEEN", cell: func(o api.Object, opts *Options) string { return lastSeen(o.(*api.Event).Spec, opts) }},
			{name: "TYPE", cell: func(o api.Object, _ *Options) string { return o.(*api.Event).Spec.Type }},
			{name: "REASON", cell: func(o api.Object, _ *Options) string { return o.(*api.Event).Spec.Reason }},
			{name: "OBJECT", cell: func(o api.Object, _ *Options) string {
				r := o.(*api.Event).Spec.Object
				// kubectl's spelling, which --for and describe take.
				return strings.ToLower(r.Kind.Singular()) + "/" + r.Name
			}},
			{name: "COUNT", wide: true, cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(o.(*api.Event).Spec.Count)) }},
			{name: "MESSAGE", cell: func(o api.Object, _ *Options) string { return o.(*api.Event).Spec.Message }},
		}
	}
	return []column{nameCol, ageCol}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func nodeStatus(n *api.Node) string {
	st := "Unknown"
	if c := api.FindCondition(n.Status.Conditions, api.NodeReady); c != nil {
		switch c.Status {
		case api.ConditionTrue:
			st = "Ready"
		case api.ConditionFalse:
			st = "NotReady"
		}
	}
	if n.Spec.Unschedulable {
		st += ",SchedulingDisabled"
	}
	// Volume data kept without its object: the operator's to look at
	// (capstan describe node; docs/volumes.md).
	if c := api.FindCondition(n.Status.Conditions, api.NodeVolumeDataOrphaned); c != nil && c.Status == api.ConditionTrue {
		st += ",OrphanedVolumes"
	}
	return st
}

func nodeAddress(n *api.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			return a.Address
		}
	}
	return "<none>"
}

func images(cs []api.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Image)
	}
	return strings.Join(out, ",")
}

func podReady(p *api.Pod) string {
	ready := 0
	for _, c := range p.Status.Containers {
		if c.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
}

func podRestarts(p *api.Pod) int32 {
	var n int32
	for _, c := range p.Status.Containers {
		n += c.RestartCount
	}
	return n
}

// PodStatus is the one-word state kubectl shows: a container's waiting or
// terminated reason when there is one (CrashLoopBackOff, ImagePullBackOff,
// OOMKilled), Terminating while being deleted, else the phase.
func PodStatus(p *api.Pod) string {
	if p.Metadata.DeletionRequestedAt != nil {
		return "Terminating"
	}
	for _, c := range p.Status.Containers {
		if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason
		}
		if t := c.State.Terminated; t != nil && t.Reason != "" && p.Status.Phase != api.PodSucceeded {
			return t.Reason
		}
	}
	if p.Spec.NodeName == "" {
		if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); c != nil && c.Status == api.ConditionFalse {
			return "Unschedulable"
		}
		return api.PodPending
	}
	if p.Status.Phase == "" {
		return "ContainerCreating"
	}
	return p.Status.Phase
}

func servicePorts(s *api.Service) string {
	var out []string
	for _, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = api.ProtocolTCP
		}
		v := strconv.Itoa(int(p.Port))
		if p.NodePort != 0 {
			v += ":" + strconv.Itoa(int(p.NodePort))
		}
		out = append(out, v+"/"+proto)
	}
	return orNone(strings.Join(out, ","))
}

// nodePortAddrs is where the service's node ports answer: addr:port for
// each, "<none>" when the service is not external or no address is known.
func nodePortAddrs(s *api.Service, addr string) string {
	if addr == "" {
		return orNone("")
	}
	var out []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, net.JoinHostPort(addr, strconv.Itoa(int(p.NodePort))))
		}
	}
	return orNone(strings.Join(out, ","))
}

// NodeAddress picks the address node ports are shown on: the InternalIP
// of the first Ready node by name, else of the first node that has one.
func NodeAddress(nodes []*api.Node) string {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b *api.Node) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	first := ""
	for _, n := range sorted {
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" && a.Address != "" {
				ip = a.Address
				break
			}
		}
		if ip == "" {
			continue
		}
		if c := api.FindCondition(n.Status.Conditions, api.NodeReady); c != nil && c.Status == api.ConditionTrue {
			return ip
		}
		if first == "" {
			first = ip
		}
	}
	return first
}

func endpointList(e *api.Endpoints) string {
	var out []string
	for _, a := range e.Spec.Addresses {
		if !a.Ready {
			continue
		}
		for _, p := range a.Ports {
			out = append(out, a.IP+":"+strconv.Itoa(int(p.Port)))
		}
		if len(a.Ports) == 0 {
			out = append(out, a.IP)
		}
	}
	sort.Strings(out)
	if len(out) > 4 {
		out = append(out[:4], fmt.Sprintf("+ %d more", len(out)-4))
	}
	return orNone(strings.Join(out, ","))
}

// appSync is an app's sync state: the reason of a false Synced condition
// (the repository cannot be fetched, its head is refused or held, it has
// errors that belong to no app) or else the last sync's result, so that
// an app whose repository fails to sync never shows a bare "Applied".
func appSync(a *api.App) string {
	if pr := a.Metadata.Labels[api.LabelPreviewPR]; pr != "" {
		return "Preview #" + pr
	}
	if c := api.FindCondition(a.Status.Conditions, "Synced"); c != nil && c.Status == api.ConditionFalse && c.Reason != "" {
		return c.Reason
	}
	return orNone(a.Status.LastSyncResult)
}

// appCommit is the commit an app runs: the one sync applied, or a
// preview's pull-request head (sync never applies a preview).
func appCommit(a *api.App) string {
	if c := a.Status.SyncedCommit; c != "" {
		return c
	}
	return a.Metadata.Annotations[api.AnnotationPreviewHead]
}

// previewOf says whose preview a preview App is and when it goes; ""
// for any other App.
func previewOf(a *api.App, opts *Options) string {
	l := a.Metadata.Labels
	if l[api.LabelPreviewPR] == "" {
		return ""
	}
	s := fmt.Sprintf("preview of %s for pull request #%s of %s", l[api.LabelPreviewOf], l[api.LabelPreviewPR], l[api.LabelPreviewRepo])
	if t, err := time.Parse(time.RFC3339, a.Metadata.Annotations[api.AnnotationPreviewExpires]); err == nil {
		s += ", deleted in " + Age(t.Sub(opts.Now))
	}
	return s
}

// volumeRoom renders a node's room for persistent volumes as free of
// capacity ("37.2Gi/50Gi"), rounded down, or <none> when its agent does
// not report it.
func volumeRoom(st *api.NodeVolumeStorage) string {
	if st == nil {
		return "<none>"
	}
	return bytesDown(st.Available.Value()) + "/" + bytesDown(st.Capacity.Value())
}

// bytesDown renders bytes in Ki, Mi, Gi or Ti with one decimal at most,
// rounded down, so that free room is never overstated.
func bytesDown(n int64) string {
	units := []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	for _, u := range units {
		if n >= u.size {
			tenths := n * 10 / u.size
			if n >= 1<<50 || tenths%10 == 0 {
				return strconv.FormatInt(n/u.size, 10) + u.suffix
			}
			return fmt.Sprintf("%d.%d%s", tenths/10, tenths%10, u.suffix)
		}
	}
	return strconv.FormatInt(max(n, 0), 10)
}
