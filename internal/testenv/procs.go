package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a live process Processes found.
type Process struct {
	PID  int
	Args []string // its command line
}

// Processes lists the live processes (zombies and this one left out)
// whose command line contains every one of parts.
func Processes(parts ...string) []Process {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !containsAll(b, parts) {
			continue
		}
		// A zombie has an empty command line; one that still shows it
		// is alive or about to be reaped by its parent.
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && zombie(st) {
			continue
		}
		out = append(out, Process{PID: pid, Args: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")})
	}
	return out
}

// KillProcesses SIGKILLs every process whose command line contains every
// one of parts, waits until they are gone, and returns them.
func KillProcesses(parts ...string) ([]Process, error) {
	var killed []Process
	seen := map[int]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps := Processes(parts...)
		if len(ps) == 0 {
			return killed, nil
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes %v mentioning %q survive SIGKILL", ps, parts)
		}
		for _, p := range ps {
			if !seen[p.PID] {
				seen[p.PID] = true
				killed = append(killed, p)
			}
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func containsAll(b []byte, parts []string) bool {
	for _, p := range parts {
		if !bytes.Contains(b, []byte(p)) {
			return false
		}
	}
	return true
}

func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
