package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dialerIn returns a DialContext that opens its sockets in the network
// namespace at nsPath (a pod's bind-mounted namespace file), so the test
// process talks as that pod would.
func dialerIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if nsErr := inNetNS(nsPath, func() {
			d := net.Dialer{Timeout: 2 * time.Second}
			conn, err = d.DialContext(ctx, network, addr)
		}); nsErr != nil {
			return nil, nsErr
		}
		return conn, err
	}
}

// dialerFromPort is dialerIn with every connection sent from source port
// port (SO_REUSEADDR) and closed with a reset (SO_LINGER 0), so the port
// is free again at once: a client such as a fixed-port health checker,
// whose every connection has the same source address and port.
func dialerFromPort(nsPath string, port int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if nsErr := inNetNS(nsPath, func() {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{Port: port}, Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}); err != nil {
					return err
				}
				return serr
			}}
			conn, err = d.DialContext(ctx, network, addr)
		}); nsErr != nil {
			return nil, nsErr
		}
		if err == nil {
			err = conn.(*net.TCPConn).SetLinger(0)
		}
		return conn, err
	}
}

// inNetNS runs fn on a thread switched into the namespace at path. A
// socket made there stays in that namespace after the thread switches back.
func inNetNS(path string, fn func()) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	fn()
	if err := netns.Set(orig); err != nil {
		// The thread is left locked, so Go ends it with this goroutine
		// instead of reusing it in the wrong namespace.
		return fmt.Errorf("leave network namespace %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// httpClientIn is an HTTP client whose connections start in the network
// namespace at nsPath; every request opens a new connection.
func httpClientIn(nsPath string) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialerIn(nsPath), DisableKeepAlives: true}}
}
