// Package version holds the build's version, set by the linker, and the
// rules for which versions work together during an upgrade (skew.go,
// docs/cluster.md#upgrading). It holds no other state.
package version

import "runtime"

// Version is set at build time with -ldflags "-X .../version.Version=...".
var Version = "dev"

// Info is what `capstan version` and the API's /version report.
type Info struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns this binary's version information.
func Get() Info {
	return Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}
