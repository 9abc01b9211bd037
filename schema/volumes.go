package schema

import (
	"fmt"
	"strings"

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

// podNameSuffix is what the workload controller adds to a pod group's name
// to name its pods ("-" and 5 random characters).
const podNameSuffix = len("-xxxxx")

// derivedNames refuses names the cluster would derive from the app's pod
// groups and refuse later, when sync has already said Applied: a pod name
// or a persistent volume's name over 63 characters (names.go checks only
// the group's own), and two persistent volumes of different groups whose
// names could be the same object (volumeClash). Jobs and everyNode groups
// shorten their pods' names (api.JobName) and are not checked.
func (c *converter) derivedNames(app *api.App) {
	type pvol struct{ group, vol string }
	var pvols []pvol
	for _, w := range app.Spec.Workloads {
		s := &w.Spec
		if s.Job != nil || s.EveryNode {
			continue
		}
		if !s.Ordered {
			if n := len(w.Name) + podNameSuffix; n > api.MaxLabelLen {
				c.probs = append(c.probs, problem{path: []string{"pods", w.Name}, anchor: atName,
					msg: fmt.Sprintf("pod group name of %d characters: its pods are named %s-xxxxx, %d characters, and a pod name has at most %d; shorten it to %d or fewer",
						len(w.Name), w.Name, n, api.MaxLabelLen, api.MaxLabelLen-podNameSuffix)})
			}
			continue
		}
		last := api.OrdinalPodName(w.Name, max(int(s.Replicas)-1, 0))
		if len(last) > api.MaxLabelLen {
			c.probs = append(c.probs, problem{path: []string{"pods", w.Name}, anchor: atName,
				msg: fmt.Sprintf("ordered pod group of %d replicas: its last replica is the pod %s, %d characters, and a pod name has at most %d; shorten the pod group name or lower replicas",
					s.Replicas, last, len(last), api.MaxLabelLen)})
			continue
		}
		for _, v := range s.Template.Volumes {
			if v.Persistent == nil {
				continue
			}
			pvols = append(pvols, pvol{w.Name, v.Name})
			if name := api.VolumeName(last, v.Name); len(name) > api.MaxLabelLen {
				c.probs = append(c.probs, problem{path: []string{"pods", w.Name, "volumes", v.Name}, anchor: atName,
					msg: fmt.Sprintf("replica %s's persistent volume would be named %s, %d characters, and a volume name has at most %d; shorten the volume or pod group name, or lower replicas",
						last, name, len(name), api.MaxLabelLen)})
			}
		}
	}
	for i, a := range pvols {
		for _, b := range pvols[i+1:] {
			name, ok := volumeClash(a.group, a.vol, b.group, b.vol)
			if !ok {
				continue
			}
			for _, p := range [][2]pvol{{a, b}, {b, a}} {
				this, other := p[0], p[1]
				c.probs = append(c.probs, problem{path: []string{"pods", this.group, "volumes", this.vol}, anchor: atName,
					msg: fmt.Sprintf("the persistent volume %s of pod group %s and the volume %s of pod group %s can both be the Volume %s (a replica's volume is named GROUP-ORDINAL-VOLUME), and two replicas would share its data: rename one of the volumes or pod groups",
						this.vol, this.group, other.vol, other.group, name)})
			}
		}
	}
}

// volumeClash reports whether a replica's persistent volume v1 of ordered
// group g1 and one's v2 of g2 (another group) can have the same name
// (api.VolumeName: GROUP-ORDINAL-VOLUME), and which. Names are DNS labels
// and an ordinal is digits, so with g1 the shorter group name, g2 must be
// g1-N1[-REST] and v1 must be [REST-]N2-v2: "kv" with "1-data" and "kv-0"
// with "data" both give kv-0-1-data.
func volumeClash(g1, v1, g2, v2 string) (string, bool) {
	if len(g1) > len(g2) {
		g1, v1, g2, v2 = g2, v2, g1, v1
	}
	r, ok := strings.CutPrefix(g2, g1+"-")
	if !ok {
		return "", false
	}
	n1, rest, more := strings.Cut(r, "-")
	if !isOrdinal(n1) {
		return "", false
	}
	if more {
		if v1, ok = strings.CutPrefix(v1, rest+"-"); !ok {
			return "", false
		}
	}
	n2, tail, ok := strings.Cut(v1, "-")
	if !ok || !isOrdinal(n2) || tail != v2 {
		return "", false
	}
	return g2 + "-" + n2 + "-" + v2, true
}

// isOrdinal reports whether s is how a replica's ordinal is written:
// decimal digits without a leading zero, below api.MaxReplicas.
func isOrdinal(s string) bool {
	n := api.PodOrdinal("x", "x-"+s)
	return n >= 0 && n < api.MaxReplicas
}
