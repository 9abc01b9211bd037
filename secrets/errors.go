package secrets

import "errors"

var (
	// ErrFormat marks a secret file that is not in the format.
	ErrFormat = errors.New("not a capstan secret file")
	// ErrNoIdentity marks a file none of the given identities can
	// decrypt: it was not encrypted for this cluster's recipient.
	ErrNoIdentity = errors.New("not encrypted for this key")
	// ErrTampered marks a file whose values do not match its MAC.
	ErrTampered = errors.New("values do not match the MAC")
)
