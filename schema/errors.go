package schema

import "errors"

// Sentinel errors of the loader. Load wraps them with the detail and what
// to do next.
var (
	// ErrTooManyFiles: the tree holds more descriptor files than
	// LoadOptions.MaxFiles.
	ErrTooManyFiles = errors.New("too many descriptor files")
	// ErrTooLarge: the descriptor files together exceed
	// LoadOptions.MaxTotalBytes.
	ErrTooLarge = errors.New("descriptor files too large")
	// ErrOptions: LoadOptions are invalid.
	ErrOptions = errors.New("invalid load options")
	// ErrRead: the tree could not be read.
	ErrRead = errors.New("cannot read descriptor tree")
)
