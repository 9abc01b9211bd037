package autorevert

import "errors"

// errReverted marks a failed commit whose revert is on the branch
// already, not synced yet.
var errReverted = errors.New("reverted already")
