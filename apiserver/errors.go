package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// Sentinel errors of joining and of the agents' identity.
var (
	// errAgentIdentity: what answered at a node's agent address has no
	// certificate the cluster CA issued to that node.
	errAgentIdentity = errors.New("the agent's certificate is not the one the cluster CA issued to this node")
	// errNodeExists: a join for a name that is registered already.
	errNodeExists = errors.New("node name is taken")
	// errNodeUnknown: allow-rejoin of a name that no Node and no
	// credentials hold (a typo, or a node that never joined).
	errNodeUnknown = errors.New("no such node")
	// errTokenUsedUp: a join token has been used as often as it may.
	errTokenUsedUp = errors.New("join token used up")
	// errTokenNotFound: no token has the ID (never made, or revoked).
	errTokenNotFound = errors.New("no such token")
)

// apiError is an error with its HTTP status.
type apiError struct {
	code   int
	reason wire.Reason
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func errorf(code int, reason wire.Reason, err error) error {
	return &apiError{code: code, reason: reason, err: err}
}

// maxRequestBytes bounds the small JSON requests decodeRequest reads
// (joins, tokens, node certificates, store administration).
const maxRequestBytes = 64 << 10

// decodeRequest decodes a small JSON request body (at most
// maxRequestBytes, one object, no unknown fields) into v; the error, a 400
// naming what (413 over the limit), is the answer. Anything after the
// object is refused, not dropped unread.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any, what string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, wire.ReasonRequestEntityTooLarge,
				fmt.Errorf("%s: %s: it is one small JSON object; check that the client sends the request, not a file", what, overLimit(mbe.Limit)))
		case errors.Is(err, io.EOF):
			return badRequest(what + ": the body is empty: send it as a JSON object")
		}
		return badRequest(what + ": " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest(what + ": more after the JSON object: send one object per request")
	}
	return nil
}

// overLimit says a request body was over limit bytes.
func overLimit(limit int64) string {
	return fmt.Sprintf("the request body is over the server's limit of %d bytes (%sB)", limit, api.FormatBytes(limit))
}

func badRequest(msg string) error {
	return errorf(http.StatusBadRequest, wire.ReasonBadRequest, errors.New(msg))
}

// toStatus maps an error to the response the client gets; an error in one
// step of a transaction names the step.
//
// The status says the request was not applied (wire.Status.NotApplied)
// when the store says nothing of it changed the store (store.ErrNotApplied:
// the store checks the request's earlier writes), or when the server
// refused it before its handler ran (shutting down, at its connection
// limit).
func toStatus(err error) wire.Status {
	st := statusOf(err)
	st.NotApplied = errors.Is(err, store.ErrNotApplied) || errors.Is(err, errShutdown) || st.Reason == wire.ReasonTooManyConnections
	var te *store.TxnError
	var se *wire.StepError
	switch {
	case errors.As(err, &te):
		st.Step = &te.Index
	case errors.As(err, &se):
		st.Step = &se.Index
	}
	return st
}

func statusOf(err error) wire.Status {
	var ae *apiError
	var ve *api.ValidationError
	var mbe *http.MaxBytesError
	var tle *api.TooLargeError
	switch {
	case errors.As(err, &ae):
		return wire.Status{Code: ae.code, Reason: ae.reason, Message: ae.err.Error()}
	case errors.As(err, &mbe):
		return wire.Status{Code: http.StatusRequestEntityTooLarge, Reason: wire.ReasonRequestEntityTooLarge,
			Message: overLimit(mbe.Limit) + ": send one object per request, or split a transaction into smaller ones"}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return wire.Status{Code: http.StatusRequestTimeout, Reason: wire.ReasonRequestTimeout, Message: "the request body did not arrive within the server's body read timeout: send it faster, or in smaller requests"}
	case errors.As(err, &tle):
		return wire.Status{Code: http.StatusRequestEntityTooLarge, Reason: wire.ReasonRequestEntityTooLarge, Message: err.Error(),
			Fields: api.ErrorList{{Path: "(object)", Message: fmt.Sprintf("%d bytes, more than %d", tle.Size, tle.Limit)}}}
	case errors.As(err, &ve):
		return wire.Status{Code: http.StatusBadRequest, Reason: wire.ReasonInvalid, Message: err.Error(), Fields: ve.Fields}
	case errors.Is(err, api.ErrUnknownKind):
		return wire.Status{Code: http.StatusNotFound, Reason: wire.ReasonUnknownKind, Message: err.Error()}
	case errors.Is(err, api.ErrInvalid):
		return wire.Status{Code: http.StatusBadRequest, Reason: wire.ReasonInvalid, Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return wire.Status{Code: http.StatusNotFound, Reason: wire.ReasonNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		return wire.Status{Code: http.StatusConflict, Reason: wire.ReasonAlreadyExists, Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		return wire.Status{Code: http.StatusConflict, Reason: wire.ReasonConflict, Message: err.Error()}
	case errors.Is(err, store.ErrCompacted):
		return wire.Status{Code: http.StatusGone, Reason: wire.ReasonExpired, Message: err.Error()}
	case errors.Is(err, store.ErrFutureRevision):
		return wire.Status{Code: http.StatusBadRequest, Reason: wire.ReasonFutureRevision, Message: err.Error()}
	case errors.Is(err, store.ErrWatcherTooSlow):
		return wire.Status{Code: http.StatusServiceUnavailable, Reason: wire.ReasonWatcherTooSlow, Message: err.Error()}
	case errors.Is(err, store.ErrClosed):
		return wire.Status{Code: http.StatusServiceUnavailable, Reason: wire.ReasonShuttingDown, Message: err.Error()}
	case errors.Is(err, store.ErrFenced):
		return wire.Status{Code: http.StatusPreconditionFailed, Reason: wire.ReasonFenced, Message: err.Error()}
	case errors.Is(err, store.ErrReadOnly):
		return wire.Status{Code: http.StatusServiceUnavailable, Reason: wire.ReasonReadOnly, Message: err.Error()}
	case errors.Is(err, store.ErrUnavailable):
		return wire.Status{Code: http.StatusServiceUnavailable, Reason: wire.ReasonStoreUnavailable, Message: err.Error()}
	}
	return wire.Status{Code: http.StatusInternalServerError, Reason: wire.ReasonInternalError, Message: err.Error()}
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
