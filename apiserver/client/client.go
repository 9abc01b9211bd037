package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/version"
)

// Client talks to the API server, or to one of several servers of the
// same cluster at a time (see failover.go).
type Client struct {
	servers *servers
	token   string
	http    *http.Client
	// upgrade speaks HTTP/1.1 only, for exec's connection upgrade.
	upgrade *http.Client
	// headers are added to every request (see WithHeader).
	headers []header
	// batch gathers concurrent creates into shared requests (batch.go).
	batch *batcher
}

// header is a request header whose value is read at each request; an
// empty value is not sent.
type header struct {
	name  string
	value func() string
}

// WithHeader returns a client that sends the header name, with the value
// value returns at the time (none when it returns ""), on every request;
// it shares c's connections and servers. The leading server's controllers
// send wire.FenceHeader this way.
func (c *Client) WithHeader(name string, value func() string) *Client {
	cp := *c
	cp.headers = append(append([]header(nil), c.headers...), header{name, value})
	// Creates sent with other headers go in batches of their own.
	cp.batch = new(batcher)
	return &cp
}

// New returns a client for cfg. It trusts only cfg's CA and speaks TLS 1.3.
func New(cfg *Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CA)) {
		return nil, errors.New("client config: ca holds no PEM certificate")
	}
	urls := cfg.URLs()
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("client config: server %q: want https://HOST:PORT", s)
		}
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
		// A server that vanished without closing its connections (a
		// machine lost, a partition) is noticed by a ping that gets no
		// answer, so that watches on it end and the client moves on.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 5 * time.Second},
	}
	up := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		DialContext:         tr.DialContext,
		TLSHandshakeTimeout: tr.TLSHandshakeTimeout,
		DisableKeepAlives:   true,
	}
	return &Client{servers: newServers(urls), token: cfg.Token, http: &http.Client{Transport: tr}, upgrade: &http.Client{Transport: up}, batch: new(batcher)}, nil
}

// StatusError is an error answer from the server: the wire's Status,
// with its typed Reason and, for a transaction, the failing step.
type StatusError = wire.Status

func hasCode(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return hasCode(err, http.StatusNotFound) }

// IsConflict reports a 409 (stale resourceVersion or existing name).
func IsConflict(err error) bool { return hasCode(err, http.StatusConflict) }

// IsAlreadyExists reports a create of a taken name.
func IsAlreadyExists(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Reason == wire.ReasonAlreadyExists
}

// IsGone reports a 410: the revision was compacted; relist.
func IsGone(err error) bool { return hasCode(err, http.StatusGone) }

// IsFutureRevision reports a watch refused because its revision is ahead
// of the server's store (one restored or wiped since): relist.
func IsFutureRevision(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Reason == wire.ReasonFutureRevision
}

// FailedStep returns the index of the transaction step an error answer
// names (see wire.Status.Step).
func FailedStep(err error) (int, bool) {
	var se *StatusError
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.FailedStep()
}

// IsForbidden reports a 403.
func IsForbidden(err error) bool { return hasCode(err, http.StatusForbidden) }

// IsTooManyRequests reports a 429: a limit refused the request (an event
// limit, a stream limit).
func IsTooManyRequests(err error) bool { return hasCode(err, http.StatusTooManyRequests) }

// IsUnauthorized reports whether the server refused the credentials
// (401: unknown, revoked or expired).
func IsUnauthorized(err error) bool { return hasCode(err, http.StatusUnauthorized) }

// Do sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send returns a 2xx response or the server's error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = b
	}
	return c.sendJSON(ctx, method, path, body)
}

// sendJSON sends body, JSON (none when nil), and returns a 2xx response or
// the server's error.
func (c *Client) sendJSON(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	return c.request(ctx, c.http, method, path, body, func(req *http.Request) {
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}, func(code int) bool { return code/100 == 2 })
}

