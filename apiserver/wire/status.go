package wire

import "github.com/capstanhq/capstan/apiserver/api"

// Reason says why a request failed, in a word a program can switch on.
type Reason string

// The reasons the server answers.
const (
	ReasonBadRequest            Reason = "BadRequest"
	ReasonInvalid               Reason = "Invalid"
	ReasonNotFound              Reason = "NotFound"
	ReasonUnknownKind           Reason = "UnknownKind"
	ReasonAlreadyExists         Reason = "AlreadyExists"
	ReasonConflict              Reason = "Conflict"
	ReasonExpired               Reason = "Expired"
	ReasonFutureRevision        Reason = "FutureRevision"
	ReasonWatcherTooSlow        Reason = "WatcherTooSlow"
	ReasonShuttingDown          Reason = "ShuttingDown"
	ReasonUnauthorized          Reason = "Unauthorized"
	ReasonForbidden             Reason = "Forbidden"
	ReasonMethodNotAllowed      Reason = "MethodNotAllowed"
	ReasonRequestEntityTooLarge Reason = "RequestEntityTooLarge"
	ReasonRequestTimeout        Reason = "RequestTimeout"
	ReasonTooManyRequests       Reason = "TooManyRequests"
	ReasonInternalError         Reason = "InternalError"
	ReasonBadGateway            Reason = "BadGateway"
	ReasonServiceUnavailable    Reason = "ServiceUnavailable"
	ReasonRangeExhausted        Reason = "RangeExhausted"
	ReasonTooManyConnections    Reason = "TooManyConnections"
	ReasonUpgradeRequired       Reason = "UpgradeRequired"
	// ReasonFenced: a write made for a leadership that has ended (see
	// FenceHeader) was refused.
	ReasonFenced Reason = "Fenced"
	// ReasonInUse: a delete refused because the object's data is still in
	// use or cannot be removed now (a persistent volume); force overrides.
	ReasonInUse Reason = "InUse"
	// ReasonReadOnly: a write refused while the store is read-only (a
	// migration, see capstan store); the message says why.
	ReasonReadOnly Reason = "ReadOnly"
	// ReasonStoreUnavailable: the server's store (etcd) did not answer,
	// or has no quorum; another server of the cluster may reach it.
	ReasonStoreUnavailable Reason = "StoreUnavailable"
)

// Status is the JSON body of every error response, and the object of a
// watch's ERROR line. As a Go error it is what the client returns for an
// error answer.
type Status struct {
	Code    int    `json:"code"`
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// Fields lists invalid fields for Invalid errors.
	Fields api.ErrorList `json:"fields,omitempty"`
	// Step is the index of the transaction step that failed, when a
	// transaction failed in one step.
	Step *int `json:"step,omitempty"`
	// NotApplied says that the request changed nothing, for certain: it
	// failed before its first write was sent to the store, or the store
	// refused that write unapplied. A client may send it again, to this
	// server or another, without its being applied twice. Without it the
	// outcome of a write that failed is not known (a store that did not
	// answer in time may have applied it): read before sending it again.
	NotApplied bool `json:"notApplied,omitempty"`
}

func (s *Status) Error() string { return s.Message }

// FailedStep returns the index of the transaction step that failed.
func (s *Status) FailedStep() (int, bool) {
	if s == nil || s.Step == nil {
		return 0, false
	}
	return *s.Step, true
}
