package scheduler

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestSchedule runs the scenario scripts in testdata. Commands:
//
//	node name=N cpu=Q memory=Q [pods=K] [ready=false] [cordoned] [labels=(k=v,...)] [disk=Q]
//	nodes-bulk prefix=P count=K cpu=Q memory=Q [pods=K]
//	remove-node name=N
//	pod app=A name=N [cpu=Q] [memory=Q] [workload=W] [hostport=(80,...)] [node=N] [required=N] [phase=P]
//	remove-pod app=A name=N
//	volume app=A name=N node=N size=Q [capacity=Q] [deleting]
//	remove-volume app=A name=N
//	schedule app=A name=N [pod fields] [selector=(k=v,...)] [volumes=(name=Q,...)] [bind] [percentage=P]
//	schedule-many app=A prefix=P count=K [pod fields] [percentage=P]
//	nodes
//
// Run with -rewrite to regenerate the expected output.
func TestSchedule(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		snap := NewSnapshot()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return runScheduleCmd(t, snap, d)
		})
	})
}

func runScheduleCmd(t *testing.T, snap *Snapshot, d *datadriven.TestData) string {
	str := func(key, def string) string {
		if a, ok := d.Arg(key); ok {
			return a.SingleVal(t)
		}
		return def
	}
	num := func(key string, def int) int {
		if a, ok := d.Arg(key); ok {
			v, err := strconv.Atoi(a.SingleVal(t))
			if err != nil {
				d.Fatalf(t, "%s: %v", key, err)
			}
			return v
		}
		return def
	}
	kv := func(key string) map[string]string {
		a, ok := d.Arg(key)
		if !ok {
			return nil
		}
		m := map[string]string{}
		for _, v := range a.Vals {
			k, val, _ := strings.Cut(v, "=")
			m[k] = val
		}
		return m
	}
	pod := func(name string) *api.Pod {
		p := makePod(str("app", "default"), name, str("cpu", ""), str("memory", ""), str("workload", ""))
		if a, ok := d.Arg("hostport"); ok {
			for _, v := range a.Vals {
				port, _ := strconv.Atoi(v)
				p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, api.ContainerPort{Name: "p" + v, Port: int32(port), HostPort: int32(port)})
			}
		}
		p.Spec.NodeSelector = kv("selector")
		p.Spec.NodeName = str("node", "")
		p.Spec.RequiredNode = str("required", "")
		p.Status.Phase = str("phase", "")
		vols := kv("volumes")
		for _, name := range slices.Sorted(maps.Keys(vols)) {
			size := vols[name]
			p.Spec.Volumes = append(p.Spec.Volumes, api.Volume{Name: name, Persistent: &api.PersistentSource{Size: api.MustParseQuantity(size)}})
		}
		return p
	}
	stack := func() (*Stack, error) {
		return NewStack(StackOptions{PercentageOfNodes: num("percentage", 0)})
	}
	switch d.Cmd {
	case "node":
		n := makeNode(str("name", ""), str("cpu", "0"), str("memory", "0"), int64(num("pods", 0)))
		if str("ready", "true") != "true" {
			n.Status.Conditions[0].Status = api.ConditionStatus(str("ready", ""))
		}
		n.Spec.Unschedulable = d.HasArg("cordoned")
		n.Metadata.Labels = kv("labels")
		if disk := str("disk", ""); disk != "" {
			// The agent's report: free space of a 100Gi file system.
			n.Status.VolumeStorage = &api.NodeVolumeStorage{Capacity: api.MustParseQuantity("100Gi"), Available: api.MustParseQuantity(disk)}
		}
		snap.UpdateNode(n)
		return describeNode(snap.Node(n.Metadata.Name))
	case "nodes-bulk":
		for i := range num("count", 0) {
			snap.AddNode(makeNode(fmt.Sprintf("%s%04d", str("prefix", "n"), i), str("cpu", "0"), str("memory", "0"), int64(num("pods", 0))))
		}
		return fmt.Sprintf("%d nodes", snap.NumNodes())
	case "remove-node":
		snap.RemoveNode(str("name", ""))
		return fmt.Sprintf("%d nodes", snap.NumNodes())
	case "pod":
		p := pod(str("name", ""))
		snap.AddPod(p)
		if n := snap.NodeOf(p.Metadata.App, p.Metadata.Name); n != "" {
			if ni := snap.Node(n); ni != nil {
				return describeNode(ni)
			}
			return "bound to unknown node " + n
		}
		return "not counted"
	case "remove-pod":
		snap.RemovePod(str("app", "default"), str("name", ""))
		return "ok"
	case "volume":
		v := makeVolume(str("app", "default"), str("name", ""), str("node", ""), str("size", ""), str("capacity", ""))
		if d.HasArg("deleting") {
			v.Metadata.DeletionRequestedAt = &time.Time{}
		}
		snap.SetVolume(v)
		if ni := snap.Node(v.Spec.NodeName); ni != nil {
			return describeNode(ni)
		}
		return "on unknown node " + v.Spec.NodeName
	case "remove-volume":
		snap.RemoveVolume(str("app", "default"), str("name", ""))
		return "ok"
	case "schedule":
		p := pod(str("name", ""))
		st, err := stack()
		if err != nil {
			return "error: " + err.Error()
		}
		start := snap.next
		res, err := st.Schedule(p, snap)
		if err != nil {
			if !errors.Is(err, ErrUnschedulable) {
				return "error: " + err.Error()
			}
			return fmt.Sprintf("unschedulable: %s%s", res.Message, res.Detail)
		}
		if d.HasArg("bind") {
			p.Spec.NodeName = res.NodeName
			snap.AddPod(p)
		}
		out := fmt.Sprintf("%s score=%d feasible=%d/%d", res.NodeName, res.Score, res.Feasible, res.Evaluated)
		if d.HasArg("offsets") {
			out += fmt.Sprintf(" search=%d..%d", start, snap.next)
		}
		return out
	case "schedule-many":
		st, err := stack()
		if err != nil {
			return "error: " + err.Error()
		}
		perNode := map[string]int{}
		var out []string
		for i := range num("count", 0) {
			p := pod(fmt.Sprintf("%s-%d", str("prefix", "p"), i))
			res, err := st.Schedule(p, snap)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %s", p.Metadata.Name, res.Message))
				continue
			}
			p.Spec.NodeName = res.NodeName
			snap.AddPod(p)
			perNode[res.NodeName]++
		}
		names := make([]string, 0, len(perNode))
		for n := range perNode {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, fmt.Sprintf("%s: %d", n, perNode[n]))
		}
		return strings.Join(out, "\n")
	case "nodes":
		var out []string
		for _, n := range snap.order {
			out = append(out, describeNode(n))
		}
		return strings.Join(out, "\n")
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func joinSorted(s []string) string {
	sort.Strings(s)
	return strings.Join(s, ",")
}
