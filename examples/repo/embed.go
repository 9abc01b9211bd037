// Package repo embeds the example deployment repository (shop.cue, the
// reference app of DESIGN.md section 5, its config file and the
// placeholder of its secret) so `capstan up` can seed a demo git
// repository from the binary alone.
package repo

import (
	"embed"
	"io/fs"
)

//go:embed *.cue config secrets
var files embed.FS

// FS returns the repository's descriptor files, rooted at the repository.
func FS() fs.FS { return files }
