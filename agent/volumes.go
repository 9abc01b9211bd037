package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Persistent volumes on the node. Each lives in its own directory,
//
//	DATA_DIR/volumes/APP/NAME/UID/disk.img   a file of the volume's size, allocated
//	DATA_DIR/volumes/APP/NAME/UID/mnt        the ext4 file system in it, loop-mounted
//
// so its size is a hard limit (a full volume answers ENOSPC, and the node's
// disk is not filled). The UID is the Volume object's: a volume deleted and
// made again under the same name never finds the old data. Containers bind
// mount mnt. Mounts outlive the agent (a restart adopts them, as it adopts
// containers); only the collection in volumegc.go (which removes data
// only on proof of its deletion) and `capstan down` unmount them.

// VolumesSubdir is where persistent volumes live under the data directory.
const VolumesSubdir = "volumes"

// volumeDirs serialises mounting and removal: one volume is never
// prepared twice at once, nor removed while being prepared.
type volumeDirs struct {
	root string
	mu   sync.Mutex
}

// volumeDir is one volume's directory on disk.
type volumeDir struct{ App, Name, UID string }

func (v volumeDir) path(root string) string { return filepath.Join(root, v.App, v.Name, v.UID) }

// ensure returns the mounted directory of v, making and mounting its file
// system first when needed.
func (d *volumeDirs) ensure(ctx context.Context, v *api.PersistentVolume) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID}.path(d.root)
	mnt := filepath.Join(dir, "mnt")
	if mounted, err := isMountPoint(mnt); err != nil {
		return "", err
	} else if mounted {
		return mnt, nil
	}
	if err := mount(ctx, v, dir); err != nil {
		return "", err
	}
	return mnt, nil
}

// mount makes the volume's image in dir when it has none and the volume
// was never made (ErrVolumeDataMissing when it was: its data is lost to
// this machine), grows it when its size was raised, and loop-mounts it on
// dir/mnt.
func mount(ctx context.Context, v *api.PersistentVolume, dir string) error {
	mnt, img := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk.img")
	_, err := os.Stat(img)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !v.Status.Capacity.IsZero():
		key, pod := v.Metadata.App+"/"+v.Metadata.Name, v.Metadata.App+"/"+api.OrdinalPodName(v.Spec.Workload, int(v.Spec.Ordinal))
		return fmt.Errorf("volume %s: %w: node %s made it (%s), but %s does not exist (the machine was replaced, or the agent's data directory lost or moved); the replica waits rather than start on an empty volume: restore that file, or, if the data is lost, 'capstan delete volume %s --force' then 'capstan delete pod %s', and the replica starts again on a new, empty volume",
			key, ErrVolumeDataMissing, v.Spec.NodeName, api.FormatBytes(v.Status.Capacity.Value()), img, key, pod)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("volume %s: %w", v.Metadata.Name, err)
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return fmt.Errorf("volume %s: %w", v.Metadata.Name, err)
	}
	if err != nil { // no image yet: a new volume
		if err := makeImage(ctx, img, v.Spec.Size.Value()); err != nil {
			return fmt.Errorf("volume %s: %w", v.Metadata.Name, err)
		}
	}
	if _, err := growImage(ctx, dir, v.Spec.Size.Value()); err != nil {
		return fmt.Errorf("volume %s: %w", v.Metadata.Name, err)
	}
	// -o loop attaches a loop device that is freed with the last unmount.
	if out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("volume %s: mount %s: %w: %s", v.Metadata.Name, img, err, strings.TrimSpace(string(out)))
	}
	// World-writable, like a scratch volume: images may run as any user.
	if err := os.Chmod(mnt, 0o777); err != nil {
		return fmt.Errorf("volume %s: %w", v.Metadata.Name, err)
	}
	return nil
}

// grow grows the file system of v to its spec.size when v is mounted
// here and smaller (a descriptor's size raised); an unmounted volume
// grows when it is next mounted. It reports whether it grew.
func (d *volumeDirs) grow(ctx context.Context, v *api.PersistentVolume) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID}.path(d.root)
	// Cheap checks first: this runs for every volume of the node on every
	// change of a volume or a pod.
	if need, err := needsGrowth(dir, v.Spec.Size.Value()); err != nil || !need {
		return false, err
	}
	if mounted, err := isMountPoint(filepath.Join(dir, "mnt")); err != nil || !mounted {
		return false, err
	}
	return growImage(ctx, dir, v.Spec.Size.Value())
}

