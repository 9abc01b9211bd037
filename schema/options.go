package schema

import (
	"fmt"
	"path"
	"strings"
)

// Default limits of LoadOptions.
const (
	DefaultMaxFileBytes  = 1 << 20   // 1 MiB per file
	DefaultMaxFiles      = 10000     // descriptor files per tree
	DefaultMaxTotalBytes = 256 << 20 // 256 MiB of descriptor files per tree
)

// LoadOptions say where the files come from (for provenance) and bound the
// work a tree may cause. The zero value is usable: limits default as
// documented on each field.
type LoadOptions struct {
	// Repo and Commit are recorded in each App's Metadata.Source.
	Repo   string
	Commit string
	// PathPrefix is prepended to file names in provenance and errors, for a
	// tree loaded from a folder of the repository ("apps" gives
	// "apps/shop.cue").
	PathPrefix string
	// MaxFileBytes refuses larger descriptor files (default 1 MiB).
	MaxFileBytes int64
	// MaxFiles stops the load when the tree has more descriptor files
	// (default 10,000).
	MaxFiles int
	// MaxTotalBytes stops the load when the descriptor files together are
	// larger (default 256 MiB).
	MaxTotalBytes int64
	// Step, when set, is called before each file is parsed and each app
	// is evaluated, so that a supervisor can tell which input a runaway
	// evaluation belongs to (the evaluation sandbox).
	Step func(Step) `json:"-"`
	// Evaluated, when set, is called with each app's result as soon as it
	// is evaluated (not for apps reused from the previous load), so a
	// caller can write it while the others are evaluated.
	Evaluated func(AppResult) `json:"-"`
	// Refused maps Step keys to a message: those files and apps are not
	// parsed or evaluated but fail with the message (inputs that exceeded
	// the evaluation bounds before).
	Refused map[[32]byte]string `json:"-"`
}

func (o LoadOptions) step(s Step) {
	if o.Step != nil {
		o.Step(s)
	}
}

func (o LoadOptions) withDefaults() (LoadOptions, error) {
	if o.MaxFileBytes < 0 || o.MaxFiles < 0 || o.MaxTotalBytes < 0 {
		return o, fmt.Errorf("%w: limits must not be negative (0 means the default)", ErrOptions)
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if p := o.PathPrefix; p != "" {
		p = strings.Trim(path.Clean(p), "/")
		if p == "." {
			p = ""
		}
		o.PathPrefix = p
	}
	return o, nil
}

// display turns a path relative to the loaded tree into the path users
// see: relative to the repository root.
func (o LoadOptions) display(rel string) string {
	if o.PathPrefix == "" || rel == "" {
		return rel
	}
	return o.PathPrefix + "/" + rel
}
