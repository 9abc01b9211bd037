package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// hostInfo is what the node reports about its machine.
type hostInfo struct {
	CPUs        int
	MemoryBytes int64
	Kernel      string
}

func readHostInfo() (hostInfo, error) {
	h := hostInfo{CPUs: goruntime.NumCPU()}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return h, fmt.Errorf("read host memory: %w", err)
	}
	defer f.Close()
	if h.MemoryBytes, err = parseMemTotal(f); err != nil {
		return h, err
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h, nil
}

// parseMemTotal reads MemTotal (in kB) from /proc/meminfo.
func parseMemTotal(r interface{ Read([]byte) (int, error) }) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("meminfo: MemTotal %q is not a size", f[1])
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("meminfo: no MemTotal line")
}

// desiredNode is the Node this agent registers.
func (a *Agent) desiredNode(ready bool, reason, msg string) *api.Node {
	o := &a.opts
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = o.NodeName
	n.Metadata.Labels = map[string]string{api.LabelHostname: o.NodeName, api.LabelOS: goruntime.GOOS, api.LabelArch: goruntime.GOARCH}
	maps.Copy(n.Metadata.Labels, o.Labels)
	n.Spec.PodCIDR = o.PodCIDR
	capacity := api.ResourceList{
		CPU:    api.NewQuantity(int64(a.host.CPUs), api.DecimalSI),
		Memory: api.NewQuantity(a.host.MemoryBytes, api.BinarySI),
		Pods:   o.MaxPods,
	}
	status := api.ConditionFalse
	if ready {
		status = api.ConditionTrue
	}
	n.Status = api.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Addresses: []api.NodeAddress{{Type: "InternalIP", Address: a.address}, {Type: "Hostname", Address: o.NodeName}},
		Conditions: []api.Condition{{Type: api.NodeReady, Status: status, Reason: reason, Message: msg,
			LastTransitionTime: o.Now().UTC()}},
		Info:          api.NodeInfo{AgentVersion: o.Version, OS: goruntime.GOOS, Arch: goruntime.GOARCH, KernelVersion: a.host.Kernel},
		DaemonPorts:   api.NodeDaemonPorts{Agent: a.servePort()},
		VolumeStorage: a.measureStorage(),
	}
	return n
}

// register creates the Node or brings an existing one up to date (labels,
// status) and returns it as stored. A Node that exists gets only the labels
// a node may change itself (api.NodeMaySetLabel); a different value of
// another --labels label is an admin's to set, and is logged.
func (a *Agent) register(ctx context.Context, ready bool, reason, msg string) (*api.Node, error) {
	want := a.desiredNode(ready, reason, msg)
	key := api.Key{Kind: api.KindNode, Name: want.Metadata.Name}
	obj, err := a.opts.Client.Create(ctx, want)
	if err == nil {
		a.setStorage(want.Status.VolumeStorage)
		return obj.(*api.Node), nil
	}
	if !client.IsAlreadyExists(err) {
		return nil, fmt.Errorf("node %s: register: %w", key.Name, err)
	}
	obj, err = a.opts.Client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("node %s: register: %w", key.Name, err)
	}
	cur := obj.(*api.Node)
	labels := maps.Clone(cur.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range want.Metadata.Labels {
		old, ok := labels[k]
		switch {
		case ok && old == v:
		case api.NodeMaySetLabel(key.Name, k, v):
			labels[k] = v
		default:
			a.log.Warn("a label from --labels is not on the Node, and a node sets it only when it registers: an admin changes it on the Node (or use the prefix "+api.NodeLabelPrefix+")",
				"label", k, "want", v, "node has", old)
		}
	}
	if !maps.Equal(labels, cur.Metadata.Labels) || (cur.Spec.PodCIDR == "" && want.Spec.PodCIDR != "") {
		upd := api.Clone(cur)
		upd.Metadata.Labels = labels
		if upd.Spec.PodCIDR == "" {
			upd.Spec.PodCIDR = want.Spec.PodCIDR
		}
		obj, err = a.opts.Client.Update(ctx, upd)
		if err != nil {
			return nil, fmt.Errorf("node %s: update labels: %w", key.Name, err)
		}
		cur = obj.(*api.Node)
	}
	// Free space that moved by less than a step is not worth a write.
	if vs := cur.Status.VolumeStorage; vs != nil && !storageMoved(vs, want.Status.VolumeStorage) {
		want.Status.VolumeStorage = vs
	}
	n, err := a.updateNodeStatus(ctx, cur, want.Status)
	if err == nil {
		a.setStorage(n.Status.VolumeStorage)
	}
	return n, err
}

// updateNodeStatus writes status unless the Node already shows it; the
// Ready condition keeps its transition time while it does not change.
func (a *Agent) updateNodeStatus(ctx context.Context, cur *api.Node, status api.NodeStatus) (*api.Node, error) {
	upd := api.Clone(cur)
	conds := upd.Status.Conditions
	for _, c := range status.Conditions {
		api.SetCondition(&conds, c)
	}
	status.Conditions = conds
	upd.Status = status
	if nodeStatusEqual(cur.Status, upd.Status) {
		return cur, nil
	}
	upd.Metadata.ResourceVersion = 0
	obj, err := a.opts.Client.UpdateStatus(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("node %s: update status: %w", cur.Metadata.Name, err)
	}
	return obj.(*api.Node), nil
}

func nodeStatusEqual(x, y api.NodeStatus) bool { return api.EqualJSON(x, y) }

// renewLease is the heartbeat: one small write of the Lease named after the
// node. It gives up after one interval, so that a server that accepts the
// write and never answers (stuck, paused) costs one beat: the client then
// moves to its next server for the following one.
func (a *Agent) renewLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.HeartbeatInterval)
	defer cancel()
	l := api.KindLease.New().(*api.Lease)
	l.Metadata.Name = a.opts.NodeName
	l.Spec = api.LeaseSpec{
		Holder:          a.opts.NodeName,
		RenewTime:       a.opts.Now().UTC(),
		DurationSeconds: int32((a.opts.HeartbeatInterval * defaultLeaseDurationFactor).Round(time.Second) / time.Second),
	}
	if l.Spec.DurationSeconds < 1 {
		l.Spec.DurationSeconds = 1
	}
	_, err := a.opts.Client.Update(ctx, l)
	if client.IsNotFound(err) {
		_, err = a.opts.Client.Create(ctx, l)
	}
	if err != nil {
		return fmt.Errorf("node %s: renew lease: %w", a.opts.NodeName, err)
	}
	return nil
}

// heartbeat renews the Lease every interval until ctx ends.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.renewLease(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case client.IsUnauthorized(err):
			// Retrying never helps: the server does not know this
			// node's credentials any more.
			a.log.Error("heartbeat refused: the server does not know this node's credentials (the node was deleted, or the server was restored from a backup made before the node joined); the pods keep running: restart the agent with --token capstan-join:... from 'capstan token create' to join again (if the server says the name is taken, an admin first runs 'capstan node allow-rejoin NAME')", "err", err)
		default:
			a.log.Warn("heartbeat failed; retrying next interval", "err", err)
		}
	}
}