// needsGrowth reports whether the image in dir is smaller than size, or
// a growth of it was cut short; false when it is not made yet.
func needsGrowth(dir string, size int64) (bool, error) {
	st, err := os.Stat(filepath.Join(dir, "disk.img"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	_, err = os.Stat(filepath.Join(dir, growMarker))
	return st.Size() < size || err == nil, nil
}

// capacity returns the size of v's file system on disk, its image's
// length; known is false when the image is not made yet, or a growth of
// it was cut short (the file system is then smaller than its image).
func (d *volumeDirs) capacity(v *api.PersistentVolume) (size int64, known bool, err error) {
	dir := volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID}.path(d.root)
	st, err := os.Stat(filepath.Join(dir, "disk.img"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	if _, err := os.Stat(filepath.Join(dir, growMarker)); err == nil {
		return 0, false, nil
	}
	return st.Size(), true, nil
}

// volumeStatus is v's status as its node reports it: the capacity of its
// file system (when known, else the last one reported), and while that
// is below spec.size the FileSystemResizePending condition saying why:
// the growth failed (growErr), or waits for the volume's next mount, as
// a Kubernetes PersistentVolumeClaim shows it. Pure: the caller observes
// the disk and the mounts.
func volumeStatus(v *api.PersistentVolume, size int64, known, mounted bool, growErr error, node string, now time.Time) api.VolumeStatus {
	st := api.VolumeStatus{Capacity: v.Status.Capacity, Conditions: slices.Clone(v.Status.Conditions)}
	if known {
		st.Capacity = api.NewQuantity(size, api.BinarySI)
	}
	want := v.Spec.Size.Value()
	if st.Capacity.IsZero() || st.Capacity.Value() >= want {
		st.Conditions = slices.DeleteFunc(st.Conditions, func(c api.Condition) bool { return c.Type == api.VolumeResizePending })
		if len(st.Conditions) == 0 {
			st.Conditions = nil
		}
		return st
	}
	have, to := api.FormatBytes(st.Capacity.Value()), api.FormatBytes(want)
	c := api.Condition{Type: api.VolumeResizePending, Status: api.ConditionTrue, LastTransitionTime: now.UTC()}
	switch {
	case growErr != nil:
		c.Reason = api.ReasonResizeFailed
		c.Message = fmt.Sprintf("growing from %s to %s on node %s failed; the volume keeps its size and its data, and is grown again on its next change or when next mounted: %v", have, to, node, growErr)
	case !mounted:
		c.Reason = api.ReasonVolumeNotMounted
		c.Message = fmt.Sprintf("not mounted on node %s: it grows from %s to %s when replica %s next starts there", node, have, to, api.OrdinalPodName(v.Spec.Workload, int(v.Spec.Ordinal)))
	default:
		c.Reason = "Resizing"
		c.Message = fmt.Sprintf("growing from %s to %s on node %s", have, to, node)
	}
	api.SetCondition(&st.Conditions, c)
	return st
}

// reportVolume writes v's status (volumeStatus) when it changed, so that
// `capstan get volumes` shows the capacity beside the size asked for.
// A failed write is logged; the next change of a volume or a pod writes
// it again.
func (a *Agent) reportVolume(ctx context.Context, v *api.PersistentVolume, growErr error) {
	size, known, err := a.volDirs.capacity(v)
	if err != nil {
		a.log.Warn("volume capacity", "volume", v.Metadata.App+"/"+v.Metadata.Name, "err", err)
		return
	}
	mounted := true
	if (known && size < v.Spec.Size.Value()) || (!known && v.Status.Capacity.Value() < v.Spec.Size.Value()) {
		dir := volumeDir{v.Metadata.App, v.Metadata.Name, v.Metadata.UID}.path(a.volDirs.root)
		if mounted, err = isMountPoint(filepath.Join(dir, "mnt")); err != nil {
			a.log.Warn("volume capacity", "volume", v.Metadata.App+"/"+v.Metadata.Name, "err", err)
			return
		}
	}
	st := volumeStatus(v, size, known, mounted, growErr, a.opts.NodeName, a.opts.Now())
	if api.EqualJSON(st, v.Status) {
		return
	}
	if known && size != v.Status.Capacity.Value() {
		// Made or grown: the node's free space first, so that the
		// scheduler, which counts a volume not made yet against its
		// node's room, never sees it made without the room it took.
		if err := a.reportStorage(ctx, true); err != nil {
			a.log.Warn("free space for volumes; again on the next check", "err", err)
		}
	}
	u := api.Clone(v)
	u.Status = st
	if _, err := a.opts.Client.UpdateStatus(ctx, u); err != nil && !client.IsNotFound(err) {
		a.log.Warn("report volume capacity; again on the next change", "volume", v.Metadata.App+"/"+v.Metadata.Name, "err", err)
	}
}

// growMarker is left in a volume's directory while its image grows: a
// failure between the image's new length and resize2fs leaves it, and
// the next attempt runs resize2fs although the image has its size.
const growMarker = "growing"

// growImage grows the ext4 image in dir to size bytes. The file is
// lengthened (reserve), then the file system resized into the new room: in place
// when it is mounted (its loop device told with LOOP_SET_CAPACITY, then
// resize2fs on it; the containers keep running), checked (e2fsck) and
// resized as a file before a mount otherwise. An image as large or
// larger is left alone: a volume never shrinks. So is one not made yet.
func growImage(ctx context.Context, dir string, size int64) (bool, error) {
	img, marker := filepath.Join(dir, "disk.img"), filepath.Join(dir, growMarker)
	if need, err := needsGrowth(dir, size); err != nil || !need {
		return false, err
	}
	dev, err := loopDevice(filepath.Join(dir, "mnt"))
	if err != nil {
		return false, err
	}
	_, err = os.Stat(marker)
	resumed := err == nil // a growth cut short: its file system is smaller than its image
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return false, err
	}
	if st, err := os.Stat(img); err != nil {
		return false, err
	} else if st.Size() < size {
		if err := reserve(img, size); err != nil {
			return false, undoReserve(img, marker, st.Size(), size, resumed, err)
		}
	}
	if dev == "" {
		// e2fsck exits 1 when it corrected something: the file system is
		// then fine to resize.
		out, err := exec.CommandContext(ctx, "e2fsck", "-f", "-p", img).CombinedOutput()
		if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			return false, fmt.Errorf("grow %s: e2fsck: %w: %s", img, err, strings.TrimSpace(string(out)))
		}
		if out, err := exec.CommandContext(ctx, "resize2fs", img).CombinedOutput(); err != nil {
			return false, fmt.Errorf("grow %s: resize2fs: %w: %s", img, err, strings.TrimSpace(string(out)))
		}
		return true, os.Remove(marker)
	}
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0)
	_ = f.Close()
	if err != nil {
		return false, fmt.Errorf("grow %s: set the capacity of %s: %w", img, dev, err)
	}
	if out, err := exec.CommandContext(ctx, "resize2fs", dev).CombinedOutput(); err != nil {
		return false, fmt.Errorf("grow %s in place: resize2fs %s: %w: %s (growing a mounted ext4 needs the agent to run as root with CAP_SYS_RESOURCE; otherwise the volume grows when next mounted, after capstan down or a reboot of the node)",
			img, dev, err, strings.TrimSpace(string(out)))
	}
	return true, os.Remove(marker)
}

