package schema

import (
	"github.com/capstanhq/capstan/apiserver/api"
)

// volume converts one volume of a pod group. A persistent volume belongs
// to one replica, found again by the replica's stable name, so only an
// ordered group may declare one: a replica with a random name could not
// find its volume after a replacement.
func (c *converter) volume(name string, d dVolume, desc []string) api.Volume {
	v := api.Volume{Name: name}
	if d.Persistent == nil {
		return v
	}
	sub := func(s ...string) []string { return append(append([]string{}, desc...), s...) }
	// A group that is not ordered is refused by api.Validate.
	p := &api.PersistentSource{Reclaim: api.ReclaimRetain}
	if d.Persistent.Reclaim == "delete" {
		p.Reclaim = api.ReclaimDelete
	}
	c.quantity(d.Persistent.Size, &p.Size, sub("persistent", "size"))
	v.Persistent = p
	return v
}

// ordered refuses an ordered group that is also a job or an everyNode
// group: a job's pods run to completion in runs and an everyNode group's
// pods follow the nodes; neither has replicas with ordinals.
func (c *converter) ordered(g dGroup, sub func(...string) []string) {
	if !g.Ordered {
		return
	}
	if g.EveryNode {
		c.fail(sub("ordered"), "an everyNode group has one pod per node, not replicas with stable names: remove ordered or everyNode")
	}
	if g.Job != nil || g.Schedule != "" {
		c.fail(sub("ordered"), "a job's pods run to completion, in runs, without stable names: remove ordered or job and schedule")
	}
}
