package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeTxnRequest: a transaction body never panics the decoder, and
// one it accepts reads back the same after the client's encoding of it.
func FuzzDecodeTxnRequest(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":7,"nodeName":"n1"}]}`))
	f.Add([]byte(`{"ops":[{"op":"create","object":{"kind":"App","metadata":{"name":"shop","app":"shop"}}}]}`))
	f.Add([]byte(`{"ops":[{"op":"status","object":{"kind":"Pod","metadata":{"name":"a","app":"b","resourceVersion":3}}},{"op":"delete","key":"apps/shop"}]}`))
	f.Add([]byte(`{"ops":[{"op":"update","object":null}],"x":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeTxnRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %q, cannot encode it: %v", body, err)
		}
		back, err := DecodeTxnRequest(bytes.NewReader(again))
		if err != nil || len(back.Ops) != len(req.Ops) {
			t.Fatalf("accepted %q, re-encoded %s reads back %+v, %v", body, again, back, err)
		}
		for i := range req.Ops {
			a, b := req.Ops[i], back.Ops[i]
			if a.Op != b.Op || a.Key != b.Key || a.ResourceVersion != b.ResourceVersion || a.NodeName != b.NodeName || (a.Object == nil) != (b.Object == nil) {
				t.Fatalf("step %d: %+v read back as %+v", i, a, b)
			}
		}
	})
}
