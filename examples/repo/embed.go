// Package repo embeds the example deployment repository (shop.cue, the
// reference app of DESIGN.md section 5) so `capstan up` can seed a demo git
// repository from the binary alone.
package repo

import (
	"embed"
	"io/fs"
)

//go:embed *.cue
var files embed.FS

// FS returns the repository's descriptor files, rooted at the repository.
func FS() fs.FS { return files }
