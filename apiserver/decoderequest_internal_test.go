package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// A request body (join, token, rejoin, node certificate, store admin)
// with more after its JSON object is refused, not acted on with the rest
// dropped; an empty one says it is empty, not "EOF".
func TestDecodeRequestRefusesTrailingData(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"role":"viewer"}{"role":"admin"}`, "token request: more after the JSON object"},
		{`{"role":"viewer"} x`, "token request: more after the JSON object"},
		{``, "token request: the body is empty"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/tokens", strings.NewReader(tc.body))
		var req wire.CreateTokenRequest
		err := decodeRequest(httptest.NewRecorder(), r, &req, "token request")
		var ae *apiError
		if !errors.As(err, &ae) || ae.code != http.StatusBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeRequest(%q) = %v, want a 400 saying %q", tc.body, err, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/tokens", strings.NewReader("{\"role\":\"viewer\"}\n"))
	var req wire.CreateTokenRequest
	if err := decodeRequest(httptest.NewRecorder(), r, &req, "token request"); err != nil || req.Role != "viewer" {
		t.Fatalf("one object and a newline: %+v, %v", req, err)
	}
}

// FuzzDecodeRequest: whatever body a client sends, decoding does not
// panic, a refusal is a 400, and a body it accepts is one JSON value.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"node":"n1"}`))
	f.Add([]byte(`{"node":"n1"} {"node":"n2"}`))
	f.Add([]byte(`{"node":1}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/join", strings.NewReader(string(body)))
		var req wire.JoinRequest
		err := decodeRequest(httptest.NewRecorder(), r, &req, "join request")
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != http.StatusBadRequest || !strings.HasPrefix(err.Error(), "join request: ") {
				t.Fatalf("decodeRequest(%q) = %v, want a 400 naming the join request", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
	})
}
