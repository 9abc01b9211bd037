package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// What becomes of a volume's data on the node. Data goes only on proof
// that its deletion was asked for: its Volume object marked for deletion
// (metadata.deletionRequestedAt, set by `capstan delete volume` and by
// the garbage collector under reclaim Delete), as a Kubernetes
// PersistentVolume goes only through its finalizer. The agent records the
// mark on disk (deletedMarker) as soon as it sees it, removes the data
// once no pod there names the volume, then deletes the object. Data whose
// object is simply absent (a restore of an older backup, a bug, a wrong
// write) is kept and reported, and adopted by the next object of the same
// volume (app and name) on this node.

// deletedMarker in a volume's directory records that its object was
// marked for deletion: a --force delete removes the object right after,
// and the data must still go once its pod has.
const deletedMarker = "deleted"

// volumePlan is what collectVolumes does with the volumes on disk.
type volumePlan struct {
	// Mark: directories whose object is marked for deletion, to record
	// on disk before anything else.
	Mark []volumeDir
	// Remove: directories whose deletion is proven and that no pod on the
	// node names: their data goes.
	Remove []volumeDir
	// Finish: volumes of this node marked for deletion that no pod names:
	// their objects go once their data has.
	Finish []*api.PersistentVolume
	// Orphans: directories whose object is gone without a deletion seen
	// (or names another node): kept, and reported.
	Orphans []volumeDir
}

// planVolumes decides what becomes of the volumes on disk (marked: those
// holding deletedMarker) given the Volume objects and the pods bound to
// the node. Pure: the caller lists the disk, the objects and the pods.
func planVolumes(onDisk []volumeDir, marked map[volumeDir]bool, volumes []*api.PersistentVolume, pods []*api.Pod, node string) volumePlan {
	here := map[string]*api.PersistentVolume{}
	for _, v := range volumes {
		if v.Spec.NodeName == node {
			here[v.Metadata.UID] = v
		}
	}
	used := map[string]bool{}
	for _, p := range pods {
		for _, v := range p.Spec.Volumes {
			if v.Persistent != nil {
				used[p.Metadata.App+"/"+api.VolumeName(p.Metadata.Name, v.Name)] = true
			}
		}
	}
	var plan volumePlan
	for _, d := range onDisk {
		v := here[d.UID]
		switch {
		case v != nil && !api.Terminating(v):
			// Live.
		case v != nil || marked[d]:
			if !marked[d] {
				plan.Mark = append(plan.Mark, d)
			}
			if !used[d.App+"/"+d.Name] {
				plan.Remove = append(plan.Remove, d)
			}
		default:
			plan.Orphans = append(plan.Orphans, d)
		}
	}
	for _, v := range volumes {
		if v.Spec.NodeName == node && api.Terminating(v) && !used[v.Metadata.App+"/"+v.Metadata.Name] {
			plan.Finish = append(plan.Finish, v)
		}
	}
	slices.SortFunc(plan.Finish, func(a, b *api.PersistentVolume) int {
		return strings.Compare(a.Metadata.App+"/"+a.Metadata.Name, b.Metadata.App+"/"+b.Metadata.Name)
	})
	return plan
}

// marked returns the directories of onDisk that hold deletedMarker.
func (d *volumeDirs) marked(onDisk []volumeDir) map[volumeDir]bool {
	out := map[volumeDir]bool{}
	for _, v := range onDisk {
		if _, err := os.Stat(filepath.Join(v.path(d.root), deletedMarker)); err == nil {
			out[v] = true
		}
	}
	return out
}

// mark records in v's directory that its deletion was asked for.
func (d *volumeDirs) mark(v volumeDir) error {
	if err := os.WriteFile(filepath.Join(v.path(d.root), deletedMarker), nil, 0o600); err != nil {
		return fmt.Errorf("volume %s/%s: record its deletion: %w", v.App, v.Name, err)
	}
	return nil
}

// noteDeletion records on disk that o, a Volume of node, was marked for
// deletion, when its data is here: the informer's handlers call it for
// every update and delete, so that a --force delete, whose object goes
// right after its mark, still leaves its proof.
func (d *volumeDirs) noteDeletion(o api.Object, node string) error {
	v, ok := o.(*api.PersistentVolume)
	if !ok || !api.Terminating(v) || v.Spec.NodeName != node {
		return nil
	}
	err := d.mark(volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not made here
	}
	return err
}

