package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
)

// Sentinel errors of joining and of the agents' identity.
var (
	// errAgentIdentity: what answered at a node's agent address has no
	// certificate the cluster CA issued to that node.
	errAgentIdentity = errors.New("the agent's certificate is not the one the cluster CA issued to this node")
	// errNodeExists: a join for a name that is registered already.
	errNodeExists = errors.New("node already registered")
	// errTokenUsedUp: a join token has been used as often as it may.
	errTokenUsedUp = errors.New("join token used up")
)

// Status is the JSON body of every error response.
type Status struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Fields lists invalid fields for Invalid errors.
	Fields api.ErrorList `json:"fields,omitempty"`
}

// apiError is an error with its HTTP status.
type apiError struct {
	code   int
	reason string
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func errorf(code int, reason string, err error) error {
	return &apiError{code: code, reason: reason, err: err}
}

func badRequest(msg string) error {
	return errorf(http.StatusBadRequest, "BadRequest", errors.New(msg))
}

// toStatus maps an error to the response the client gets.
func toStatus(err error) Status {
	var ae *apiError
	var ve *api.ValidationError
	var mbe *http.MaxBytesError
	var tle *api.TooLargeError
	switch {
	case errors.As(err, &ae):
		return Status{Code: ae.code, Reason: ae.reason, Message: ae.err.Error()}
	case errors.As(err, &mbe):
		return Status{Code: http.StatusRequestEntityTooLarge, Reason: "RequestEntityTooLarge", Message: "request body is larger than the server's limit"}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Status{Code: http.StatusRequestTimeout, Reason: "RequestTimeout", Message: "the request body did not arrive within the server's body read timeout: send it faster, or in smaller requests"}
	case errors.As(err, &tle):
		return Status{Code: http.StatusRequestEntityTooLarge, Reason: "RequestEntityTooLarge", Message: err.Error(),
			Fields: api.ErrorList{{Path: "(object)", Message: fmt.Sprintf("%d bytes, more than %d", tle.Size, tle.Limit)}}}
	case errors.As(err, &ve):
		return Status{Code: http.StatusBadRequest, Reason: "Invalid", Message: err.Error(), Fields: ve.Fields}
	case errors.Is(err, api.ErrUnknownKind):
		return Status{Code: http.StatusNotFound, Reason: "UnknownKind", Message: err.Error()}
	case errors.Is(err, api.ErrInvalid):
		return Status{Code: http.StatusBadRequest, Reason: "Invalid", Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return Status{Code: http.StatusNotFound, Reason: "NotFound", Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		return Status{Code: http.StatusConflict, Reason: "AlreadyExists", Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		return Status{Code: http.StatusConflict, Reason: "Conflict", Message: err.Error()}
	case errors.Is(err, store.ErrCompacted):
		return Status{Code: http.StatusGone, Reason: "Expired", Message: err.Error()}
	case errors.Is(err, store.ErrFutureRevision):
		return Status{Code: http.StatusBadRequest, Reason: "FutureRevision", Message: err.Error()}
	case errors.Is(err, store.ErrWatcherTooSlow):
		return Status{Code: http.StatusServiceUnavailable, Reason: "WatcherTooSlow", Message: err.Error()}
	case errors.Is(err, store.ErrClosed):
		return Status{Code: http.StatusServiceUnavailable, Reason: "ShuttingDown", Message: err.Error()}
	}
	return Status{Code: http.StatusInternalServerError, Reason: "InternalError", Message: err.Error()}
}

func writeError(w http.ResponseWriter, err error) int {
	st := toStatus(err)
	switch st.Code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="capstan"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, st.Code, st)
	return st.Code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
