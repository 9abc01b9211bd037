package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeBatchRequest: a batch body never panics the decoder; one it
// accepts has an outcome for each step, an object or the reason there is
// none, and reads back the same after the client's encoding of it.
func FuzzDecodeBatchRequest(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"create","object":{"kind":"Pod","metadata":{"name":"a","app":"shop"}}},{"op":"create","object":{"kind":"Pod","colour":1}}]}`))
	f.Add([]byte(`{"ops":[{"op":"create","object":{"kind":"Nope"}},{"op":"delete","key":"apps/shop"}]}`))
	f.Add([]byte(`{"ops":[{"op":"create","object":null}]} x`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, errs, err := DecodeBatchRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		if !json.Valid(body) || len(errs) != len(ops) {
			t.Fatalf("accepted %q: %d steps, %d outcomes", body, len(ops), len(errs))
		}
		var good []TxnOp
		for i, op := range ops {
			if errs[i] != nil && op.Object != nil {
				t.Fatalf("step %d of %q has an object and an error: %v", i, body, errs[i])
			}
			if errs[i] == nil {
				good = append(good, op)
			}
		}
		again, err := json.Marshal(TxnRequest{Ops: good})
		if err != nil {
			t.Fatalf("accepted %q, cannot encode it: %v", body, err)
		}
		back, backErrs, err := DecodeBatchRequest(bytes.NewReader(again))
		if err != nil || len(back) != len(good) {
			t.Fatalf("accepted %q, re-encoded %s reads back %+v, %v", body, again, back, err)
		}
		for i := range good {
			a, b := good[i], back[i]
			if backErrs[i] != nil || a.Op != b.Op || a.Key != b.Key || (a.Object == nil) != (b.Object == nil) {
				t.Fatalf("step %d: %+v read back as %+v (%v)", i, a, b, backErrs[i])
			}
		}
	})
}
