package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// handleBatch serves POST /api/v1/batch (wire.BatchPath): creates sent
// together, each admitted, written and answered as POST /api/v1/{kind}
// would alone. They are written concurrently, so they share the store's
// next commit (one fsync for all), and each has its own write tracking
// (store.TrackWrites), so a step's NotApplied speaks for that step only.
func (s *Server) handleBatch(ctx context.Context, w http.ResponseWriter, r *http.Request, role string) error {
	ops, errs, err := wire.DecodeBatchRequest(r.Body)
	if err != nil {
		return err
	}
	if len(ops) == 0 || len(ops) > maxTxnOps {
		return badRequest(fmt.Sprintf("a batch has 1 to %d steps, this one %d", maxTxnOps, len(ops)))
	}
	results := make([]wire.BatchResult, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		if errs[i] == nil {
			errs[i] = s.admitBatchStep(ctx, role, op)
		}
		if errs[i] != nil {
			results[i].Status = batchStatus(errs[i])
			continue
		}
		wg.Go(func() {
			out, err := s.store.Create(store.TrackWrites(ctx), op.Object)
			if err != nil {
				results[i].Status = batchStatus(err)
				return
			}
			results[i].Object = out
		})
	}
	wg.Wait()
	// Each step counts as the create it is (the batch as a request too).
	for i, r := range results {
		code := http.StatusCreated
		if r.Status != nil {
			code = r.Status.Code
		}
		kind := "unknown"
		if ops[i].Object != nil {
			kind = string(api.KeyOf(ops[i].Object).Kind)
		}
		s.metrics.requests.WithLabelValues("create", kind, strconv.Itoa(code)).Inc()
	}
	writeJSON(w, http.StatusOK, wire.BatchResponse{Results: results})
	return nil
}

// admitBatchStep checks one step of a batch as handleCreate checks a
// create.
func (s *Server) admitBatchStep(ctx context.Context, role string, op wire.TxnOp) error {
	if op.Op != wire.OpCreate {
		return badRequest(fmt.Sprintf("op %q: a batch holds creates only; send other writes alone or in a transaction (%s)", op.Op, wire.TxnPath))
	}
	if op.Object == nil {
		return badRequest(`op "create" needs an object`)
	}
	k := api.KeyOf(op.Object)
	if err := s.authorize(ctx, role, request{verb: "create", kind: k.Kind, key: api.Key{Kind: k.Kind}}); err != nil {
		return err
	}
	return s.admitCreate(ctx, role, op.Object)
}

func batchStatus(err error) *wire.Status {
	st := toStatus(err)
	return &st
}
