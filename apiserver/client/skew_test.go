package client_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestReadsFromNewerServer: a server one version ahead (upgraded before
// its agents, docs/cluster.md#upgrading) sends objects with fields this
// client does not know. Get, List, Watch and a transaction's answer read
// them, dropping the new fields, as client-go does; before, every read of
// such an object failed with "unknown object member", and an agent one
// version behind could not see its pods. A real server cannot be made to
// send a field its own binary does not know, hence the stand-in.
func TestReadsFromNewerServer(t *testing.T) {
	const pod = `{"kind":"Pod","metadata":{"name":"web-1","app":"shop","resourceVersion":7,"fieldOfTomorrow":"x"},` +
		`"spec":{"nodeName":"n1","containers":[{"name":"web","image":"hello:v1","newSetting":{"a":1}}]},"status":{"phase":"Running","newCounter":3}}`
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods/shop/web-1", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(pod))
	})
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			_, _ = w.Write([]byte(`{"type":"MODIFIED","object":` + pod + "}\n"))
			return
		}
		_, _ = w.Write([]byte(`{"kind":"PodList","resourceVersion":7,"items":[` + pod + `],"newListField":true}`))
	})
	mux.HandleFunc("POST /api/v1/txn", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"objects":[` + pod + `]}`))
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	c, err := client.New(&client.Config{Server: srv.URL, CA: ca, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	check := func(what string, obj api.Object, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s of a pod from a newer server: %v", what, err)
		}
		p := obj.(*api.Pod)
		if p.Metadata.Name != "web-1" || p.Spec.NodeName != "n1" || p.Status.Phase != "Running" || p.Spec.Containers[0].Image != "hello:v1" {
			t.Fatalf("%s: the fields this client knows were not read: %+v", what, p)
		}
	}
	key := api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"}
	obj, err := c.Get(ctx, key)
	check("get", obj, err)
	objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{})
	if err == nil && len(objs) != 1 {
		t.Fatalf("list: %d pods, want 1", len(objs))
	}
	check("list", objs[0], err)
	w, err := c.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ev, err := w.Next()
	check("watch", ev.Object, err)
	objs, err = c.Txn(ctx, []client.TxnOp{client.StatusOp(obj)})
	if err == nil && len(objs) != 1 {
		t.Fatalf("txn: %d objects, want 1", len(objs))
	}
	check("txn", objs[0], err)
}
