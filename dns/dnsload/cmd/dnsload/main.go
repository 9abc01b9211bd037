// Command dnsload measures the cluster DNS server: it builds a zone of
// synthetic services, serves it with the dns package on loopback (or
// loads a server already running there) and asks for the services' names
// from many UDP sockets, then prints queries per second and latency.
//
//	go run ./dns/dnsload/cmd/dnsload -duration 10s
//	go run ./dns/dnsload/cmd/dnsload -serve 127.0.0.1:5300 &   # server alone
//	go run ./dns/dnsload/cmd/dnsload -addr 127.0.0.1:5300      # load alone
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/dns"
	"github.com/capstanhq/capstan/dns/dnsload"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err) // errors name their package
		os.Exit(1)
	}
}

func run() error {
	var (
		addr     = flag.String("addr", "", "load the server at this loopback ip:port instead of starting one")
		serve    = flag.String("serve", "", "only serve the synthetic zone on this loopback ip:port until interrupted")
		services = flag.Int("services", 1000, "synthetic services in the zone; their names are the ones asked")
		sockets  = flag.Int("sockets", 0, "UDP sockets of the started server (0: the server's default, GOMAXPROCS)")
		workers  = flag.Int("workers", 0, "client sockets (0: 2 x GOMAXPROCS)")
		window   = flag.Int("window", 0, "queries in flight per client socket (0: 8)")
		count    = flag.Int("count", 0, "stop after this many queries (0: only -duration)")
		duration = flag.Duration("duration", 5*time.Second, "stop after this long")
		profile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	names := syntheticNames(*services)
	if *addr == "" {
		listen := *serve
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		if ap, err := netip.ParseAddrPort(listen); err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("dnsload: -serve %s: want a loopback ip:port such as 127.0.0.1:5354", listen)
		}
		srv, err := dns.New(dns.Options{
			Addrs: []string{listen},
			// Every name asked is in the zone; the upstream is a
			// loopback port nothing listens on, never the host's.
			Upstreams:  []string{"127.0.0.1:9"},
			UDPSockets: *sockets,
			Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			return err
		}
		svcs, eps := syntheticCluster(*services)
		if err := srv.Update(dns.BuildSnapshot("", svcs, eps)); err != nil {
			return err
		}
		srvCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- srv.Start(srvCtx) }()
		select {
		case <-srv.Ready():
		case err := <-done:
			return err
		}
		*addr = srv.Addrs()[0].String()
		if *serve != "" {
			fmt.Printf("serving %d services on %s until interrupted\n", len(svcs), *addr)
			return <-done
		}
	}
	r, err := dnsload.Run(ctx, dnsload.Options{
		Addr: *addr, Names: names, Workers: *workers, Window: *window, Count: *count, Duration: *duration,
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s: %v\n", *addr, r)
	if r.Answered == 0 {
		return errors.New("no query was answered")
	}
	return nil
}

// syntheticCluster is n services with a VIP and two ready endpoints each,
// a hundred services per app.
func syntheticCluster(n int) ([]*api.Service, []*api.Endpoints) {
	var services []*api.Service
	var endpoints []*api.Endpoints
	for i := range n {
		s := &api.Service{Spec: api.ServiceSpec{
			VIP:   fmt.Sprintf("10.96.%d.%d", i/256%256, i%256),
			Ports: []api.ServicePort{{Name: "http", Port: 80}},
		}}
		s.Metadata.App, s.Metadata.Name = fmt.Sprintf("app%d", i/100), fmt.Sprintf("svc%d", i)
		e := &api.Endpoints{}
		e.Metadata = s.Metadata
		for j := range 2 {
			e.Spec.Addresses = append(e.Spec.Addresses, api.EndpointAddress{
				Pod: fmt.Sprintf("svc%d-%d", i, j), IP: fmt.Sprintf("10.88.%d.%d", i%256, j+1), Ready: true})
		}
		services, endpoints = append(services, s), append(endpoints, e)
	}
	return services, endpoints
}

func syntheticNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("svc%d.app%d.svc.cluster.local.", i, i/100)
	}
	return names
}
