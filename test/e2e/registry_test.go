package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestClusterRegistry is the path of docs/cluster.md: an admin packs and
// pushes an image to the server's registry (HTTPS from the cluster CA,
// push credentials of the admin config), three agents join with join
// tokens and pull it with the pull credentials of their join answers, and
// the pods run on all three. Then items 10 and 19 of issue 12: pods reach
// neither their host's loopback nor an anonymous push on the registry.
func TestClusterRegistry(t *testing.T) {
	c := New(t, Options{Hosts: 3, ClusterRegistry: true})
	c.DeployEcho(3)
	pods := waitSpread(t, c, 3, 3*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 1 && len(by["h1"]) == 1 && len(by["h2"]) == 1
	})
	t.Logf("spread: %s", Spread(pods))
	onH0 := ReadyPods(pods)["h0"][0]

	t.Run("nodes got pull credentials at join, not the push ones", func(t *testing.T) {
		admin, err := client.LoadConfig(c.AdminConfigPath())
		if err != nil || admin.Registry == nil {
			t.Fatalf("admin config without the registry: %v", err)
		}
		for _, h := range c.Hosts {
			cfg, err := client.LoadConfig(h.NodeConfigPath())
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Registry.Serves(ClusterRegistryAddr) || cfg.Registry.Username == admin.Registry.Username {
				t.Errorf("%s: registry access %+v, want the pull user for %s", h.Name, cfg.Registry, ClusterRegistryAddr)
			}
		}
	})

	t.Run("a pod cannot reach its host's loopback", func(t *testing.T) {
		// A listener on host h0's 127.0.0.1:5000, where `capstan up`
		// serves its registry.
		var ln net.Listener
		var lerr error
		if err := inNetNS("/run/netns/"+c.Hosts[0].NS, func() { ln, lerr = net.Listen("tcp", "127.0.0.1:"+clusterRegistryPort) }); err != nil || lerr != nil {
			t.Fatalf("listen on h0's loopback: %v, %v", err, lerr)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
		conn, err := dialerIn("/run/netns/"+c.Hosts[0].NS)(t.Context(), "tcp", "127.0.0.1:"+clusterRegistryPort)
		if err != nil {
			t.Fatalf("the host itself cannot reach its loopback listener: %v", err)
		}
		conn.Close()
		conn, err = dialerIn(c.PodNetNS(onH0))(t.Context(), "tcp", "127.0.0.1:"+clusterRegistryPort)
		if err == nil {
			conn.Close()
			t.Fatal("a pod reached its host's 127.0.0.1:5000")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("pod to 127.0.0.1:5000: %v, want connection refused (its own loopback)", err)
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.AdminConfig.CA))
	fromPod := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: dialerIn(c.PodNetNS(onH0)), DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	status := func(t *testing.T, hc *http.Client, method, url, user, pass string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("the registry's node address refuses a pod's anonymous push and pull", func(t *testing.T) {
		base := "https://" + ClusterRegistryAddr + "/v2/"
		if got := status(t, fromPod, http.MethodPost, base+"evil/app/blobs/uploads/", "", ""); got != http.StatusUnauthorized {
			t.Errorf("anonymous upload from a pod: %d, want 401", got)
		}
		if got := status(t, fromPod, http.MethodGet, base+"_catalog", "", ""); got != http.StatusUnauthorized {
			t.Errorf("anonymous pull from a pod: %d, want 401", got)
		}
		node, err := client.LoadConfig(c.Hosts[0].NodeConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		if got := status(t, fromPod, http.MethodPost, base+"evil/app/blobs/uploads/", node.Registry.Username, node.Registry.Password); got != http.StatusForbidden {
			t.Errorf("upload with the nodes' pull credentials: %d, want 403", got)
		}
	})

	t.Run("the server's loopback registry refuses anonymous pushes", func(t *testing.T) {
		inSrv := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialerIn("/run/netns/" + serverNS), DisableKeepAlives: true}}
		base := "http://127.0.0.1:" + clusterRegistryPort + "/v2/"
		if got := status(t, inSrv, http.MethodPost, base+"evil/app/blobs/uploads/", "", ""); got != http.StatusUnauthorized {
			t.Errorf("anonymous upload on the server's loopback: %d, want 401", got)
		}
		if got := status(t, inSrv, http.MethodGet, base+"_catalog", "", ""); got != http.StatusOK {
			t.Errorf("anonymous pull on the server's loopback: %d, want 200", got)
		}
	})
}
