package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// BenchmarkTransportCeiling measures what Go's HTTP server and client
// alone do on this machine, with 64 clients: a POST of 450 bytes answered
// with 700 (a pod's create and its answer) by a handler that does
// nothing else, over HTTP/2 with TLS 1.3 (as Capstan's API), HTTP/2 in
// the clear and HTTP/1.1 with TLS 1.3 (64 connections), beside etcd's
// whole Put (plaintext and TLS) in the same interleaved rounds. It is the
// ceiling of BenchmarkCreatesVsEtcd at 64 clients: no create over a
// transport can be faster than the transport.
func BenchmarkTransportCeiling(b *testing.B) {
	const clients = 64
	ctx := context.Background()
	req, answer := bytes.Repeat([]byte("q"), 450), bytes.Repeat([]byte("a"), 700)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(answer)
	})
	type system struct {
		name string
		op   func(context.Context) error
		res  []loadResult
	}
	post := func(c *http.Client, url string, proto int) func(context.Context) error {
		return func(ctx context.Context) error {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
			if err != nil {
				return err
			}
			resp, err := c.Do(r)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.ProtoMajor != proto || resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("%s: %s, want HTTP/%d 201", url, resp.Status, proto)
			}
			return nil
		}
	}
	var systems []*system
	for _, h2 := range []bool{true, false} {
		s := httptest.NewUnstartedServer(h)
		s.EnableHTTP2 = h2
		s.StartTLS()
		b.Cleanup(s.Close)
		c := s.Client()
		tr := c.Transport.(*http.Transport)
		tr.TLSClientConfig.MinVersion = tls.VersionTLS13
		tr.MaxIdleConnsPerHost = clients
		name, proto := "h2-tls", 2
		if !h2 {
			name, proto = "http1-tls", 1
		}
		systems = append(systems, &system{name: name, op: post(c, s.URL, proto)})
	}
	var clear http.Protocols
	clear.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: &clear}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	h2c := &http.Client{Transport: &http.Transport{Protocols: &clear}}
	systems = append(systems, &system{name: "h2c", op: post(h2c, "http://"+ln.Addr().String()+"/", 2)})
	var seq atomic.Int64
	for _, e := range []struct {
		name string
		a    *etcdAnchor
	}{{"etcd", startEtcd(b)}, {"etcd-tls", startEtcdTLS(b)}} {
		if e.a == nil {
			continue
		}
		c := e.a.Client
		systems = append(systems, &system{name: e.name, op: func(ctx context.Context) error {
			_, err := c.Put(ctx, fmt.Sprintf("/ceiling/%d", seq.Add(1)), value)
			return err
		}})
	}
	for b.Loop() {
		for _, s := range systems {
			s.res = append(s.res, load(ctx, clients, *writeWindow, s.op))
		}
	}
	for _, s := range systems {
		report(b, s.name, s.res)
	}
}