// adopt gives v the data of an earlier object of the same volume (app and
// name) on this node when v has none here yet: a directory whose UID no
// Volume object has (known reports the UIDs that one has) and whose
// deletion was never seen, the newest when there are several. It unmounts
// that data first (no pod can use it: v's replica has v's name) and
// renames its directory to v's. It returns the directory adopted.
func (d *volumeDirs) adopt(v *api.PersistentVolume, known func(uid string) bool) (volumeDir, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	to := volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID}
	if _, err := os.Stat(filepath.Join(to.path(d.root), "disk.img")); !errors.Is(err, fs.ErrNotExist) {
		return volumeDir{}, false, nil // made here already (or unreadable: ensure says so)
	}
	paths, err := filepath.Glob(filepath.Join(d.root, to.App, to.Name, "*"))
	if err != nil {
		return volumeDir{}, false, err
	}
	var from volumeDir
	var newest int64
	for _, p := range paths {
		uid := filepath.Base(p)
		if uid == to.UID || known(uid) {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, deletedMarker)); err == nil {
			continue
		}
		st, err := os.Stat(filepath.Join(p, "disk.img"))
		if err != nil {
			continue
		}
		if t := st.ModTime().UnixNano(); from.UID == "" || t > newest {
			from, newest = volumeDir{to.App, to.Name, uid}, t
		}
	}
	if from.UID == "" {
		return volumeDir{}, false, nil
	}
	mnt := filepath.Join(from.path(d.root), "mnt")
	if mounted, err := isMountPoint(mnt); err != nil {
		return volumeDir{}, false, err
	} else if mounted {
		if err := unix.Unmount(mnt, 0); err != nil {
			return volumeDir{}, false, fmt.Errorf("volume %s/%s: adopt the data of uid %s: unmount %s: %w", to.App, to.Name, from.UID, mnt, err)
		}
	}
	// A directory made for v and left empty (a start that failed) would
	// stop the rename.
	_ = os.RemoveAll(to.path(d.root))
	if err := os.Rename(from.path(d.root), to.path(d.root)); err != nil {
		return volumeDir{}, false, fmt.Errorf("volume %s/%s: adopt the data of uid %s: %w", to.App, to.Name, from.UID, err)
	}
	return from, true, nil
}

// adoptVolume gives v the data an earlier object of it left on this node
// (volumeDirs.adopt), and says so in the log and an event on v.
func (a *Agent) adoptVolume(v *api.PersistentVolume) error {
	known := map[string]bool{}
	for _, o := range a.volumes.List() {
		known[o.Meta().UID] = true
	}
	from, ok, err := a.volDirs.adopt(v, func(uid string) bool { return known[uid] })
	if err != nil || !ok {
		return err
	}
	key := v.Metadata.App + "/" + v.Metadata.Name
	a.log.Warn("volume data adopted: an earlier object of this volume left it here and went without a deletion (a restore of an older backup?)", "volume", key, "uid", v.Metadata.UID, "from uid", from.UID)
	ref := api.ObjectRef{Kind: api.KindVolume, App: v.Metadata.App, Name: v.Metadata.Name, UID: v.Metadata.UID}
	a.ev.emit(ref, api.EventNormal, EventVolumeAdopted, fmt.Sprintf("found on node %s the data of an earlier object of this volume (uid %s), kept because it went without a deletion (a restore of an older backup?): the volume has that data", a.opts.NodeName, from.UID))
	return nil
}

