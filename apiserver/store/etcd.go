package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EtcdOptions configure an Etcd store. The zero value of each field but
// Endpoints (or Client) gives the documented default.
type EtcdOptions struct {
	// Endpoints are the etcd members' client URLs (https://host:2379).
	// Required unless Client is set.
	Endpoints []string
	// CAFile verifies the members' serving certificates; CertFile and
	// KeyFile are this client's certificate for members that require
	// one. Empty: plain connections (http:// endpoints).
	CAFile, CertFile, KeyFile string
	// Client, when set, is used instead of dialling Endpoints; Close then
	// leaves it open.
	Client *clientv3.Client
	// Prefix is put before every key (default "/capstan/"), so that other
	// users of the etcd cluster keep out of Capstan's keys.
	Prefix string
	// DialTimeout bounds the first connection and each quick probe
	// (default 5 s).
	DialTimeout time.Duration
	// RequestTimeout bounds each request to etcd (a read, a commit, a
	// page of a list): one that etcd does not answer in time (no quorum,
	// no leader, a member gone mid-request) fails with ErrUnavailable
	// instead of holding its API request (default 10 s).
	RequestTimeout time.Duration
	// CompactInterval: every interval, Start compacts etcd's history up to
	// the revision it saw one interval before, so watchers can resume from
	// at least one interval back (default 5 min, as the Kubernetes API
	// server does). etcd's own --auto-compaction, when set, applies too.
	CompactInterval time.Duration
	// WatchBuffer and WatchBufferBytes bound how far a watcher may fall
	// behind before it is closed with ErrWatcherTooSlow, as Options does
	// for Bolt (defaults 1,024 events, 16 MiB).
	WatchBuffer      int
	WatchBufferBytes int
	// Now returns the current time, for CreatedAt (default time.Now).
	Now func() time.Time
	// Logger receives store diagnostics (default: discard).
	Logger *slog.Logger
}