// undoReserve gives back what a growth of img from old to size bytes
// took before reserve failed with err: fallocate may stop part way (ext4
// leaves the image longer, its file system not; other file systems keep
// blocks past the end), and that room would stay lost to the node. The
// image is cut back to old (which frees every block past it), and the
// growth marker goes unless an earlier growth left it (resumed). It
// returns the error to report, which says how much room the growth
// lacks when the disk is full.
func undoReserve(img, marker string, old, size int64, resumed bool, err error) error {
	what := fmt.Sprintf("grow %s from %s to %s", img, api.FormatBytes(old), api.FormatBytes(size))
	if terr := os.Truncate(img, old); terr != nil {
		return fmt.Errorf("%s: %w; giving back the room it took failed too (the next attempt retries): %w", what, err, terr)
	}
	if !resumed {
		if rerr := os.Remove(marker); rerr != nil {
			return fmt.Errorf("%s: %w; %w", what, err, rerr)
		}
	}
	if !errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%s: %w", what, err)
	}
	disk := "the node's disk lacks room"
	var st unix.Statfs_t
	if unix.Statfs(filepath.Dir(img), &st) == nil {
		disk = fmt.Sprintf("the node's disk has %dMi free", int64(st.Bavail)*st.Bsize>>20)
	}
	return fmt.Errorf("%s: %w: %s, the growth needs %s more; free space there (df -h %s), or ask for a smaller size",
		what, unix.ENOSPC, disk, api.FormatBytes(size-old), filepath.Dir(img))
}