// roundTrip sends an authenticated request and returns a response whose
// code is ok, or the server's error (a *StatusError), or the transport's.
func (c *Client) roundTrip(hc *http.Client, req *http.Request, base string, ok func(int) bool) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	for _, h := range c.headers {
		if v := h.value(); v != "" {
			req.Header.Set(h.name, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if hint := certificateHint(err); hint != "" {
			return nil, fmt.Errorf("%s %s: %s: %w", req.Method, req.URL.Path, hint, err)
		}
		return nil, fmt.Errorf("%s %s: %w (is the server at %s running?)", req.Method, req.URL.Path, err, base)
	}
	if ok(resp.StatusCode) {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	se := &StatusError{}
	if json.Unmarshal(data, se) != nil || se.Code == 0 {
		se = &StatusError{Code: resp.StatusCode, Reason: wire.Reason(http.StatusText(resp.StatusCode)), Message: strings.TrimSpace(string(data))}
	}
	return nil, se
}

// certificateHint says what to do when the server's certificate does not
// name the address dialled (a server listening on 0.0.0.0 behind NAT, or
// reached by a name it was not told), or "" for other errors.
func certificateHint(err error) string {
	var he x509.HostnameError
	if !errors.As(err, &he) {
		return ""
	}
	valid := ""
	if he.Certificate != nil {
		var names []string
		names = append(names, he.Certificate.DNSNames...)
		for _, ip := range he.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		valid = " it is valid for " + strings.Join(names, ", ") + ";"
	}
	return fmt.Sprintf("the server's certificate is not valid for %s: start the server with --tls-san %s (or use an address it is valid for:%s restarting the server adds the addresses it listens on)", he.Host, he.Host, valid)
}

// objectPath is the URL path of an object.
func objectPath(k api.Key) string {
	if k.Kind.ClusterScoped() {
		return "/api/v1/" + string(k.Kind) + "/" + url.PathEscape(k.Name)
	}
	return "/api/v1/" + string(k.Kind) + "/" + url.PathEscape(k.App) + "/" + url.PathEscape(k.Name)
}

func decodeObject(k api.Kind, resp *http.Response) (api.Object, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return api.DecodeLenient(k, data)
}

func (c *Client) objectCall(ctx context.Context, method, path string, k api.Kind, in any) (api.Object, error) {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	return decodeObject(k, resp)
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, k api.Key) (api.Object, error) {
	return c.objectCall(ctx, http.MethodGet, objectPath(k), k.Kind, nil)
}

// Create stores a new object and returns it as stored. Creates made
// concurrently on one client may share requests (see batch.go); each
// is applied and answered as if sent alone.
func (c *Client) Create(ctx context.Context, obj api.Object) (api.Object, error) {
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return c.create(ctx, api.KeyOf(obj).Kind, body)
}

// createOne sends one create, body being the object's JSON, alone.
func (c *Client) createOne(ctx context.Context, k api.Kind, body []byte) (api.Object, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, "/api/v1/"+string(k), body)
	if err != nil {
		return nil, err
	}
	return decodeObject(k, resp)
}

// Update replaces an object's spec and metadata; with a ResourceVersion set
// it fails with a conflict when the object changed since.
func (c *Client) Update(ctx context.Context, obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	return c.objectCall(ctx, http.MethodPut, objectPath(k), k.Kind, obj)
}

// Modify reads the object at k, applies change to it and writes it with
// Update; a write that raced another (a conflict) is done again from a
// fresh read, up to 5 times, as client-go's RetryOnConflict does.
func (c *Client) Modify(ctx context.Context, k api.Key, change func(api.Object)) (api.Object, error) {
	var err error
	for range 5 {
		var o api.Object
		if o, err = c.Get(ctx, k); err != nil {
			return nil, err
		}
		change(o)
		if o, err = c.Update(ctx, o); !IsConflict(err) {
			return o, err
		}
	}
	return nil, err
}

// UpdateStatus replaces an object's status.
func (c *Client) UpdateStatus(ctx context.Context, obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	return c.objectCall(ctx, http.MethodPut, objectPath(k)+"/status", k.Kind, obj)
}

// DeleteOptions tune a delete.
type DeleteOptions struct {
	// Force removes a pod at once instead of letting its agent stop it.
	Force bool
	// ResourceVersion, when set, must match.
	ResourceVersion int64
}

// Delete removes an object (pods on a node: marks it for graceful
// deletion). It returns the object as the server last had it.
func (c *Client) Delete(ctx context.Context, k api.Key, opts DeleteOptions) (api.Object, error) {
	q := url.Values{}
	if opts.Force {
		q.Set("force", "true")
	}
	if opts.ResourceVersion != 0 {
		q.Set("resourceVersion", strconv.FormatInt(opts.ResourceVersion, 10))
	}
	path := objectPath(k)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.objectCall(ctx, http.MethodDelete, path, k.Kind, nil)
}

// ListOptions filter a list or a watch.
type ListOptions struct {
	App    string
	Labels map[string]string
	Node   string
	// PageSize is how many objects List asks for a request; it follows
	// the continue tokens until the last page. Default 500.
	PageSize int
}

// defaultPageSize is ListOptions.PageSize's default (client-go's pager
// uses the same).
const defaultPageSize = 500

func (o ListOptions) values() url.Values {
	q := url.Values{}
	if o.App != "" {
		q.Set("app", o.App)
	}
	if o.Node != "" {
		q.Set("node", o.Node)
	}
	if len(o.Labels) > 0 {
		parts := make([]string, 0, len(o.Labels))
		for k, v := range o.Labels {
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		q.Set("labels", strings.Join(parts, ","))
	}
	return q
}

// List returns the objects of a kind and the revision to watch from.
func (c *Client) List(ctx context.Context, kind api.Kind, opts ListOptions) ([]api.Object, int64, error) {
	q := opts.values()
	size := opts.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	q.Set("limit", strconv.Itoa(size))
	var out []api.Object
	var rev int64
	for page := 0; ; page++ {
		var l wire.List
		if err := c.Do(ctx, http.MethodGet, "/api/v1/"+string(kind)+"?"+q.Encode(), nil, &l); err != nil {
			return nil, 0, err
		}
		if page == 0 {
			// Every page reports the first page's revision: watch from it.
			rev = l.ResourceVersion
			out = make([]api.Object, 0, len(l.Items))
		}
		for _, raw := range l.Items {
			obj, err := api.DecodeLenient(kind, raw)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, obj)
		}
		if l.Continue == "" {
			return out, rev, nil
		}
		q.Set("continue", l.Continue)
	}
}

// TxnOp is one step of a transaction (apiserver/wire owns it).
type TxnOp = wire.TxnOp

// StatusOp is the step that writes obj's status (see wire.StatusOp).
func StatusOp(obj api.Object) TxnOp { return wire.StatusOp(obj) }

// BindOp is the step that binds pod k, still at resourceVersion rv, to
// node (see wire.BindOp).
func BindOp(k api.Key, rv int64, node string) TxnOp { return wire.BindOp(k, rv, node) }

// Bind binds one pod (see BindOp) and returns it as stored.
func (c *Client) Bind(ctx context.Context, k api.Key, rv int64, node string) (*api.Pod, error) {
	out, err := c.Txn(ctx, []TxnOp{BindOp(k, rv, node)})
	if err != nil {
		return nil, err
	}
	if len(out) != 1 {
		return nil, fmt.Errorf("bind %s: the server answered %d objects", k, len(out))
	}
	p, ok := out[0].(*api.Pod)
	if !ok {
		return nil, fmt.Errorf("bind %s: the server answered a %T", k, out[0])
	}
	return p, nil
}

// Txn applies every step or none.
func (c *Client) Txn(ctx context.Context, ops []TxnOp) ([]api.Object, error) {
	var out wire.TxnResponse
	if err := c.Do(ctx, http.MethodPost, wire.TxnPath, wire.TxnRequest{Ops: ops}, &out); err != nil {
		return nil, err
	}
	return out.Objects, nil
}

// TxnRevisions is Txn for a caller that needs only the resourceVersion
// each step wrote, not the objects (the server leaves them out).
func (c *Client) TxnRevisions(ctx context.Context, ops []TxnOp) ([]int64, error) {
	var out wire.TxnRevisionsResponse
	if err := c.Do(ctx, http.MethodPost, wire.TxnPath+"?objects=false", wire.TxnRequest{Ops: ops}, &out); err != nil {
		return nil, err
	}
	if len(out.ResourceVersions) != len(ops) {
		return nil, fmt.Errorf("transaction of %d steps answered %d resourceVersions", len(ops), len(out.ResourceVersions))
	}
	return out.ResourceVersions, nil
}

// Event is one watch event. Bookmarks carry only a revision.
type Event struct {
	Type     string // ADDED, MODIFIED, DELETED, BOOKMARK
	Object   api.Object
	Revision int64
}

// Watch is an open watch stream.
type Watch struct {
	kind api.Kind
	body io.ReadCloser
	r    *bufio.Reader
	line []byte // the current line when it spans the reader's buffer
}

// Watch opens a stream of changes to kind after revision since.
func (c *Client) Watch(ctx context.Context, kind api.Kind, opts ListOptions, since int64) (*Watch, error) {
	q := opts.values()
	q.Set("watch", "true")
	q.Set("since", strconv.FormatInt(since, 10))
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/"+string(kind)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	return &Watch{kind: kind, body: resp.Body, r: newLineReader(resp.Body)}, nil
}

func newLineReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }

