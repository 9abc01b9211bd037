package registry

import "errors"

var (
	// ErrInvalidOptions reports Options that New refuses.
	ErrInvalidOptions = errors.New("invalid registry options")
	// ErrAuthRequired reports Options without a user who may push: pushes
	// always need credentials.
	ErrAuthRequired = errors.New("registry needs a push user")
	// ErrStarted reports a second call to Start.
	ErrStarted = errors.New("registry already started")
	// ErrInvalidImageConfig reports an ImageConfig that PackDir refuses.
	ErrInvalidImageConfig = errors.New("invalid image config")
	// ErrUnsafePath reports a directory entry that cannot go into an image,
	// such as a symbolic link leaving the directory.
	ErrUnsafePath = errors.New("unsafe path in image directory")
	// ErrInvalidReference reports an image reference that cannot be parsed.
	ErrInvalidReference = errors.New("invalid image reference")
)
