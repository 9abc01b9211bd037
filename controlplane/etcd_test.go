package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A control plane with --store etcd keeps its objects in etcd: the API
// serves them, allocates a node's pod CIDR and a service's VIP and node
// port in the write's transaction, and streams the changes.
func TestControlPlaneOnEtcd(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cp, err := New(Options{
		DataDir: t.TempDir(),
		API:     apiserver.Options{Listen: "127.0.0.1:0"},
		Store:   StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: cluster.Endpoints()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Start: %v", err)
		}
	}()
	admin, err := client.FromFile(cp.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for admin.Do(ctx, "GET", "/readyz", nil, nil) != nil {
		select {
		case <-deadline:
			t.Fatal("the API server never became ready")
		case <-tick.C:
		}
	}
	_, since, err := admin.List(ctx, api.KindService, client.ListOptions{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := admin.Watch(ctx, api.KindService, client.ListOptions{App: "shop"}, since)
	if err != nil {
		t.Fatal(err)
	}

	nc, err := cp.NodeClient(ctx, "n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	created, err := nc.Create(ctx, n)
	if err != nil {
		t.Fatalf("register a node on etcd: %v", err)
	}
	if created.(*api.Node).Spec.PodCIDR == "" {
		t.Fatal("the node got no pod CIDR")
	}
	svc := api.KindService.New().(*api.Service)
	svc.Metadata = api.ObjectMeta{Name: "web", App: "shop"}
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80}}
	svc.Spec.External = true
	out, err := admin.Create(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*api.Service)
	if got.Spec.VIP == "" || got.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("service allocated VIP %q node port %d", got.Spec.VIP, got.Spec.Ports[0].NodePort)
	}
	e, err := watch.Next()
	for err == nil && e.Type == "BOOKMARK" {
		e, err = watch.Next()
	}
	if err != nil {
		t.Fatal(err)
	}
	if e.Object == nil || e.Object.Meta().Name != "web" || e.Object.Meta().ResourceVersion != got.Metadata.ResourceVersion {
		t.Fatalf("watch event %+v; want the service at revision %d", e, got.Metadata.ResourceVersion)
	}

	// The objects and their allocations are etcd's keys.
	cli, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/capstan/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = true
	}
	for _, k := range []string{"/capstan/objects/nodes/n1", "/capstan/objects/services/shop/web", "/capstan/alloc/vip/" + got.Spec.VIP} {
		if !keys[k] {
			t.Errorf("etcd has no key %s (keys: %v)", k, keys)
		}
	}
}