// loopDevice returns the loop device mounted on mnt, "" when nothing is.
func loopDevice(mnt string) (string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mnt))
	if err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	if len(ms) == 0 {
		return "", nil
	}
	if !strings.HasPrefix(ms[len(ms)-1].Source, "/dev/loop") {
		return "", fmt.Errorf("%s is not a loop mount", mnt)
	}
	return ms[len(ms)-1].Source, nil
}

// makeImage writes a file of size bytes, reserved on the node's disk,
// holding an empty ext4 file system, through a temporary name so a crash
// leaves no half-made image.
func makeImage(ctx context.Context, img string, size int64) error {
	tmp := img + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := reserve(tmp, size); err != nil {
		_ = os.Remove(tmp) // give back what was taken
		return err
	}
	// No reserved blocks: the whole size is the application's. No
	// discard: on a file it punches holes in what reserve allocated.
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s (is e2fsprogs installed? make deps)", tmp, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, img)
}

// reserve makes the file at path size bytes long with its blocks
// allocated on the node's disk (fallocate), as a thick-provisioned
// volume: a sparse image would take writes its node's disk has no room
// for, and fail them as I/O errors inside the volume's file system
// ("potential data loss" in the kernel's log) while the volume still
// shows free space. A file system without fallocate gets a sparse file.
func reserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("reserve %s for %s: %w: the node's disk has less free space than the volume's size; free space there (df -h %s)",
			api.FormatBytes(size), path, err, filepath.Dir(path))
	case err != nil:
		return fmt.Errorf("reserve %s for %s: %w", api.FormatBytes(size), path, err)
	}
	return nil
}

// list returns the volume directories on disk.
func (d *volumeDirs) list() ([]volumeDir, error) {
	paths, err := filepath.Glob(filepath.Join(d.root, "*", "*", "*"))
	if err != nil {
		return nil, err
	}
	out := make([]volumeDir, 0, len(paths))
	for _, p := range paths {
		rel, _ := filepath.Rel(d.root, p)
		parts := strings.Split(rel, string(filepath.Separator))
		out = append(out, volumeDir{parts[0], parts[1], parts[2]})
	}
	return out, nil
}

// remove unmounts a volume and deletes its data.
func (d *volumeDirs) remove(v volumeDir) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := v.path(d.root)
	mnt := filepath.Join(dir, "mnt")
	if mounted, err := isMountPoint(mnt); err != nil {
		return err
	} else if mounted {
		if err := unix.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("volume %s/%s: unmount %s: %w", v.App, v.Name, mnt, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("volume %s/%s: %w", v.App, v.Name, err)
	}
	// The app and name directories go when empty.
	_ = os.Remove(filepath.Dir(dir))
	_ = os.Remove(filepath.Dir(filepath.Dir(dir)))
	return nil
}

// isMountPoint reports whether dir is a mount point of this mount
// namespace.
func isMountPoint(dir string) (bool, error) {
	mps, err := mountsUnder(dir)
	if err != nil {
		return false, fmt.Errorf("read mounts: %w", err)
	}
	return slices.Contains(mps, dir), nil
}

// synced reports whether i has its first list.
func synced(i *client.Informer) bool {
	select {
	case <-i.Synced():
		return true
	default:
		return false
	}
}

// growVolumes grows the mounted volumes of this node whose spec.size was
// raised (the workload controller applies a larger size in the
// descriptor), and says so in an event on the volume.
func (a *Agent) growVolumes(ctx context.Context) {
	for _, o := range a.volumes.List() {
		v := o.(*api.PersistentVolume)
		if v.Spec.NodeName != a.opts.NodeName {
			continue
		}
		ref := api.ObjectRef{Kind: api.KindVolume, App: v.Metadata.App, Name: v.Metadata.Name, UID: v.Metadata.UID}
		size := api.FormatBytes(v.Spec.Size.Value())
		grown, err := a.volDirs.grow(ctx, v)
		a.reportVolume(ctx, v, err)
		switch {
		case err != nil:
			a.log.Error("grow volume; retrying on its next change", "volume", v.Metadata.App+"/"+v.Metadata.Name, "err", err)
			a.ev.emit(ref, api.EventWarning, EventVolumeResizeFailed, fmt.Sprintf("growing to %s failed; the volume keeps its size and its data: %v", size, err))
		case grown:
			a.log.Info("volume grown", "volume", v.Metadata.App+"/"+v.Metadata.Name, "size", size)
			a.ev.emit(ref, api.EventNormal, EventVolumeResized, "file system grown to "+size+" in place on node "+a.opts.NodeName)
		}
	}
}