// collectVolumes carries out planVolumes: records the deletions seen,
// removes the data whose deletion is proven, deletes the objects whose
// data is gone, and reports the orphaned data kept. It does nothing until
// both the Volume objects and this node's pods are listed: a pod list not
// in yet (an agent restart, the pods' list slower than the volumes')
// would make the volume of a running pod look unused, and its data go
// under the pod.
func (a *Agent) collectVolumes(ctx context.Context) {
	if !synced(a.volumes) || !synced(a.pods) {
		return
	}
	onDisk, err := a.volDirs.list()
	if err != nil {
		a.log.Warn("list volumes", "err", err)
		return
	}
	vols := make([]*api.PersistentVolume, 0)
	for _, o := range a.volumes.List() {
		vols = append(vols, o.(*api.PersistentVolume))
	}
	pods := make([]*api.Pod, 0)
	for _, o := range a.pods.List() {
		pods = append(pods, o.(*api.Pod))
	}
	marked := a.volDirs.marked(onDisk)
	plan := planVolumes(onDisk, marked, vols, pods, a.opts.NodeName)
	failed := map[string]bool{} // UIDs whose data is still here
	removed := false
	for _, d := range plan.Mark {
		if err := a.volDirs.mark(d); err != nil {
			a.log.Error("record a volume's deletion; retrying on the next change", "volume", d.App+"/"+d.Name, "uid", d.UID, "err", err)
			failed[d.UID] = true
		}
	}
	for _, d := range plan.Remove {
		if failed[d.UID] {
			continue
		}
		if err := a.volDirs.remove(d); err != nil {
			a.log.Error("remove volume; retrying on the next change", "volume", d.App+"/"+d.Name, "uid", d.UID, "err", err)
			failed[d.UID] = true
			continue
		}
		a.log.Info("volume removed: its deletion was asked for", "volume", d.App+"/"+d.Name, "uid", d.UID)
		removed = true
	}
	if removed {
		// The room freed shows at once, not at the next step of the
		// periodic check: a replica waiting for room is tried again.
		if err := a.reportStorage(ctx, true); err != nil {
			a.log.Warn("free space for volumes; again on the next check", "err", err)
		}
	}
	for _, v := range plan.Finish {
		if failed[v.Metadata.UID] {
			continue
		}
		_, err := a.opts.Client.Delete(ctx, api.KeyOf(v), client.DeleteOptions{ResourceVersion: v.Metadata.ResourceVersion})
		if err != nil && !client.IsNotFound(err) {
			a.log.Warn("delete a volume whose data is removed; retrying on the next change", "volume", v.Metadata.App+"/"+v.Metadata.Name, "err", err)
		}
	}
	a.reportOrphans(ctx, plan.Orphans)
}

// reportOrphans says which volume data this node keeps without an object
// (only collectVolumes' goroutine calls it):
// in the log, once for each, and in the node's VolumeDataOrphaned
// condition (`capstan get nodes` shows the node as Ready,OrphanedVolumes;
// `capstan describe node` lists them), written when the list changes.
func (a *Agent) reportOrphans(ctx context.Context, orphans []volumeDir) {
	cond := orphanCondition(orphans, a.volDirs.root)
	for _, d := range orphans {
		if !a.orphans[d] {
			a.log.Warn("volume data kept: its Volume object is gone, but no deletion of it was seen (a restore of an older backup, or a wrong write); a new object of the same volume on this node adopts it, or remove it on purpose (docs/volumes.md)",
				"volume", d.App+"/"+d.Name, "uid", d.UID, "dir", d.path(a.volDirs.root))
		}
	}
	now := map[volumeDir]bool{}
	for _, d := range orphans {
		now[d] = true
	}
	if a.orphansReported && maps.Equal(a.orphans, now) {
		return
	}
	a.orphans = now
	a.orphansReported = a.setNodeCondition(ctx, cond) == nil
}

// orphanCondition is the node's VolumeDataOrphaned condition for the
// orphaned volume directories under root.
func orphanCondition(orphans []volumeDir, root string) api.Condition {
	c := api.Condition{Type: api.NodeVolumeDataOrphaned, Status: api.ConditionFalse, Reason: "NoOrphanedVolumeData",
		Message: "every volume's data on this node has its Volume object"}
	if len(orphans) == 0 {
		return c
	}
	names := make([]string, 0, len(orphans))
	for _, d := range orphans {
		names = append(names, fmt.Sprintf("%s/%s (uid %s)", d.App, d.Name, d.UID))
	}
	const most = 10
	more := ""
	if len(names) > most {
		more = fmt.Sprintf(" and %d more", len(names)-most)
		names = names[:most]
	}
	c.Status, c.Reason = api.ConditionTrue, "VolumeObjectGone"
	c.Message = fmt.Sprintf("%s kept under %s: their Volume objects are gone but no deletion of them was seen (a restore of an older backup?), so the data stays; a new object of the same volume placed on this node adopts it (the replica gets its data back), or remove it on purpose on this node: umount DIR/mnt, then rm -r DIR, DIR being %s/APP/NAME/UID (docs/volumes.md): %s%s",
		api.Plural(len(orphans), "volume"), root, root, strings.Join(names, ", "), more)
	return c
}

// setNodeCondition writes c on this node's Node unless it shows it.
func (a *Agent) setNodeCondition(ctx context.Context, c api.Condition) error {
	o, err := a.opts.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: a.opts.NodeName})
	if err != nil {
		a.log.Warn("report orphaned volume data on the node; again on the next change", "err", err)
		return err
	}
	n := api.Clone(o.(*api.Node))
	c.LastTransitionTime = a.opts.Now().UTC()
	if !api.SetCondition(&n.Status.Conditions, c) {
		return nil
	}
	if _, err := a.opts.Client.UpdateStatus(ctx, n); err != nil {
		a.log.Warn("report orphaned volume data on the node; again on the next change", "err", err)
		return err
	}
	return nil
}
