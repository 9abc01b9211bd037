package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// NetworkOptions are the address ranges the server hands out.
type NetworkOptions struct {
	// ServiceCIDR is where service VIPs come from (default 10.96.0.0/16).
	ServiceCIDR string
	// PodCIDR is cut into one block per node (default 10.88.0.0/16).
	PodCIDR string
	// NodeCIDRBits is the prefix length of each node's block (default 24).
	NodeCIDRBits int
	// NodePortMin and NodePortMax bound node ports (default 30000-32767).
	NodePortMin, NodePortMax int
}

// allocator hands out service VIPs, node ports and node pod CIDRs inside
// the store's write transaction, so allocations are persistent, never
// duplicated under concurrent creates, and released on delete.
type allocator struct {
	svc      netip.Prefix
	pods     netip.Prefix
	nodeBits int
	portMin  int
	portMax  int
}

var errExhausted = errors.New("range exhausted")

func newAllocator(o NetworkOptions) (*allocator, error) {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/16"
	}
	if o.PodCIDR == "" {
		o.PodCIDR = "10.88.0.0/16"
	}
	if o.NodeCIDRBits == 0 {
		o.NodeCIDRBits = 24
	}
	if o.NodePortMin == 0 && o.NodePortMax == 0 {
		o.NodePortMin, o.NodePortMax = api.MinNodePort, api.MaxNodePort
	}
	svc, err := netip.ParsePrefix(o.ServiceCIDR)
	if err != nil || !svc.Addr().Is4() || svc.Bits() > 30 {
		return nil, fmt.Errorf("service CIDR %q: want an IPv4 prefix of /30 or larger", o.ServiceCIDR)
	}
	pods, err := netip.ParsePrefix(o.PodCIDR)
	if err != nil || !pods.Addr().Is4() || o.NodeCIDRBits < pods.Bits() || o.NodeCIDRBits > 30 {
		return nil, fmt.Errorf("pod CIDR %q with /%d per node: want an IPv4 prefix that holds /%d blocks", o.PodCIDR, o.NodeCIDRBits, o.NodeCIDRBits)
	}
	if svc.Overlaps(pods) {
		return nil, fmt.Errorf("service CIDR %s overlaps pod CIDR %s", svc, pods)
	}
	if o.NodePortMin < 1 || o.NodePortMax > 65535 || o.NodePortMin > o.NodePortMax {
		return nil, fmt.Errorf("node port range %d-%d is not valid", o.NodePortMin, o.NodePortMax)
	}
	return &allocator{svc: svc.Masked(), pods: pods.Masked(), nodeBits: o.NodeCIDRBits, portMin: o.NodePortMin, portMax: o.NodePortMax}, nil
}

var _ store.Hooks = (*allocator)(nil)

func exhausted(what string) error {
	return errorf(http.StatusInsufficientStorage, wire.ReasonRangeExhausted, fmt.Errorf("%s: %w: delete unused objects or widen the range", what, errExhausted))
}

func invalidField(path, msg string) error {
	return (api.ErrorList{{Path: path, Message: msg}}).Err()
}

// ---- ranges as integer offsets ----

func addrToU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// pick returns the first free item after the cursor, wrapping around.
// items are numbered 0..n-1; taken says whether one is allocated.
func pick(tx store.Allocations, cursorKey string, n int, taken func(int) bool) (int, error) {
	start := 0
	if v, ok := tx.Get(cursorKey); ok {
		if i, err := strconv.Atoi(v); err == nil {
			start = i + 1
		}
	}
	for j := 0; j < n; j++ {
		i := (start + j) % n
		if !taken(i) {
			return i, tx.Put(cursorKey, strconv.Itoa(i))
		}
	}
	return 0, errExhausted
}

// allocated says whether item i is taken, by its allocation key.
func allocated(tx store.Allocations, key func(int) string) func(int) bool {
	return func(i int) bool {
		_, taken := tx.Get(key(i))
		return taken
	}
}

// ---- service VIPs and node ports ----

func (a *allocator) vipCount() int { return 1<<(32-a.svc.Bits()) - 2 } // no network or broadcast address

func (a *allocator) vipAt(i int) netip.Addr {
	return u32ToAddr(addrToU32(a.svc.Addr()) + uint32(i) + 1)
}

func vipKey(ip netip.Addr) string { return "vip/" + ip.String() }
func portKey(p int32) string      { return "nodeport/" + strconv.Itoa(int(p)) }

func (a *allocator) takeVIP(tx store.Allocations, owner, want string) (string, error) {
	if want != "" {
		ip, err := netip.ParseAddr(want)
		if err != nil || !a.svc.Contains(ip) {
			return "", invalidField("spec.vip", fmt.Sprintf("%s is not in the service CIDR %s", want, a.svc))
		}
		if holder, taken := tx.Get(vipKey(ip)); taken && holder != owner {
			return "", errorf(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("VIP %s is taken by service %s", ip, holder))
		}
		return ip.String(), tx.Put(vipKey(ip), owner)
	}
	i, err := pick(tx, "vip-next", a.vipCount(), allocated(tx, func(i int) string { return vipKey(a.vipAt(i)) }))
	if err != nil {
		return "", exhausted("service CIDR " + a.svc.String())
	}
	ip := a.vipAt(i)
	return ip.String(), tx.Put(vipKey(ip), owner)
}