func (o *EtcdOptions) setDefaults() error {
	if o.Client == nil && len(o.Endpoints) == 0 {
		return errors.New("etcd store: no endpoints given (pass --etcd-endpoints)")
	}
	if o.Prefix == "" {
		o.Prefix = "/capstan/"
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = 5 * time.Minute
	}
	if o.WatchBuffer == 0 {
		o.WatchBuffer = 1024
	}
	if o.WatchBufferBytes == 0 {
		o.WatchBufferBytes = 16 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DialTimeout < 0 || o.RequestTimeout < 0 || o.CompactInterval < 0 || o.WatchBuffer < 0 || o.WatchBufferBytes < 0 {
		return errors.New("etcd store options: durations and limits must not be negative")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("etcd store: give both --etcd-cert and --etcd-key, or neither")
	}
	return nil
}

// Etcd is a Store on an etcd v3 cluster. Revisions are etcd's (plus the
// revision base of a store made by a migration, see LoadEtcd): an
// object's ResourceVersion is its key's mod revision, and every step of a
// transaction shares the transaction's one revision. Writes are etcd
// transactions that compare the mod revision of every key they read (the
// object's, and the allocation keys the hooks read), so compare-and-swap
// and the allocations hold across any number of API servers.
//
// Keys: PREFIX objects/KIND/APP/NAME (KIND/NAME for cluster-scoped kinds)
// holds "NODE\n" followed by the object's JSON without its
// resourceVersion (the node the object is bound to, so a watch by node
// needs no decoding); PREFIX alloc/KEY holds the hooks' allocations;
// PREFIX meta/ the revision base and the read-only switch.
type Etcd struct {
	cli       *clientv3.Client
	ownClient bool
	opts      EtcdOptions
	objects   string       // key prefix of objects
	allocs    string       // key prefix of allocations
	rev       atomic.Int64 // the last revision seen (the store's, base added)
	// base is added to every etcd revision the store shows (see
	// revisionBaseKey); 0 unless the store was migrated from another.
	base      int64
	hooks     Hooks
	nodes     NodeIndex
	closed    chan struct{}
	closeOnce atomic.Bool
	// down: the last request to etcd found it unavailable (etcdhealth.go).
	down atomic.Bool
	// progressOrdered: every member answers watch progress requests in
	// order with the events (etcdprogress.go); set once, at open.
	progressOrdered bool

	// pushHook, when set by a test, sees each event a watcher queued.
	pushHook func(e *Event)
}

var _ Backend = (*Etcd)(nil)

// OpenEtcd connects to etcd and checks that it answers.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := &Etcd{cli: opts.Client, opts: opts, objects: opts.Prefix + "objects/", allocs: opts.Prefix + "alloc/", closed: make(chan struct{})}
	var tc *tls.Config
	if s.cli == nil {
		cfg := clientv3.Config{
			Endpoints: opts.Endpoints, DialTimeout: opts.DialTimeout, Logger: zap.NewNop(),
			DialKeepAliveTime: keepaliveTime, DialKeepAliveTimeout: keepaliveTimeout, DialOptions: dialOptions(),
		}
		if opts.CAFile != "" || opts.CertFile != "" {
			tlsInfo := transport.TLSInfo{TrustedCAFile: opts.CAFile, CertFile: opts.CertFile, KeyFile: opts.KeyFile}
			var err error
			if tc, err = tlsInfo.ClientConfig(); err != nil {
				return nil, fmt.Errorf("etcd store: TLS files: %w", err)
			}
			cfg.TLS = tc
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("etcd store: connect to %v: %w", opts.Endpoints, err)
		}
		s.cli, s.ownClient = cli, true
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	resp, err := s.cli.Get(pctx, s.opts.Prefix+"meta/", clientv3.WithPrefix())
	if err != nil {
		cause, endpoints := s.err(err), s.cli.Endpoints() // before Close, which would turn the cause into ErrClosed
		s.Close()
		hint := "is etcd running, and are --etcd-endpoints and the TLS files right?"
		if opts.Client == nil {
			dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
			defer cancel()
			if tlsErr := diagnoseEndpoints(dctx, endpoints, tc); tlsErr != "" {
				hint = "TLS: " + tlsErr
			}
		}
		return nil, fmt.Errorf("etcd store: %v did not answer within %s: %w (%s)", endpoints, opts.DialTimeout, cause, hint)
	}
	for _, kv := range resp.Kvs {
		switch string(kv.Key) {
		case s.incompleteKey():
			s.Close()
			return nil, fmt.Errorf("etcd store: %s holds %w, %s and not finished, so no server may run on it; if no migration is running now, the server making it stopped mid-copy: delete the copy with etcdctl del --prefix %s, start a server on the old store, run capstan store read-write there, and migrate again", s.opts.Prefix, ErrIncompleteMigration, kv.Value, s.opts.Prefix)
		case s.revisionBaseKey():
			if s.base, err = strconv.ParseInt(string(kv.Value), 10, 64); err != nil || s.base < 0 {
				s.Close()
				return nil, fmt.Errorf("etcd store: %s holds %q, not a revision", s.revisionBaseKey(), kv.Value)
			}
		}
	}
	s.checkProgressRequests(pctx)
	s.seen(s.out(resp.Header.Revision))
	return s, nil
}

// revisionBaseKey holds the number added to etcd's revisions, set by a
// migration into etcd (Load): every revision the store shows is then
// above the revisions of the store it came from, so a client holding one
// of those lists again instead of resuming in another history.
func (s *Etcd) revisionBaseKey() string { return s.opts.Prefix + "meta/revision-base" }

// incompleteKey is there while a migration copies a store into the
// prefix (LoadEtcd): from before its first key to its last transaction,
// which deletes it. A server refuses to open a store that holds it.
func (s *Etcd) incompleteKey() string { return s.opts.Prefix + "meta/incomplete" }

// out converts an etcd revision into the store's.
func (s *Etcd) out(etcdRev int64) int64 { return etcdRev + s.base }

// Client is the etcd client the store uses (leader election and backups
// share it).
func (s *Etcd) Client() *clientv3.Client { return s.cli }

// Close stops the watchers; it closes the client when the store dialled
// it. Later calls fail with ErrClosed.
func (s *Etcd) Close() error {
	if s.closeOnce.Swap(true) {
		return nil
	}
	close(s.closed)
	if s.ownClient {
		return s.cli.Close()
	}
	return nil
}

// SetHooks installs h, and its NodeIndex when it has one; call it before
// the first write.
func (s *Etcd) SetHooks(h Hooks) {
	s.hooks = h
	s.nodes, _ = h.(NodeIndex)
}

func (s *Etcd) nodeOf(obj api.Object) string {
	if s.nodes == nil {
		return ""
	}
	return s.nodes.NodeOf(obj)
}

// seen records a revision read from etcd.
func (s *Etcd) seen(rev int64) {
	for {
		cur := s.rev.Load()
		if rev <= cur || s.rev.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// currentRevision asks etcd for its revision (a linearizable read).
func (s *Etcd) currentRevision(ctx context.Context) (int64, error) {
	resp, err := s.read(ctx, s.opts.Prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	rev := s.out(resp.Header.Revision)
	s.seen(rev)
	return rev, nil
}

// Revision returns etcd's current revision (plus the base), or the last
// one seen when etcd does not answer within DialTimeout.
func (s *Etcd) Revision() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DialTimeout)
	defer cancel()
	if rev, err := s.currentRevision(ctx); err == nil {
		return rev
	}
	return s.rev.Load()
}

// err maps client errors: ErrClosed once the store is closed.
func (s *Etcd) err(err error) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		s.markDown()
		return fmt.Errorf("%w: no answer in time: %w", ErrUnavailable, err)
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("etcd: %w (a transaction of many objects: start the etcd members with a larger --max-txn-ops, see docs/ha.md)", err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("etcd: %w (start the etcd members with a larger --max-request-bytes, see docs/ha.md)", err)
	case unavailable(err):
		s.markDown()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("etcd: %w", err)
}

// unavailable says whether err is etcd (or the way to it) failing, not
// the request: no connection, no leader, a timeout inside etcd.
func unavailable(err error) bool {
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

func (s *Etcd) checkOpen() error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return nil
	}
}

// ---- keys and values ----

func (s *Etcd) kindPrefix(k api.Kind) string { return s.objects + string(k) + "/" }

func (s *Etcd) objectKey(k api.Key) string { return s.kindPrefix(k.Kind) + k.ObjectKey() }

// parseKey turns an etcd key under objects/ back into an object key.
func (s *Etcd) parseKey(key []byte) (api.Key, bool) {
	rest, ok := bytes.CutPrefix(key, []byte(s.objects))
	if !ok {
		return api.Key{}, false
	}
	kind, rest, ok := bytes.Cut(rest, []byte("/"))
	if !ok {
		return api.Key{}, false
	}
	k := api.Key{Kind: api.Kind(kind)}
	if k.Kind.ClusterScoped() {
		k.Name = string(rest)
		return k, true
	}
	app, name, ok := bytes.Cut(rest, []byte("/"))
	if !ok {
		return api.Key{}, false
	}
	k.App, k.Name = string(app), string(name)
	return k, true
}

// encodeValue is what an object's key holds: its node, a newline, and
// its JSON without resourceVersion (etcd's mod revision is the truth).
func (s *Etcd) encodeValue(obj api.Object) (string, error) {
	m := obj.Meta()
	rv := m.ResourceVersion
	m.ResourceVersion = 0
	data, err := json.Marshal(obj)
	m.ResourceVersion = rv
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", api.KeyOf(obj), err)
	}
	if err := api.CheckSize(api.KeyOf(obj).Kind, len(data)); err != nil {
		return "", err
	}
	return s.nodeOf(obj) + "\n" + string(data), nil
}

