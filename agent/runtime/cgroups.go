package runtime

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroupV2 reports whether the host uses the unified hierarchy.
func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// swapAccounting reports whether a swap limit can be set.
func swapAccounting() bool {
	if cgroupV2() {
		_, err := os.Stat(filepath.Join(cgroupRoot, "memory.swap.max"))
		if err != nil {
			// The root has no memory.swap.max; look at any child instead.
			matches, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "memory.swap.max"))
			return len(matches) > 0
		}
		return true
	}
	_, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.memsw.limit_in_bytes"))
	return err == nil
}

// oomKilled reports whether the kernel OOM killer killed a process in the
// container's memory cgroup: oom_kill in memory.events (v2) or in
// memory.oom_control (v1, kernel 4.13+).
func oomKilled(cgroupPath string) bool {
	file := filepath.Join(cgroupRoot, "memory", cgroupPath, "memory.oom_control")
	if cgroupV2() {
		file = filepath.Join(cgroupRoot, cgroupPath, "memory.events")
	}
	return readCounter(file, "oom_kill") > 0
}

// readCounter reads a "key value" line from a cgroup file; 0 when absent.
func readCounter(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