// readLine returns the next non-blank line of the stream, without its
// newline; it is valid until the next call. A stream that ends inside a
// line is io.ErrUnexpectedEOF.
func (w *Watch) readLine() ([]byte, error) {
	for {
		b, err := w.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			w.line = append(w.line[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = w.r.ReadSlice('\n')
				w.line = append(w.line, b...)
			}
			b = w.line
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(bytes.TrimSpace(b)) != 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b = bytes.TrimSpace(b); len(b) != 0 {
			return b, nil
		}
	}
}

// Next returns the next event. A server-side end of the watch (too slow,
// compacted) comes back as a *StatusError; a closed stream as io.EOF.
func (w *Watch) Next() (Event, error) {
	line, err := w.readLine()
	if err != nil {
		return Event{}, err
	}
	e, err := wire.DecodeWatchLine(line)
	if err != nil {
		return Event{}, err
	}
	switch e.Type {
	case wire.EventError:
		st, err := wire.ErrorStatus(e.Object)
		if err != nil {
			return Event{}, err
		}
		return Event{}, st
	case wire.EventBookmark:
		rev, err := wire.BookmarkRevision(e.Object)
		if err != nil {
			return Event{}, err
		}
		return Event{Type: e.Type, Revision: rev}, nil
	}
	obj, err := api.DecodeLenient(w.kind, e.Object)
	if err != nil {
		return Event{}, err
	}
	return Event{Type: e.Type, Object: obj, Revision: obj.Meta().ResourceVersion}, nil
}

// Close ends the stream.
func (w *Watch) Close() error { return w.body.Close() }

// ServerVersion returns the version of the API server that answers.
func (c *Client) ServerVersion(ctx context.Context) (version.Info, error) {
	var v version.Info
	err := c.Do(ctx, http.MethodGet, "/version", nil, &v)
	return v, err
}