// splitValue returns the node and the JSON of a stored value.
func splitValue(v []byte) (node, data []byte, err error) {
	node, data, ok := bytes.Cut(v, []byte("\n"))
	if !ok {
		return nil, nil, errors.New("stored value has no node line")
	}
	return node, data, nil
}

// decodeValue decodes a stored value as kind at mod revision rev.
func decodeValue(kind api.Kind, v []byte, rev int64) (api.Object, error) {
	_, data, err := splitValue(v)
	if err != nil {
		return nil, err
	}
	obj, err := api.DecodeLenient(kind, data)
	if err != nil {
		return nil, err
	}
	obj.Meta().ResourceVersion = rev
	return obj, nil
}

// withRevision returns the stored JSON data with resourceVersion rev, as
// watch events carry it: spliced in after `"metadata":{`, which every
// encoded object has (its name is always written), instead of a decode
// and an encode per event.
func withRevision(data []byte, rev int64) []byte {
	const meta = `"metadata":{`
	i := bytes.Index(data, []byte(meta))
	if i < 0 {
		return bytes.Clone(data)
	}
	i += len(meta)
	out := make([]byte, 0, len(data)+40)
	out = append(out, data[:i]...)
	out = append(out, `"resourceVersion":`...)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, ',')
	return append(out, data[i:]...)
}

