package backup

import "errors"

var (
	// ErrNotEmpty: restore refuses a data directory that holds anything.
	ErrNotEmpty = errors.New("the data directory is not empty")
	// ErrFormat: the stream is not a Capstan backup this version reads.
	ErrFormat = errors.New("not a Capstan backup")
	// ErrDamaged: the backup's stream breaks off or fails age's
	// authentication: a cut or altered file.
	ErrDamaged = errors.New("the backup is cut short or damaged")
	// ErrNoCA: a backup without the cluster CA's certificate or key.
	ErrNoCA = errors.New("no cluster CA")
)
