package api

import (
	"errors"
	"strings"
)

// Sentinel errors of the resource model.
var (
	// ErrInvalid marks an object or key that fails validation.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownKind marks a kind the API does not serve.
	ErrUnknownKind = errors.New("unknown kind")
)

// FieldError is one invalid field.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// ErrorList collects every invalid field, not just the first.
type ErrorList []FieldError

func (l *ErrorList) add(path, format string, args ...any) {
	*l = append(*l, FieldError{Path: path, Message: sprintf(format, args...)})
}

// Err returns nil for an empty list, else a ValidationError wrapping
// ErrInvalid.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return &ValidationError{Fields: l}
}

// ValidationError lists the invalid fields of an object.
type ValidationError struct {
	Fields ErrorList
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return ErrInvalid }