// ---- reads ----

// Get returns the object with key k.
func (s *Etcd) Get(ctx context.Context, k api.Key) (api.Object, error) {
	if !k.Kind.Valid() {
		return nil, fmt.Errorf("%w: %q", api.ErrUnknownKind, k.Kind)
	}
	resp, err := s.read(ctx, s.objectKey(k))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", k, err)
	}
	s.seen(s.out(resp.Header.Revision))
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	obj, err := decodeValue(k.Kind, resp.Kvs[0].Value, s.out(resp.Kvs[0].ModRevision))
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	return obj, nil
}

// listPage is how many keys one read of a list takes.
const listPage = 1000

// List returns the matching objects of kind, sorted by key, and the
// revision read at: every page is read at the first page's revision.
func (s *Etcd) List(ctx context.Context, kind api.Kind, opts ListOptions) ([]api.Object, int64, error) {
	if !kind.Valid() {
		return nil, 0, fmt.Errorf("%w: %q", api.ErrUnknownKind, kind)
	}
	prefix := s.kindPrefix(kind)
	if opts.App != "" && !kind.ClusterScoped() {
		prefix += opts.App + "/"
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	var out []api.Object
	var rev int64
	from := prefix
	for {
		o := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			o = append(o, clientv3.WithRev(rev))
		}
		resp, err := s.read(ctx, from, o...)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", kind, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			s.seen(s.out(rev))
		}
		for _, kv := range resp.Kvs {
			node, _, err := splitValue(kv.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if opts.Node != "" && string(node) != opts.Node {
				continue
			}
			obj, err := decodeValue(kind, kv.Value, s.out(kv.ModRevision))
			if err != nil {
				return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if labelsMatch(obj, opts.Labels) {
				out = append(out, obj)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, s.out(rev), nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func labelsMatch(obj api.Object, want map[string]string) bool {
	return MatchLabels(obj.Meta().Labels, want)
}

// ---- compaction ----

// Start compacts etcd's history every CompactInterval, up to the
// revision seen one interval before, until ctx ends. Several servers may
// each run it: compacting a revision already compacted is no error.
func (s *Etcd) Start(ctx context.Context) error {
	t := time.NewTicker(s.opts.CompactInterval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-t.C:
		}
		if last > 0 {
			if err := s.Compact(ctx, last); err != nil {
				s.opts.Logger.Error("compact etcd history", "revision", last, "err", err)
			}
		}
		cur, err := s.currentRevision(ctx)
		if err != nil {
			s.opts.Logger.Warn("read etcd revision for compaction", "err", err)
			continue
		}
		last = cur
	}
}

// Compact drops etcd's history before rev: watches from an earlier
// revision then fail with ErrCompacted.
func (s *Etcd) Compact(ctx context.Context, rev int64) error {
	if rev -= s.base; rev <= 0 {
		return nil // before this store's history began
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	_, err := s.cli.Compact(rctx, rev)
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact etcd at revision %d: %w", rev, s.err(err))
	}
	return nil
}
