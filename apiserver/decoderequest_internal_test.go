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

// A request body over the limit is 413 Request Entity Too Large (as
// Kubernetes answers), naming the limit and what to do, not a 400 that
// reads like a malformed request.
func TestDecodeRequestOverLimit(t *testing.T) {
	body := `{"token":"` + strings.Repeat("a", maxRequestBytes) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/join", strings.NewReader(body))
	var req wire.JoinRequest
	err := decodeRequest(httptest.NewRecorder(), r, &req, "join request")
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != http.StatusRequestEntityTooLarge || ae.reason != wire.ReasonRequestEntityTooLarge {
		t.Fatalf("decodeRequest(%d bytes) = %v, want a 413", len(body), err)
	}
	for _, want := range []string{"join request: ", "65536 bytes (64KiB)", "check that the client sends"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	st := toStatus(err)
	if st.Code != http.StatusRequestEntityTooLarge || st.Message != err.Error() {
		t.Errorf("answer %+v, want 413 with the message", st)
	}
}

// FuzzDecodeRequest: whatever body a client sends, decoding does not
// panic, a refusal is a 400 (413 over the limit), and a body it accepts
// is one JSON value.
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
			// 413 only for a body over the limit (a syntax error in
			// its first bytes is a 400 all the same).
			tooLarge := errors.As(err, &ae) && ae.code == http.StatusRequestEntityTooLarge && len(body) > maxRequestBytes
			if ae == nil || (ae.code != http.StatusBadRequest && !tooLarge) || !strings.HasPrefix(err.Error(), "join request: ") {
				t.Fatalf("decodeRequest(%q) = %v, want a 400 (413 over the limit) naming the join request", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
	})
}
