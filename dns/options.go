package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Options configure a Server. Zero values mean the documented default.
type Options struct {
	// Addrs are the "ip:port" addresses to serve on, UDP and TCP on each:
	// the node's bridge gateway (e.g. "10.88.3.1:53") and optionally one
	// for the host. Port 0 picks a free port (the same one for UDP and
	// TCP); Addrs reports it. Required.
	Addrs []string
	// Zone is the cluster zone. Default DefaultZone ("cluster.local").
	Zone string
	// Upstreams are the resolvers names outside the zone go to, "ip" or
	// "ip:port", tried in order. Default: the nameservers of ResolvConf
	// that are IP addresses (others are skipped, as the C library does).
	Upstreams []string
	// ResolvConf is read for upstreams when Upstreams is empty. Default
	// "/etc/resolv.conf".
	ResolvConf string
	// CacheSize bounds the number of upstream answers cached. Default
	// 10000; negative turns the cache off.
	CacheSize int
	// UpstreamTimeout bounds one exchange with one upstream. Default 2s.
	UpstreamTimeout time.Duration
	// ForwardTimeout bounds the forwarding of one query, all upstreams
	// tried included; past it the client gets SERVFAIL. Default 4s, under
	// the 5 s glibc and musl clients wait before they give up.
	ForwardTimeout time.Duration
	// MaxForwards bounds the forwarded UDP queries in flight; past it
	// clients get SERVFAIL at once. Default 1024.
	MaxForwards int
	// MaxTCPConns bounds open TCP connections; past it new ones are
	// closed at once. Default 512.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection with no query for this long.
	// Default 10s.
	TCPIdleTimeout time.Duration
	// UDPSockets is the number of UDP sockets per address, sharing the
	// port through SO_REUSEPORT so the kernel spreads clients over them,
	// each read by its own goroutine. Default GOMAXPROCS on Linux; always
	// 1 elsewhere.
	UDPSockets int
	// AllowedClients are the source networks the server answers; a query
	// from anywhere else gets REFUSED (a TCP connection is closed), so a
	// node whose address faces the internet is not an open resolver, nor
	// tells strangers the cluster's names. Default
	// DefaultAllowedClients: loopback, link-local and the private ranges.
	AllowedClients []netip.Prefix
	// Logger receives debug logs of failed forwards and socket errors.
	// Default: discard.
	Logger *slog.Logger
	// Now is the cache's clock. Default time.Now.
	Now func() time.Time
}

// DefaultAllowedClients are Options.AllowedClients' default: loopback,
// link-local, the private IPv4 ranges (RFC 1918) and shared address space
// (RFC 6598, where pods and nodes of most clusters live), and IPv6 unique
// local addresses.
var DefaultAllowedClients = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// withDefaults validates o and fills in defaults. The error says which
// option is wrong and how to fix it.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...)
	}
	if len(o.Addrs) == 0 {
		return bad("no listen address: set Addrs to the bridge gateway's ip:53")
	}
	for _, a := range o.Addrs {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return bad("listen address %q: %w (want ip:port, e.g. 10.88.0.1:53)", a, err)
		}
	}
	z, ok := canonicalZone(o.Zone)
	if !ok {
		return bad("zone %q is not a domain name of at most %d characters (e.g. cluster.local)", o.Zone, maxZoneLen)
	}
	o.Zone = z
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	if len(o.Upstreams) == 0 {
		cc, err := mdns.ClientConfigFromFile(o.ResolvConf)
		if err != nil {
			return bad("no upstreams given and reading %s failed: %w; set Upstreams", o.ResolvConf, err)
		}
		// A nameserver that is not an address is skipped, as the C
		// library's resolver skips it.
		var skipped []string
		for _, s := range cc.Servers {
			u := net.JoinHostPort(s, cc.Port)
			if _, err := parseUpstream(u); err != nil {
				skipped = append(skipped, strconv.Quote(s))
				continue
			}
			o.Upstreams = append(o.Upstreams, u)
		}
		if len(o.Upstreams) == 0 && len(skipped) > 0 {
			return bad("no upstreams given and no nameserver of %s is an IP address (%s); fix the file or set Upstreams", o.ResolvConf, strings.Join(skipped, ", "))
		}
		if len(o.Upstreams) == 0 {
			return bad("no upstreams given and %s lists no nameserver; set Upstreams", o.ResolvConf)
		}
	}
	ups := make([]string, 0, len(o.Upstreams))
	for _, u := range o.Upstreams {
		ap, err := parseUpstream(u)
		if err != nil {
			return bad("upstream %q: %w (want ip or ip:port)", u, err)
		}
		for _, a := range o.Addrs {
			if l := netip.MustParseAddrPort(a); l == ap && l.Port() != 0 {
				return bad("upstream %s is this server's own address: queries would loop; set Upstreams", u)
			}
		}
		ups = append(ups, ap.String())
	}
	o.Upstreams = ups
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.UpstreamTimeout == 0 {
		o.UpstreamTimeout = 2 * time.Second
	}
	if o.AllowedClients == nil {
		o.AllowedClients = DefaultAllowedClients
	}
	if o.ForwardTimeout == 0 {
		o.ForwardTimeout = 4 * time.Second
	}
	if o.MaxForwards == 0 {
		o.MaxForwards = 1024
	}
	if o.MaxTCPConns == 0 {
		o.MaxTCPConns = 512
	}
	if o.TCPIdleTimeout == 0 {
		o.TCPIdleTimeout = 10 * time.Second
	}
	if o.UDPSockets == 0 {
		o.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if !reusePortSupported {
		o.UDPSockets = 1
	}
	switch {
	case o.UpstreamTimeout < 0:
		return bad("UpstreamTimeout %v is negative", o.UpstreamTimeout)
	case o.ForwardTimeout < 0:
		return bad("ForwardTimeout %v is negative", o.ForwardTimeout)
	case o.MaxForwards < 0:
		return bad("MaxForwards %d is negative", o.MaxForwards)
	case o.MaxTCPConns < 0:
		return bad("MaxTCPConns %d is negative", o.MaxTCPConns)
	case o.TCPIdleTimeout < 0:
		return bad("TCPIdleTimeout %v is negative", o.TCPIdleTimeout)
	case o.UDPSockets < 0 || o.UDPSockets > 256:
		return bad("UDPSockets %d is out of range 1-256", o.UDPSockets)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// parseUpstream accepts "ip" (port 53) or "ip:port", IPv6 in brackets
// when a port is given.
func parseUpstream(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, err
	}
	if ap.Port() == 0 {
		return ap, errors.New("port 0")
	}
	return ap, nil
}