func (a *allocator) takePort(tx store.Allocations, owner string, want int32) (int32, error) {
	if want != 0 {
		if int(want) < a.portMin || int(want) > a.portMax {
			return 0, invalidField("spec.ports.nodePort", fmt.Sprintf("%d is outside %d-%d", want, a.portMin, a.portMax))
		}
		if holder, taken := tx.Get(portKey(want)); taken && holder != owner {
			return 0, errorf(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("node port %d is taken by service %s", want, holder))
		}
		return want, tx.Put(portKey(want), owner)
	}
	n := a.portMax - a.portMin + 1
	i, err := pick(tx, "nodeport-next", n, allocated(tx, func(i int) string { return portKey(int32(a.portMin + i)) }))
	if err != nil {
		return 0, exhausted(fmt.Sprintf("node ports %d-%d", a.portMin, a.portMax))
	}
	p := int32(a.portMin + i)
	return p, tx.Put(portKey(p), owner)
}

func svcOwner(o api.Object) string { return api.KeyOf(o).ObjectKey() }

func (a *allocator) allocService(tx store.Allocations, old, s *api.Service) error {
	owner := svcOwner(s)
	// The VIP is kept for the service's life: an update without one keeps
	// the old, a different one is refused.
	if old != nil && !old.Spec.Headless && s.Spec.VIP == "" && !s.Spec.Headless {
		s.Spec.VIP = old.Spec.VIP
	}
	if old != nil && old.Spec.VIP != "" && s.Spec.VIP != "" && s.Spec.VIP != old.Spec.VIP {
		return invalidField("spec.vip", fmt.Sprintf("is immutable: %s cannot become %s (delete and recreate the service)", old.Spec.VIP, s.Spec.VIP))
	}
	switch {
	case s.Spec.Headless:
		s.Spec.VIP = ""
	case old == nil || old.Spec.VIP == "":
		vip, err := a.takeVIP(tx, owner, s.Spec.VIP)
		if err != nil {
			return err
		}
		s.Spec.VIP = vip
	}
	if old != nil && old.Spec.VIP != "" && s.Spec.VIP == "" {
		if err := tx.Delete(vipKey(netip.MustParseAddr(old.Spec.VIP))); err != nil {
			return err
		}
	}
	// Node ports: reuse the old port of the same name (or number).
	kept := map[int32]bool{}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if !s.Spec.External {
			p.NodePort = 0
			continue
		}
		if p.NodePort == 0 && old != nil {
			for _, op := range old.Spec.Ports {
				if op.NodePort != 0 && (op.Name != "" && op.Name == p.Name || op.Name == "" && op.Port == p.Port) && !kept[op.NodePort] {
					p.NodePort = op.NodePort
				}
			}
		}
		np, err := a.takePort(tx, owner, p.NodePort)
		if err != nil {
			return err
		}
		if kept[np] {
			return invalidField("spec.ports", fmt.Sprintf("node port %d is given twice", np))
		}
		p.NodePort, kept[np] = np, true
	}
	if old != nil {
		for _, op := range old.Spec.Ports {
			if op.NodePort != 0 && !kept[op.NodePort] {
				if err := tx.Delete(portKey(op.NodePort)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (a *allocator) releaseService(tx store.Allocations, s *api.Service) error {
	if s.Spec.VIP != "" {
		if ip, err := netip.ParseAddr(s.Spec.VIP); err == nil {
			if holder, _ := tx.Get(vipKey(ip)); holder == svcOwner(s) {
				if err := tx.Delete(vipKey(ip)); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			if holder, _ := tx.Get(portKey(p.NodePort)); holder == svcOwner(s) {
				if err := tx.Delete(portKey(p.NodePort)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ---- node pod CIDRs ----

func (a *allocator) cidrCount() int { return 1 << (a.nodeBits - a.pods.Bits()) }

func (a *allocator) cidrAt(i int) netip.Prefix {
	base := addrToU32(a.pods.Addr()) + uint32(i)<<(32-a.nodeBits)
	return netip.PrefixFrom(u32ToAddr(base), a.nodeBits)
}

func cidrKey(p netip.Prefix) string { return "podcidr/" + p.String() }

// nodeBlock parses a pod CIDR given for a node (by its agent's --pod-cidr,
// or by an admin): it must be one whole per-node block of the pod network,
// because every agent routes each node's pod CIDR to that node, and a node
// could otherwise draw traffic for service VIPs, other nodes' pods or any
// address to itself.
func (a *allocator) nodeBlock(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, invalidField("spec.podCIDR", fmt.Sprintf("%s is not an IPv4 CIDR: leave it empty (capstan agent without --pod-cidr) and the server allocates a /%d of %s", strconv.Quote(s), a.nodeBits, a.pods))
	}
	if p.Bits() != a.nodeBits || !a.pods.Contains(p.Addr()) {
		return netip.Prefix{}, invalidField("spec.podCIDR", fmt.Sprintf("%s is not a /%d block of the cluster's pod network %s: leave it empty (capstan agent without --pod-cidr) and the server allocates one, or give a free one such as %s", p, a.nodeBits, a.pods, a.cidrAt(0)))
	}
	if p != p.Masked() {
		return netip.Prefix{}, invalidField("spec.podCIDR", fmt.Sprintf("%s is not a whole block: write %s", p, p.Masked()))
	}
	return p, nil
}

// cidrHolder returns the block held that overlaps p, a block of the pod
// network, and its node: p itself or a larger block holding it. The server
// cuts blocks of one size, aligned, so these are all it can overlap, but
// for a block given before pod CIDRs were checked, or cut by a server with
// a smaller --node-cidr-bits.
func (a *allocator) cidrHolder(tx store.Allocations, p netip.Prefix) (netip.Prefix, string, bool) {
	for bits := p.Bits(); bits >= a.pods.Bits(); bits-- {
		q, _ := p.Addr().Prefix(bits)
		if holder, taken := tx.Get(cidrKey(q)); taken {
			return q, holder, true
		}
	}
	return netip.Prefix{}, "", false
}

func (a *allocator) allocNode(tx store.Allocations, old, n *api.Node) error {
	if old != nil && old.Spec.PodCIDR != "" {
		if n.Spec.PodCIDR != "" && n.Spec.PodCIDR != old.Spec.PodCIDR {
			return invalidField("spec.podCIDR", fmt.Sprintf("is immutable: %s cannot become %s", old.Spec.PodCIDR, n.Spec.PodCIDR))
		}
		n.Spec.PodCIDR = old.Spec.PodCIDR
		return nil
	}
	owner := n.Metadata.Name
	if n.Spec.PodCIDR != "" {
		p, err := a.nodeBlock(n.Spec.PodCIDR)
		if err != nil {
			return err
		}
		if held, holder, taken := a.cidrHolder(tx, p); taken && holder != owner {
			// Invalid, not a conflict: a retry would meet the same block.
			return invalidField("spec.podCIDR", fmt.Sprintf("%s overlaps %s of node %s: leave it empty (capstan agent without --pod-cidr) and the server allocates a free block", p, held, holder))
		}
		n.Spec.PodCIDR = p.String()
		return tx.Put(cidrKey(p), owner)
	}
	i, err := pick(tx, "podcidr-next", a.cidrCount(), func(i int) bool {
		_, _, taken := a.cidrHolder(tx, a.cidrAt(i))
		return taken
	})
	if err != nil {
		return exhausted("pod CIDR " + a.pods.String())
	}
	p := a.cidrAt(i)
	n.Spec.PodCIDR = p.String()
	return tx.Put(cidrKey(p), owner)
}

// ---- store.Hooks ----

func (a *allocator) BeforeCreate(tx store.Allocations, obj api.Object) error {
	switch o := obj.(type) {
	case *api.Service:
		return a.allocService(tx, nil, o)
	case *api.Node:
		return a.allocNode(tx, nil, o)
	}
	return nil
}

// UpdateHookKind names the kinds BeforeUpdate acts on (store.UpdateHookKinds):
// keep the two in step.
func (a *allocator) UpdateHookKind(k api.Kind) bool {
	return k == api.KindService || k == api.KindNode
}

func (a *allocator) BeforeUpdate(tx store.Allocations, old, obj api.Object) error {
	switch o := obj.(type) {
	case *api.Service:
		return a.allocService(tx, old.(*api.Service), o)
	case *api.Node:
		return a.allocNode(tx, old.(*api.Node), o)
	}
	return nil
}

func (a *allocator) AfterDelete(tx store.Allocations, obj api.Object) error {
	switch o := obj.(type) {
	case *api.Service:
		return a.releaseService(tx, o)
	case *api.Node:
		if p, err := netip.ParsePrefix(o.Spec.PodCIDR); err == nil {
			if holder, _ := tx.Get(cidrKey(p.Masked())); holder == o.Metadata.Name {
				return tx.Delete(cidrKey(p.Masked()))
			}
		}
	}
	return nil
}

// clusterInfo is what the nodes must know of the ranges.
func (a *allocator) clusterInfo() wire.ClusterInfo {
	return wire.ClusterInfo{PodCIDR: a.pods.String(), ServiceCIDR: a.svc.String()}
}

// storeHooks are what the store is told about objects: the allocations
// (the allocator) and which node an object is bound to (store.NodeIndex),
// by which it routes pod lists and watches to nodes.
type storeHooks struct{ *allocator }

// NodeOf returns the node a pod is bound to; other kinds are on none.
func (storeHooks) NodeOf(obj api.Object) string {
	if p, ok := obj.(*api.Pod); ok {
		return p.Spec.NodeName
	}
	return ""
}
