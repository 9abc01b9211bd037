package proxy

import (
	"slices"

	"github.com/capstanhq/capstan/apiserver/api"
)

// cachedService is what the proxier last programmed for one service: a
// private copy of the inputs that matter (so a caller mutating its objects
// cannot hide a change) and the fragment they produced.
type cachedService struct {
	key      serviceKey
	vip      string
	external bool
	headless bool
	ports    []api.ServicePort
	hasEps   bool
	addrs    []api.EndpointAddress
	frag     *fragment
	// seen is the Proxier generation in which the service was last in the
	// input.
	seen uint64
}

func newCachedService(key serviceKey, svc *api.Service, ep *api.Endpoints, frag *fragment) *cachedService {
	c := &cachedService{
		key:      key,
		vip:      svc.Spec.VIP,
		external: svc.Spec.External,
		headless: svc.Spec.Headless,
		ports:    slices.Clone(svc.Spec.Ports),
		frag:     frag,
	}
	if ep != nil {
		c.hasEps = true
		c.addrs = make([]api.EndpointAddress, len(ep.Spec.Addresses))
		for i, a := range ep.Spec.Addresses {
			a.Ports = slices.Clone(a.Ports)
			c.addrs[i] = a
		}
	}
	return c
}

func (c *cachedService) fragment() *fragment {
	if c == nil {
		return nil
	}
	return c.frag
}

// matches reports whether svc and ep are the inputs c was built from. It
// compares field by field: reflect.DeepEqual is too slow for 10,000
// services on every sync.
func (c *cachedService) matches(svc *api.Service, ep *api.Endpoints) bool {
	if c.vip != svc.Spec.VIP || c.external != svc.Spec.External || c.headless != svc.Spec.Headless ||
		!slices.Equal(c.ports, svc.Spec.Ports) || c.hasEps != (ep != nil) {
		return false
	}
	if ep == nil {
		return true
	}
	return slices.EqualFunc(c.addrs, ep.Spec.Addresses, func(a, b api.EndpointAddress) bool {
		return a.IP == b.IP && a.Node == b.Node && a.Pod == b.Pod && a.Ready == b.Ready && slices.Equal(a.Ports, b.Ports)
	})
}
