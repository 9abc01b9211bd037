package store

import (
	"fmt"

	"github.com/capstanhq/capstan/version"
	bolt "go.etcd.io/bbolt"
)

// storeFormat is the layout of a bbolt store this binary reads and writes.
// A change an older binary cannot read raises it, with the step that
// brings a store of the format before up to it in upgradeFormat.
// Format 0 is a store made before the format was recorded, the same
// layout as 1.
const storeFormat = 1

var (
	// keyFormat holds the store's format (an int, as keyRev).
	keyFormat = []byte("format")
	// keyVersion holds the newest release (a semantic version) that
	// opened the store: an older minor release could not read the fields
	// it may have written (the server reads stored objects strictly).
	keyVersion = []byte("version")
)

// checkFormat refuses a store that a newer Capstan wrote (a later format,
// or a later minor release), and otherwise brings it to this binary's
// format and, with record, records binary's version when it is the newest
// to open it. It runs in the transaction that opens the store, so a crash
// leaves the file as it was or upgraded, never between, and the next open
// does what is left.
func checkFormat(meta *bolt.Bucket, binary string, record bool) error {
	format, wrote := readInt(meta, keyFormat), string(meta.Get(keyVersion))
	if format > storeFormat || version.MinorAfter(wrote, binary) {
		by, run := "a newer Capstan", "the newer Capstan"
		if wrote != "" {
			by, run = "Capstan "+wrote, wrote+" or newer"
		}
		return fmt.Errorf("%w: it was last opened by %s (store format %d), this binary is %s (store format %d), which may not read what the newer one wrote: "+
			"run %s on it, or, to go back, restore into a new data directory the backup taken before the upgrade (docs/ha.md#backup-and-restore); the file was left as it was",
			ErrNewerStore, by, format, binary, storeFormat, run)
	}
	if format < storeFormat {
		if err := writeInt(meta, keyFormat, storeFormat); err != nil {
			return err
		}
	}
	if record && version.Comparable(binary) && (!version.Comparable(wrote) || version.After(binary, wrote)) {
		return meta.Put(keyVersion, []byte(binary))
	}
	return nil
}
