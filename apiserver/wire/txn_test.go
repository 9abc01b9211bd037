package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// FuzzDecodeTxnRequest: a transaction body never panics the decoder, and
// one it accepts reads back the same after the client's encoding of it.
func FuzzDecodeTxnRequest(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":7,"nodeName":"n1"}]}`))
	f.Add([]byte(`{"ops":[{"op":"create","object":{"kind":"App","metadata":{"name":"shop","app":"shop"}}}]}`))
	f.Add([]byte(`{"ops":[{"op":"status","object":{"kind":"Pod","metadata":{"name":"a","app":"b","resourceVersion":3}}},{"op":"delete","key":"apps/shop"}]}`))
	f.Add([]byte(`{"ops":[{"op":"update","object":null}],"x":1}`))
	f.Add([]byte(`{"ops":[]} {"ops":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeTxnRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
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

// A body with more after the transaction (a second transaction pasted
// after the first) is refused, not run with the rest dropped; an empty
// body says so.
func TestDecodeTxnRequestRefusesTrailingData(t *testing.T) {
	one := `{"ops":[{"op":"delete","key":"apps/shop"}]}`
	for _, tc := range []struct{ body, want string }{
		{one + one, "more after the transaction"},
		{one + " x", "more after the transaction"},
		{"", "empty"},
		{" \n", "empty"},
	} {
		_, err := DecodeTxnRequest(strings.NewReader(tc.body))
		if err == nil || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeTxnRequest(%q) = %v, want ErrInvalid saying %q", tc.body, err, tc.want)
		}
	}
	if _, err := DecodeTxnRequest(strings.NewReader(one + "\n")); err != nil {
		t.Fatalf("a transaction and a newline: %v", err)
	}
}
