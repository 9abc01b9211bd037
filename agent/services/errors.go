package services

import "errors"

// ErrOptions is wrapped by every error about invalid Options.
var ErrOptions = errors.New("services: invalid options")

// ErrStarted is returned by a second call to Start.
var ErrStarted = errors.New("services: already started")
