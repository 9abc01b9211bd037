package runtime

import "errors"

// Image errors, for the agent to report ErrImagePull / ImagePullBackOff with
// a cause a user can act on.
var (
	// ErrImageNotFound: the registry has no such repository or tag.
	ErrImageNotFound = errors.New("image not found")
	// ErrImageUnauthorized: the registry refused the credentials (or their
	// absence).
	ErrImageUnauthorized = errors.New("image pull unauthorized")
	// ErrRegistryUnavailable: the registry could not be reached.
	ErrRegistryUnavailable = errors.New("registry unreachable")
	// ErrImageNotPresent: StartContainer was given an image that is not
	// stored locally; call EnsureImage first.
	ErrImageNotPresent = errors.New("image not present on node")
)

// ErrCommand: a container's program cannot run (not in the image, not on
// its PATH, not executable): a fault of the descriptor or the image, which
// retrying will not mend.
var ErrCommand = errors.New("command cannot run")

// ErrNotFound: no such container or pod in the runtime's namespace.
var ErrNotFound = errors.New("not found")

// errNotOurFIFOs: a task's output goes elsewhere than this runtime's log
// FIFOs (a container started by an older agent, with a log driver process).
var errNotOurFIFOs = errors.New("output not in the runtime's log FIFOs")