// volumeMounts returns the host directory of each persistent volume of
// pod, mounted, by pod volume name.
func (a *Agent) volumeMounts(ctx context.Context, pod *api.Pod) (map[string]string, error) {
	var out map[string]string
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil {
			continue
		}
		name := api.VolumeName(pod.Metadata.Name, v.Name)
		o, ok := a.volumes.Get(pod.Metadata.App + "/" + name)
		if !ok {
			return nil, fmt.Errorf("pod %s/%s: %w: volume %s not known yet", pod.Metadata.App, pod.Metadata.Name, ErrVolumeNotReady, name)
		}
		pv := o.(*api.PersistentVolume)
		if pv.Spec.NodeName != a.opts.NodeName {
			return nil, fmt.Errorf("pod %s/%s: %w: volume %s is on node %s", pod.Metadata.App, pod.Metadata.Name, ErrVolumeNotReady, name, pv.Spec.NodeName)
		}
		if err := a.adoptVolume(pv); err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", pod.Metadata.App, pod.Metadata.Name, err)
		}
		dir, err := a.volDirs.ensure(ctx, pv)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", pod.Metadata.App, pod.Metadata.Name, err)
		}
		a.reportVolume(ctx, pv, nil) // made, or grown as it was mounted
		if out == nil {
			out = map[string]string{}
		}
		out[v.Name] = dir
	}
	return out, nil
}

// volumeRecheck is how often the volumes on disk are looked at again
// without a change of a volume or a pod.
const volumeRecheck = 30 * time.Second

// startVolumes runs the informer of Volume objects; once it and the
// pods' informer have synced, and whenever a volume changes or goes away,
// it collects orphaned volume directories and grows the volumes whose
// size was raised.
func (a *Agent) startVolumes(ctx context.Context, bg *sync.WaitGroup) {
	a.volumes = client.NewInformer(a.opts.Client, api.KindVolume, client.ListOptions{}, a.log)
	collect := make(chan struct{}, 1)
	poke := func(api.Object) {
		select {
		case collect <- struct{}{}:
		default:
		}
	}
	// A deletion is recorded as soon as it is seen (a --force delete
	// removes the object right after its mark), then collected.
	note := func(o api.Object) {
		if err := a.volDirs.noteDeletion(o, a.opts.NodeName); err != nil {
			a.log.Error("record a volume's deletion; its data is kept", "volume", o.Meta().App+"/"+o.Meta().Name, "err", err)
		}
		poke(o)
	}
	a.volumes.AddHandler(client.Handler{OnDelete: note, OnUpdate: func(_, o api.Object) { note(o) }})
	// A pod gone may have been the last user of a volume deleted with
	// --force.
	a.pods.AddHandler(client.Handler{OnDelete: poke})
	bg.Go(func() { _ = a.volumes.Start(ctx) })
	bg.Go(func() {
		if a.volumes.WaitForSync(ctx) != nil || a.pods.WaitForSync(ctx) != nil {
			return
		}
		// Also every volumeRecheck: data an operator removed by hand is
		// no longer reported, and a failed removal or report is tried
		// again, with no change to wake the loop.
		tick := time.NewTicker(volumeRecheck)
		defer tick.Stop()
		for {
			a.collectVolumes(ctx)
			a.growVolumes(ctx)
			select {
			case <-ctx.Done():
				return
			case <-collect:
			case <-tick.C:
			}
		}
	})
}

// unmountVolumes unmounts every persistent volume under dataDir, for
// `capstan down`.
func unmountVolumes(dataDir string) error {
	mps, err := mountsUnder(filepath.Join(dataDir, VolumesSubdir))
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("down: unmount volume %s: %w", mp, err)
		}
	}
	return nil
}
