package schema

import (
	"bytes"
	_ "embed"
)

// SchemaFile is the name the embedded schema carries in error positions.
const SchemaFile = "capstan.cue"

//go:embed capstan.cue
var source []byte

// Source returns the CUE schema every descriptor is checked against, for
// `capstan schema` and `cue vet`.
func Source() []byte { return bytes.Clone(source) }
