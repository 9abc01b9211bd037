package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/capstanhq/capstan/apiserver/api"
)

// bodyOptions read a body of steps as encoding/json's Decoder with
// DisallowUnknownFields does, in a third of the time (each step's object
// is then decoded by api.DecodeAny).
var bodyOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true))

// TxnPath is where transactions are posted.
const TxnPath = "/api/v1/txn"

// OpKind is what one transaction step does.
type OpKind string

// Transaction steps.
const (
	// OpCreate stores a new object.
	OpCreate OpKind = "create"
	// OpUpdate writes the object's spec and metadata as PUT does: the
	// stored status and deletion mark are kept. Compared on the object's
	// resourceVersion when set.
	OpUpdate OpKind = "update"
	// OpStatus writes only the object's status over the stored object,
	// compared on the object's resourceVersion when set.
	OpStatus OpKind = "status"
	// OpDelete removes the object at Key, compared on ResourceVersion when
	// set.
	OpDelete OpKind = "delete"
	// OpBind binds the pod at Key, still at ResourceVersion, to NodeName.
	OpBind OpKind = "bind"
)

// TxnOp is one step of a transaction.
type TxnOp struct {
	Op              OpKind     `json:"op"`
	Object          api.Object `json:"object,omitempty"`
	Key             string     `json:"key,omitempty"`
	ResourceVersion int64      `json:"resourceVersion,omitempty"`
	NodeName        string     `json:"nodeName,omitempty"` // bind
}

// CreateOp is the step that creates obj.
func CreateOp(obj api.Object) TxnOp { return TxnOp{Op: OpCreate, Object: obj} }

// UpdateOp is the step that updates obj (see OpUpdate).
func UpdateOp(obj api.Object) TxnOp { return TxnOp{Op: OpUpdate, Object: obj} }

// StatusOp is the step that writes obj's status over the stored object,
// leaving its spec and metadata alone; it fails with a conflict when obj
// carries a resourceVersion that is no longer the stored one (0: whatever
// is stored).
func StatusOp(obj api.Object) TxnOp { return TxnOp{Op: OpStatus, Object: obj} }

// DeleteOp is the step that deletes k, at rv when not zero.
func DeleteOp(k api.Key, rv int64) TxnOp {
	return TxnOp{Op: OpDelete, Key: k.String(), ResourceVersion: rv}
}

// BindOp is the step that binds pod k, still at resourceVersion rv, to
// node: the server sets spec.nodeName and the condition Scheduled=True in
// one compare-and-swap. A pod that changed since rv, is bound to another
// node or is being deleted fails with a conflict. Only admins may bind.
func BindOp(k api.Key, rv int64, node string) TxnOp {
	return TxnOp{Op: OpBind, Key: k.String(), ResourceVersion: rv, NodeName: node}
}

// TxnRequest is the body of POST /api/v1/txn.
type TxnRequest struct {
	Ops []TxnOp `json:"ops"`
}

// StepError is a transaction step the request could not decode.
type StepError struct {
	Index int
	Err   error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %d: %v", e.Index, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// DecodeTxnRequest reads a transaction body, refusing unknown fields; a
// step's object is decoded by its kind. An error in one step is a
// *StepError.
func DecodeTxnRequest(r io.Reader) (TxnRequest, error) {
	ops, errs, err := decodeOps(r, "transaction")
	if err != nil {
		return TxnRequest{}, err
	}
	for i, err := range errs {
		if err != nil {
			return TxnRequest{}, &StepError{Index: i, Err: err}
		}
	}
	return TxnRequest{Ops: ops}, nil
}

// stepsBody is a body of steps as sent, each object still encoded.
type stepsBody struct {
	Ops []struct {
		Op              OpKind         `json:"op"`
		Object          jsontext.Value `json:"object,omitempty"`
		Key             string         `json:"key,omitempty"`
		ResourceVersion int64          `json:"resourceVersion,omitempty"`
		NodeName        string         `json:"nodeName,omitempty"`
	} `json:"ops"`
}

// decodeOps reads a body of steps ({"ops":[...]}, a transaction or a
// batch: what), refusing unknown fields and anything after it, and decodes
// each step's object by its kind. A step whose object does not decode has
// its error in errs (at its index), the others are decoded.
func decodeOps(r io.Reader, what string) (ops []TxnOp, errs []error, err error) {
	var raw stepsBody
	dec := jsontext.NewDecoder(r)
	if err := jsonv2.UnmarshalDecode(dec, &raw, bodyOptions); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: %s body is empty: send {\"ops\":[...]}", api.ErrInvalid, what)
		}
		return nil, nil, fmt.Errorf("%w: %s body: %w", api.ErrInvalid, what, err)
	}
	// Anything after the body (a second one pasted after it) is refused
	// rather than dropped unrun.
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: %s body: more after the %s: send one {\"ops\":[...]} per request", api.ErrInvalid, what, what)
	}
	ops, errs = make([]TxnOp, len(raw.Ops)), make([]error, len(raw.Ops))
	for i, op := range raw.Ops {
		ops[i] = TxnOp{Op: op.Op, Key: op.Key, ResourceVersion: op.ResourceVersion, NodeName: op.NodeName}
		if len(op.Object) == 0 || string(op.Object) == "null" {
			continue
		}
		ops[i].Object, errs[i] = api.DecodeAny(op.Object)
	}
	return ops, errs, nil
}

// TxnResponse lists the objects as written, one per step.
type TxnResponse struct {
	Objects []api.Object `json:"objects"`
}

// UnmarshalJSON decodes each object by its kind.
func (r *TxnResponse) UnmarshalJSON(data []byte) error {
	var raw struct {
		Objects []json.RawMessage `json:"objects"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	r.Objects = make([]api.Object, 0, len(raw.Objects))
	for _, b := range raw.Objects {
		obj, err := api.DecodeAnyLenient(b)
		if err != nil {
			return err
		}
		r.Objects = append(r.Objects, obj)
	}
	return nil
}

// TxnRevisionsResponse is the answer of POST /api/v1/txn?objects=false:
// the resourceVersion each step wrote, in step order.
type TxnRevisionsResponse struct {
	ResourceVersions []int64 `json:"resourceVersions"`
}

// List is the body of a list response.
type List struct {
	Kind            string `json:"kind"`
	ResourceVersion int64  `json:"resourceVersion"`
	// Continue, when set, asks for the next page: pass it back as
	// ?continue= with the same filters (see docs/architecture.md).
	Continue string            `json:"continue,omitempty"`
	Items    []json.RawMessage `json:"items"`
}
