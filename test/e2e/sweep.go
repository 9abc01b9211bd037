package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/internal/testenv"
)

// sweep removes everything a Cluster makes, whatever state a run left it
// in: processes started from Base (server, agents, containerd, shims, log
// writers) and the sockets of the killed shims, the containers in the
// cgroup, mounts under Base, the namespaces and the root veth, cgroups and
// files. It is idempotent.
func sweep() error {
	var errs []error
	if _, err := testenv.KillProcesses(Base); err != nil {
		errs = append(errs, err)
	}
	if err := killCgroups(); err != nil {
		errs = append(errs, err)
	}
	if err := testenv.RemoveStaleShimSockets(); err != nil {
		errs = append(errs, fmt.Errorf("shim sockets: %w", err))
	}
	if err := unmountUnder(Base); err != nil {
		errs = append(errs, err)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if strings.HasPrefix(name, nsPrefix) {
				if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("delete namespace %s: %v: %s", name, err, out))
				}
			}
		}
	}
	// The root veth goes by itself once the kernel has destroyed the
	// switch namespace holding its peer, which happens after `ip netns
	// del` returns: gone by the time of the delete is no error.
	if exec.Command("ip", "link", "show", rootVeth).Run() == nil {
		if out, err := exec.Command("ip", "link", "del", rootVeth).CombinedOutput(); err != nil && exec.Command("ip", "link", "show", rootVeth).Run() == nil {
			errs = append(errs, fmt.Errorf("delete link %s: %v: %s", rootVeth, err, out))
		}
	}
	if err := os.RemoveAll(Base); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", Base, err))
	}
	return errors.Join(errs...)
}

// cgroupDirs lists the harness's cgroup directories in every hierarchy
// (v1 controllers or the v2 unified tree), deepest first.
func cgroupDirs() []string {
	var roots []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	} else {
		roots, _ = filepath.Glob("/sys/fs/cgroup/*")
	}
	var dirs []string
	for _, r := range roots {
		top := filepath.Join(r, cgroupParent)
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// killCgroups SIGKILLs every process in the harness's cgroups (the
// containers), waits for them, and removes the cgroups. A cgroup is
// thawed first: runc freezes a container's cgroup while it signals every
// process in it, and a runc killed by the sweep in between leaves it
// frozen, where a cgroup v1 task does not die of SIGKILL.
func killCgroups() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		alive := 0
		for _, d := range cgroupDirs() {
			thaw(d)
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					alive++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if alive == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes in cgroup %s survive SIGKILL", alive, cgroupParent)
		}
		<-time.After(50 * time.Millisecond)
	}
	var errs []error
	for _, d := range cgroupDirs() {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}

// thaw lets the processes of cgroup d run (v1 freezer, v2 cgroup.freeze);
// a cgroup without a freezer is left alone.
func thaw(d string) {
	if _, err := os.Stat(filepath.Join(d, "freezer.state")); err == nil {
		_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
	}
	if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil {
		_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out), sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
