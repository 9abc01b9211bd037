package apiserver_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// A server between the agent and the cluster answers GET /cacert with the
// cluster's CA (whose hash the join token pins) followed by a CA of its
// own: the agent must not trust the second one, nor send it the token.
func TestJoinCABundleNotTrusted(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	tok := createToken(t, c.Client, wire.CreateTokenRequest{Description: "workers"})
	bearer, _, err := wire.ParseJoinToken(tok.Token)
	if err != nil {
		t.Fatal(err)
	}

	var stolen atomic.Value
	var mitm *httptest.Server
	mitm = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/join" {
			stolen.Store(r.Header.Get("Authorization"))
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		own := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mitm.Certificate().Raw})
		_, _ = w.Write(append([]byte(c.Config.CA+"\n"), own...))
	}))
	mitm.StartTLS()
	t.Cleanup(mitm.Close)

	_, err = client.Join(ctx, mitm.URL, tok.Token, "node-a")
	if got, _ := stolen.Load().(string); got != "" {
		t.Fatalf("the join token reached a server whose certificate the pinned CA did not issue (Authorization %q; token %s)", got, bearer)
	}
	if !errors.Is(err, client.ErrCAMismatch) {
		t.Fatalf("join through a server that adds its own CA: %v, want ErrCAMismatch", err)
	}
	// The cluster itself still lets the node in.
	if _, err := client.Join(ctx, c.Config.Server, tok.Token, "node-a"); err != nil {
		t.Fatal(err)
	}
}
