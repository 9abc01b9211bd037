package wire

import (
	"io"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BatchPath is where batches of creates are posted: independent writes
// sent in one request, each applied (or refused) on its own, as if sent
// alone; unlike a transaction's steps, one that fails leaves the others
// be. The client sends concurrent creates this way when it has several
// waiting (client.Client.Create), so that they share one request and one
// commit of the store. The body is a TxnRequest whose steps are creates.
const BatchPath = "/api/v1/batch"

// BatchResponse has one result a step, in the order of the steps.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// BatchResult is one step's outcome: the object as stored, or the error
// answer the step would have had alone.
type BatchResult struct {
	Object api.Object `json:"object,omitempty"`
	Status *Status    `json:"status,omitempty"`
}

// DecodeBatchRequest reads a batch's body as DecodeTxnRequest reads a
// transaction's; a step whose object does not decode has its error at its
// index in errs and is refused alone.
func DecodeBatchRequest(r io.Reader) (ops []TxnOp, errs []error, err error) {
	return decodeOps(r, "batch")
}
