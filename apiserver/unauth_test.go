package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// What the holder of a revoked or expired token sees: a 401 that says
// how to get working credentials, on the API and on the other routes.
func TestRefusedTokenSaysWhatToDo(t *testing.T) {
	ctx := context.Background()
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: func() time.Time { return *now.Load() }}})

	viewer := createToken(t, c.Client, wire.CreateTokenRequest{Role: apiserver.RoleViewer})
	expiring := createToken(t, c.Client, wire.CreateTokenRequest{Role: apiserver.RoleViewer, TTL: time.Minute})
	as := func(bearer string) *client.Client {
		cfg := *c.Config
		cfg.Token = bearer
		cl, err := client.New(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	if err := c.Client.Do(ctx, http.MethodDelete, "/tokens/"+viewer.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	later := start.Add(time.Hour)
	now.Store(&later)

	for name, cl := range map[string]*client.Client{"revoked": as(viewer.Token), "expired": as(expiring.Token)} {
		_, _, listErr := cl.List(ctx, api.KindPod, client.ListOptions{})
		infoErr := cl.Do(ctx, http.MethodGet, "/clusterinfo", nil, nil)
		for route, err := range map[string]error{"list pods": listErr, "clusterinfo": infoErr} {
			if !hasStatus(err, http.StatusUnauthorized) {
				t.Fatalf("%s token, %s: %v, want 401", name, route, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "capstan token create") || !strings.Contains(msg, "CAPSTAN_CONFIG") {
				t.Errorf("%s token, %s: %q does not say how to get a working token", name, route, msg)
			}
		}
	}
}

func hasStatus(err error, code int) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == code
}
