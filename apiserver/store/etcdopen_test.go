package store

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// An etcd that does not answer at start: the error says so and what to
// check, not that the store is closed (the store closing its own client
// on the way out used to hide the cause).
func TestOpenEtcdUnreachableSaysWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = OpenEtcd(t.Context(), EtcdOptions{Endpoints: []string{"http://" + addr}, DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("OpenEtcd of an address nothing listens on succeeded")
	}
	if errors.Is(err, ErrClosed) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "--etcd-endpoints") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("OpenEtcd of an address nothing listens on: %v; want ErrUnavailable naming %s and --etcd-endpoints, not %q", err, addr, ErrClosed)
	}
}
