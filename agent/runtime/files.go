package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Files of a pod. Config files are written to the pod's directory;
// secret files to a tmpfs mounted for the pod under its run directory,
// so that no decrypted byte reaches the node's disk, and unmounted when
// the pod is removed. Every container of the pod bind-mounts each file
// read-only at its path.
//
// Both directories are for root only (0700, owned by root): runc, as
// root, resolves the bind mounts' sources, and a container then opens
// its files through the mount, where only the file's own mode counts;
// a user of the node would open them by path, through the directory.

// PodFile is one file delivered into every container of a pod.
type PodFile struct {
	// Path is the absolute path inside the containers.
	Path    string
	Content []byte
	// Mode is the file's permission bits (0 means 0444).
	Mode os.FileMode
	// Secret files live in memory only (tmpfs).
	Secret bool
}

// SandboxFile is a file of the sandbox: where it is on the node and
// where the containers see it.
type SandboxFile struct {
	Source string `json:"source"`
	Path   string `json:"path"`
}

// secretFSSize bounds the tmpfs of a pod's secret files.
const secretFSSize = 4 << 20

// secretDir is where the secret files of a pod live on the node.
func (c *Containerd) secretDir(uid string) string {
	return filepath.Join(c.podRunDir(uid), "secrets")
}

// writeFiles writes the pod's files and returns how to mount them.
func (c *Containerd) writeFiles(uid string, files []PodFile) ([]SandboxFile, error) {
	if len(files) == 0 {
		return nil, nil
	}
	cfgDir := filepath.Join(c.podDir(uid), "files")
	secDir := c.secretDir(uid)
	var out []SandboxFile
	for i, f := range files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("file %q: not a clean absolute path", f.Path)
		}
		dir := cfgDir
		if f.Secret {
			if err := mountSecretFS(secDir); err != nil {
				return nil, err
			}
			dir = secDir
		} else if err := rootOnlyDir(cfgDir); err != nil {
			return nil, fmt.Errorf("config files: %w", err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o444
		}
		src := filepath.Join(dir, strconv.Itoa(i))
		if err := writeFileMode(src, f.Content, mode); err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Path, err)
		}
		out = append(out, SandboxFile{Source: src, Path: f.Path})
	}
	return out, nil
}

// writeFileMode writes b to path with mode (a write to a temporary
// name, then a rename, so a container never sees half a file).
func writeFileMode(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mountSecretFS mounts a small tmpfs at dir unless one is there, for
// root only: the containers see its files through bind mounts, which
// check only the file's own mode, while a user of the node would read
// them by name (the mount is listed in /proc/self/mountinfo, the files
// are named by index).
func mountSecretFS(dir string) error {
	// Also the tmpfs an older agent mounted with mode=0711.
	if err := rootOnlyDir(dir); err != nil {
		return fmt.Errorf("secret files: %w", err)
	}
	if isTmpfs(dir) {
		return nil
	}
	opts := "mode=0700,size=" + strconv.Itoa(secretFSSize)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("secret files: mount tmpfs at %s: %w", dir, err)
	}
	return nil
}

// rootOnlyDir makes dir (and the directories above it that are missing)
// and gives it to root alone: mode 0700, owned by root. A directory that
// exists with another mode or owner (made by an older agent) is changed.
func rootOnlyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// scratchSubdir is the directory of a pod's scratch volumes under its
// data directory.
const scratchSubdir = "volumes"

// scratchDir holds the pod's scratch volumes, each a directory of mode
// 0777 (images run as any user), in a directory for root alone: the
// containers reach their volumes through bind mounts, which check only
// the volume's own mode, while a user of the node would reach them by
// path (the pod's UID is in every container's /proc/PID/mountinfo, which
// anyone reads) and read and write what the pods keep there.
func (c *Containerd) scratchDir(uid string) string {
	return filepath.Join(c.podDir(uid), scratchSubdir)
}

// protectPodFiles gives the config file, secret file and scratch volume
// directories of every pod on the node to root alone, as CreatePodSandbox
// makes them: an older agent made them 0711 (the secret tmpfs with
// mode=0711), which let any user of the node read every pod's files, and
// read and write its scratch volumes, by path until the pod was made
// again. The pods and their mounts are left as they are: a chmod
// of a tmpfs's root changes its mode in place. Failures are logged, not
// returned: one pod's directory must not keep the node from starting.
func (c *Containerd) protectPodFiles() {
	for _, d := range []struct {
		root, sub string
	}{
		{filepath.Join(c.opts.DataDir, "pods"), "files"},
		{filepath.Join(c.opts.DataDir, "pods"), scratchSubdir},
		{filepath.Join(c.opts.RunDir, "pods"), "secrets"},
	} {
		entries, err := os.ReadDir(d.root)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("protect pods' files: list pods", "dir", d.root, "err", err)
			}
			continue
		}
		for _, e := range entries {
			dir := filepath.Join(d.root, e.Name(), d.sub)
			st, err := os.Lstat(dir)
			if err != nil || !st.IsDir() {
				continue // a pod without files of this kind
			}
			if err := rootOnlyDir(dir); err != nil {
				c.log.Warn("protect pod's files: users of the node other than root may read them; check the directory's mode (want 0700, owned by root)",
					"pod_uid", e.Name(), "dir", dir, "err", err)
			}
		}
	}
}

// isTmpfs reports whether dir is the root of a tmpfs mount of its own.
func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return false
	}
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// removeSecretFS unmounts the pod's secret tmpfs (its content is gone
// with it). Idempotent.
func (c *Containerd) removeSecretFS(uid string) error {
	dir := c.secretDir(uid)
	for isTmpfs(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("unmount secret files: %w", err)
		}
	}
	return nil
}
