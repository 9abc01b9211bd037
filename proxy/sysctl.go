package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Sysctl is a kernel setting the proxy relies on.
type Sysctl struct {
	// Name is the path under /proc/sys, e.g. "net/ipv4/ip_forward".
	Name  string
	Value string
	// Optional settings are applied only when the kernel offers them (their
	// file exists); a missing required one is an error.
	Optional bool
	// Why tells an operator what breaks without it.
	Why string
	// Module is the kernel module that provides an optional setting, for
	// the operator to load when it is missing.
	Module string
}

// Sysctls lists the settings EnsureSysctls applies. route_localnet is
// deliberately absent: node ports are not served on 127.0.0.0/8, and
// allowing DNAT of loopback traffic would expose the node's loopback-only
// services to its neighbours.
func Sysctls() []Sysctl {
	return []Sysctl{
		{Name: "net/ipv4/ip_forward", Value: "1",
			Why: "DNAT to a pod turns traffic for a VIP or node port into forwarded traffic"},
		{Name: "net/bridge/bridge-nf-call-iptables", Value: "1", Optional: true,
			Why: "a pod reaching a VIP served by a pod on the same bridge gets its replies bridged directly; " +
				"they must pass the ip hooks so conntrack can undo the DNAT (needs the br_netfilter module)",
			Module: "br_netfilter"},
	}
}

// MissingSysctls returns the optional settings of Sysctls the kernel does
// not offer under procSys (default "/proc/sys"): EnsureSysctls skips them,
// and what their Why says is then broken until their Module is loaded. A
// stock Debian kernel has br_netfilter as a module nobody loads, so a pod
// reaching a service served by a pod on its own node would time out; the
// caller warns.
func MissingSysctls(procSys string) []Sysctl {
	if procSys == "" {
		procSys = "/proc/sys"
	}
	var missing []Sysctl
	for _, s := range Sysctls() {
		if _, err := os.Stat(filepath.Join(procSys, s.Name)); s.Optional && errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, s)
		}
	}
	return missing
}

// LoadModules loads, with modprobe, the module of each optional setting
// missing under procSys (default "/proc/sys"), as k3s loads br_netfilter
// at start, and returns the modules it loaded. One that cannot be loaded
// (no modprobe, a kernel without it, a container without the right) is
// left to the warning of MissingSysctls.
func LoadModules(procSys string) []string {
	var loaded []string
	for _, s := range MissingSysctls(procSys) {
		if s.Module == "" {
			continue
		}
		if err := exec.Command("modprobe", s.Module).Run(); err == nil {
			loaded = append(loaded, s.Module)
		}
	}
	return loaded
}

// EnsureSysctls writes the settings of Sysctls under procSys (default
// "/proc/sys") where they differ, and returns the ones it changed. The
// net/ settings belong to the network namespace of the calling thread.
func EnsureSysctls(procSys string) ([]Sysctl, error) {
	if procSys == "" {
		procSys = "/proc/sys"
	}
	var changed []Sysctl
	for _, s := range Sysctls() {
		path := filepath.Join(procSys, s.Name)
		cur, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && s.Optional {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("proxy: read sysctl %s (%s): %w", s.Name, s.Why, err)
		}
		if strings.TrimSpace(string(cur)) == s.Value {
			continue
		}
		if err := os.WriteFile(path, []byte(s.Value+"\n"), 0o644); err != nil {
			return changed, fmt.Errorf("proxy: set sysctl %s=%s (run the agent as root; %s): %w", s.Name, s.Value, s.Why, err)
		}
		changed = append(changed, s)
	}
	return changed, nil
}
