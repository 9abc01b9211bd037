// Package etcdtest runs a real etcd cluster for tests: members are the
// etcd server itself (go.etcd.io/etcd/server/v3/embed) in the test
// process, on loopback ports, with their data in a directory the caller
// owns. A test package starts one cluster in TestMain and shares it; each
// test keeps to a key prefix of its own.
//
// Each member's clients reach it through a TCP proxy the test controls
// (Member.Partition cuts it), so a test can separate a client from a
// member, the leader in particular, without touching the network.
// Stop and Restart take a member down and back up on its data.
//
// StartBinary runs one member from the etcd binary on PATH instead (Debian's
// etcd-server, older than the embedded server), for tests of what an
// older member does.
//
// Concurrency: the methods are safe for concurrent use.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	Members []*Member
	dir     string
}

// Member is one etcd member.
type Member struct {
	Name string
	// ClientURL is the proxy clients use; PeerURL the member's peer port.
	ClientURL string
	PeerURL   string

	mu        sync.Mutex
	cfg       *embed.Config
	etcd      *embed.Etcd
	directURL string // the member's own client listener
	proxy     *proxy
}

// Start runs an n-member cluster with its data under dir and waits until
// it has a leader. The ports are picked free and then released for etcd
// to bind, so another process may take one meanwhile: Start then tries
// again on new ports (three times).
func Start(dir string, n int) (*Cluster, error) {
	var err error
	for attempt := range 3 {
		var c *Cluster
		c, err = start(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), n)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			return c, err
		}
	}
	return nil, err
}

func start(dir string, n int) (*Cluster, error) {
	c := &Cluster{dir: dir}
	peers := make([]string, n)
	for i := range n {
		m := &Member{Name: fmt.Sprintf("m%d", i)}
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		m.PeerURL = "http://" + ports[0]
		m.directURL = "http://" + ports[1]
		if m.proxy, err = newProxy(ports[1]); err != nil {
			return nil, err
		}
		m.ClientURL = "http://" + m.proxy.addr()
		peers[i] = m.Name + "=" + m.PeerURL
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		cfg := embed.NewConfig()
		cfg.Name = m.Name
		cfg.Dir = filepath.Join(dir, m.Name)
		cfg.InitialCluster = strings.Join(peers, ",")
		cfg.InitialClusterToken = "capstan-test"
		pu, _ := url.Parse(m.PeerURL)
		cu, _ := url.Parse(m.directURL)
		au, _ := url.Parse(m.ClientURL)
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*au}
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.WatchProgressNotifyInterval = 5 * time.Second
		// As docs/ha.md tells operators to run etcd for Capstan.
		cfg.MaxTxnOps = 10000
		cfg.MaxRequestBytes = 16 << 20
		m.cfg = cfg
	}
	// Members wait for each other: start them together.
	errs := make(chan error, n)
	for _, m := range c.Members {
		go func() { errs <- m.start() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		c.Close()
		return nil, first
	}
	if err := c.WaitLeader(30 * time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcd member %s: not ready after 60 s", m.Name)
	}
	m.etcd = e
	return nil
}

// Endpoints are the members' client URLs (through their proxies).
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// Client dials every member.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// Leader returns the member that leads, nil when none does (or the
// members disagree).
func (c *Cluster) Leader() *Member {
	var lead uint64
	var leader *Member
	for _, m := range c.Members {
		m.mu.Lock()
		e := m.etcd
		m.mu.Unlock()
		if e == nil {
			continue
		}
		l := uint64(e.Server.Leader())
		if l == 0 || (lead != 0 && l != lead) {
			return nil
		}
		lead = l
		if uint64(e.Server.MemberID()) == l {
			leader = m
		}
	}
	return leader
}

// WaitLeader waits until the running members agree on a leader.
func (c *Cluster) WaitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.Leader() == nil {
		if time.Now().After(deadline) {
			return errors.New("etcd cluster: no leader")
		}
		<-tick.C
	}
	return nil
}

// Stop takes the member down as a crash would for its clients: its
// connections drop and it answers no more. Its data stays for Restart.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if e != nil {
		e.Server.HardStop()
		e.Close()
	}
}

// Restart brings a stopped member back on its data.
func (m *Member) Restart() error {
	m.mu.Lock()
	m.cfg.ClusterState = embed.ClusterStateFlagExisting
	m.mu.Unlock()
	return m.start()
}

// Running says whether the member is up.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
}

// Partition cuts the member off from its clients (not from its peers):
// open connections drop and new ones are refused until Heal. It returns
// how many client connections it dropped.
func (m *Member) Partition() int { return m.proxy.setCut(true) }

// Heal lets clients reach the member again, and ends a Freeze.
func (m *Member) Heal() {
	m.proxy.setCut(false)
	m.proxy.setFrozen(false)
}

// Freeze makes the way to the member a black hole, as a machine that
// lost power or a network that drops packets: connections stay open but
// nothing passes either way, and new ones are taken and never answered,
// until Heal (which delivers what was held).
func (m *Member) Freeze() { m.proxy.setFrozen(true) }

// Dials returns how many connections clients have opened to the member
// (to its proxy), those refused while it was stopped or cut off
// included: each is a client's attempt to reach it.
func (m *Member) Dials() int {
	m.proxy.mu.Lock()
	defer m.proxy.mu.Unlock()
	return m.proxy.dials
}

// HasLeader says whether the member is up and knows a leader: a member
// that lost its quorum has none once its election timeout passes.
func (m *Member) HasLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil && m.etcd.Server.Leader() != 0
}

// Close stops every member and the proxies.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Stop()
		m.proxy.close()
	}
}

// freePorts returns n loopback addresses with free ports.
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out[i] = l.Addr().String()
	}
	return out, nil
}

// proxy forwards TCP connections to a member's client port; cut drops
// them.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	dials int // connections accepted, refused ones included
	conns map[net.Conn]struct{}
	// thaw is closed when a Freeze ends; nil while not frozen.
	thaw chan struct{}
}

func newProxy(target string) (*proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.dials++
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	p.waitThawed()
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.waitThawed()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *proxy) setCut(cut bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	n := 0
	if cut {
		for c := range p.conns {
			c.Close()
			n++
		}
	}
	return n / 2 // each connection is two sockets
}

func (p *proxy) setFrozen(frozen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case frozen && p.thaw == nil:
		p.thaw = make(chan struct{})
	case !frozen && p.thaw != nil:
		close(p.thaw)
		p.thaw = nil
	}
}

// waitThawed waits while the proxy is frozen.
func (p *proxy) waitThawed() {
	p.mu.Lock()
	thaw := p.thaw
	p.mu.Unlock()
	if thaw != nil {
		<-thaw
	}
}

func (p *proxy) close() {
	p.setFrozen(false)
	p.setCut(true)
	p.l.Close()
}

// MainDir makes the directory a test package's cluster lives in; remove
// it after the run.
func MainDir() (string, error) { return os.MkdirTemp("", "capstan-etcd-") }

// Probe checks that the cluster answers a write and a read within ctx.
func (c *Cluster) Probe(ctx context.Context) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/etcdtest/probe", "x"); err != nil {
		return fmt.Errorf("etcd cluster probe: %w", err)
	}
	return nil
}
