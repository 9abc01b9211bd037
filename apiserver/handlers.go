package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// maxSegment bounds one path segment; names are at most 253 characters.
const maxSegment = 253

// maxTxnOps bounds the steps of one transaction.
const maxTxnOps = 1000

// statusWriter records the response code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (exec hijacks it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// FlushError is Flush that says when the client is gone (a watch ends on
// it); http.ResponseController prefers it.
func (w *statusWriter) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// parsePath splits /api/v1/... into unescaped segments, refusing anything
// that is not a plain name: empty segments, "." and "..", an escaped "/",
// NUL and other control bytes, over-long segments.
func parsePath(r *http.Request) ([]string, error) {
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return nil, errorf(http.StatusNotFound, wire.ReasonNotFound, fmt.Errorf("no such path %s: the API lives under /api/v1/", strconv.QuoteToASCII(truncate(p, 64))))
	}
	parts := strings.Split(rest, "/")
	for i, seg := range parts {
		if len(seg) > 3*maxSegment {
			return nil, badRequest(fmt.Sprintf("path segment %d is %d bytes long, more than %d", i+1, len(seg), maxSegment))
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("path segment %d: %v", i+1, err))
		}
		if u == "" || u == "." || u == ".." || len(u) > maxSegment || strings.ContainsFunc(u, func(r rune) bool { return r == '/' || r < 0x20 || r == 0x7f }) {
			return nil, badRequest(fmt.Sprintf("path segment %d %s is not a name: want lowercase letters, digits and '-'", i+1, strconv.QuoteToASCII(truncate(u, 64))))
		}
		parts[i] = u
	}
	return parts, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// route is a parsed API request.
type route struct {
	kind        api.Kind
	key         api.Key // set when the path names an object
	named       bool
	subresource string
	txn         bool
	batch       bool
}

// kindNames lists the kinds the API serves, for the unknown-kind error.
var kindNames = func() string {
	names := make([]string, len(api.Kinds))
	for i, k := range api.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}()

func parseRoute(parts []string) (route, error) {
	if len(parts) == 1 && parts[0] == "txn" {
		return route{txn: true}, nil
	}
	if len(parts) == 1 && parts[0] == "batch" {
		return route{batch: true}, nil
	}
	k := api.Kind(parts[0])
	if !k.Valid() {
		return route{}, fmt.Errorf("%w: %s (kinds: %s)", api.ErrUnknownKind, strconv.QuoteToASCII(truncate(parts[0], 64)), kindNames)
	}
	rt := route{kind: k}
	rest := parts[1:]
	if len(rest) == 0 {
		return rt, nil
	}
	if n := len(rest); rest[n-1] == "status" && (k.ClusterScoped() && n == 2 || !k.ClusterScoped() && n == 3) ||
		k == api.KindPod && n == 3 && (rest[2] == "log" || rest[2] == "exec") ||
		k == api.KindSecret && n == 3 && rest[2] == api.SubresourceValues {
		rt.subresource = rest[n-1]
		rest = rest[:n-1]
	}
	switch {
	case k.ClusterScoped() && len(rest) == 1:
		rt.key = api.Key{Kind: k, Name: rest[0]}
	case !k.ClusterScoped() && len(rest) == 2:
		rt.key = api.Key{Kind: k, App: rest[0], Name: rest[1]}
	default:
		return route{}, errorf(http.StatusNotFound, wire.ReasonNotFound, fmt.Errorf("no such path: %s objects are at /api/v1/%s/%s", k, k, map[bool]string{true: "{name}", false: "{app}/{name}"}[k.ClusterScoped()]))
	}
	rt.named = true
	if err := rt.key.Validate(); err != nil {
		return route{}, err
	}
	return rt, nil
}

func (s *Server) serveAPI(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	verb, kind := strings.ToLower(r.Method), "unknown"
	defer func() {
		code := w.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(verb, kind, strconv.Itoa(code)).Inc()
		if verb != "watch" && verb != "log" && verb != "exec" {
			s.metrics.latency.WithLabelValues(verb, kind).Observe(time.Since(start).Seconds())
		}
	}()
	role, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	parts, err := parsePath(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rt, err := parseRoute(parts)
	if err != nil {
		writeError(w, err)
		return
	}
	kind = string(rt.kind)
	switch {
	case rt.txn:
		kind = "txn"
	case rt.batch:
		kind = "batch"
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	ctx, err := s.fenced(r)
	if err != nil {
		writeError(w, err)
		return
	}
	switch {
	case rt.txn && r.Method == http.MethodPost:
		verb = "txn"
		err = s.handleTxn(ctx, w, r, role)
	case rt.batch && r.Method == http.MethodPost:
		verb = "batch"
		err = s.handleBatch(ctx, w, r, role)
	case !rt.named && r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		verb = "watch"
		err = s.handleWatch(ctx, w, r, rt, role)
	case !rt.named && r.Method == http.MethodGet:
		verb = "list"
		err = s.handleList(ctx, w, r, rt, role)
	case !rt.named && r.Method == http.MethodPost:
		verb = "create"
		err = s.handleCreate(ctx, w, r, rt, role)
	case rt.named && r.Method == http.MethodGet && rt.subresource == "":
		verb = "get"
		err = s.handleGet(ctx, w, rt, role)
	case rt.named && r.Method == http.MethodGet && rt.subresource == api.SubresourceValues:
		verb = "values"
		err = s.handleSecretValues(ctx, w, rt, role)
	case rt.named && r.Method == http.MethodGet && rt.subresource == "log":
		verb = "log"
		err = s.serveStream(ctx, r, rt, role, verb, func(ctx context.Context) error { return s.handlePodLog(ctx, w, r, rt, role) })
	case rt.named && r.Method == http.MethodPost && rt.subresource == "exec":
		verb = "exec"
		err = s.serveStream(ctx, r, rt, role, verb, func(ctx context.Context) error { return s.handlePodExec(ctx, w, r, rt, role) })
	case rt.named && r.Method == http.MethodPut && (rt.subresource == "" || rt.subresource == "status"):
		verb = "update"
		err = s.handleUpdate(ctx, w, r, rt, role)
	case rt.named && r.Method == http.MethodDelete && rt.subresource == "":
		verb = "delete"
		err = s.handleDelete(ctx, w, r, rt, role)
	default:
		err = errorf(http.StatusMethodNotAllowed, wire.ReasonMethodNotAllowed, fmt.Errorf("%s is not allowed on %s", r.Method, r.URL.Path))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
		}
		writeError(w, err)
	}
}

// serveStream runs a log stream or an exec session (typ) under the
// caller's stream cap, with a context that ends when its token is revoked
// or expires.
func (s *Server) serveStream(ctx context.Context, r *http.Request, rt route, role, typ string, run func(context.Context) error) error {
	if err := s.authorize(ctx, role, request{verb: typ, kind: rt.kind, key: rt.key, subresource: typ}); err != nil {
		return err
	}
	ctx, release, err := s.streams.open(ctx, s.principal(r), typ)
	if err != nil {
		return err
	}
	defer release()
	return run(ctx)
}

func (s *Server) podNode(ctx context.Context) nodeLookup {
	return func(k api.Key) (string, error) {
		obj, err := s.store.Get(ctx, k)
		if err != nil {
			return "", err
		}
		switch o := obj.(type) {
		case *api.Pod:
			return o.Spec.NodeName, nil
		case *api.PersistentVolume:
			return o.Spec.NodeName, nil
		}
		return "", fmt.Errorf("%s is on no node", k)
	}
}

func (s *Server) authorize(ctx context.Context, role string, req request) error {
	if req.kind == api.KindSecret {
		if done, err := authorizeSecret(role, req, s.secretUsers(ctx)); done || err != nil {
			return err
		}
	}
	return authorize(role, req, s.podNode(ctx))
}

// parseLabels reads a label selector, ?labels=k=v[,k=v]: every pair must
// hold. A key or value no object may carry, or a key named twice, is
// refused: the selector could only answer an empty (or, with the last
// value winning, a wrong) list.
func parseLabels(s string) (map[string]string, error) {
	labels, err := api.ParseLabelSelector(s)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	return labels, nil
}

func (s *Server) handleList(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "list", kind: rt.kind}); err != nil {
		return err
	}
	q := r.URL.Query()
	labels, err := parseLabels(q.Get("labels"))
	if err != nil {
		return err
	}
	opts := store.ListOptions{App: q.Get("app"), Labels: labels, Node: q.Get("node")}
	if opts.App != "" && !api.IsDNSLabel(opts.App) {
		return badRequest(fmt.Sprintf("app %s is not a DNS label", strconv.QuoteToASCII(truncate(opts.App, 64))))
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	if pl, ok := s.store.(pageLister); ok {
		return s.listPage(ctx, w, pl, rt.kind, opts, limit, q.Get("continue"))
	}
	// A store without pages answers whole; a client finds no continue
	// token and stops (as Kubernetes allows a server to).
	objs, rev, err := s.store.List(ctx, rt.kind, opts)
	if err != nil {
		return err
	}
	out := wire.List{Kind: rt.kind.Singular() + "List", ResourceVersion: rev, Items: make([]json.RawMessage, 0, len(objs))}
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, b)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleGet(ctx context.Context, w http.ResponseWriter, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "get", kind: rt.kind, key: rt.key}); err != nil {
		return err
	}
	obj, err := s.store.Get(ctx, rt.key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, obj)
	return nil
}

func readObject(r *http.Request, k api.Kind) (api.Object, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("request body is empty: send the object as JSON")
	}
	return api.Decode(k, body)
}

func (s *Server) handleCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	// May this role create this kind at all? Asked before the body is read.
	if err := s.authorize(ctx, role, request{verb: "create", kind: rt.kind, key: api.Key{Kind: rt.kind}}); err != nil {
		return err
	}
	obj, err := readObject(r, rt.kind)
	if err != nil {
		return err
	}
	if err := s.admitCreate(ctx, role, obj); err != nil {
		return err
	}
	out, err := s.store.Create(ctx, obj)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// admitCreate readies obj, sent by role to be created, for the store:
// what the server sets is cleared, and obj must be valid and role allowed
// to create it.
func (s *Server) admitCreate(ctx context.Context, role string, obj api.Object) error {
	m := obj.Meta()
	m.ResourceVersion, m.UID, m.Generation = 0, "", 0
	m.CreatedAt = time.Time{}
	// The store checks the size of the object as it stores it.
	if err := api.ValidateFields(obj); err != nil {
		return err
	}
	k := api.KeyOf(obj)
	if err := s.authorize(ctx, role, request{verb: "create", kind: k.Kind, key: k}); err != nil {
		return err
	}
	if ev, ok := obj.(*api.Event); ok {
		if err := authorizeEvent(role, ev, s.podNode(ctx)); err != nil {
			return err
		}
		if err := s.limitEvent(ctx, role, ev); err != nil {
			return err
		}
	}
	if n, ok := obj.(*api.Node); ok {
		if err := authorizeNodeCreate(role, n); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) handleUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "update", kind: rt.kind, key: rt.key, subresource: rt.subresource}); err != nil {
		return err
	}
	in, err := readObject(r, rt.kind)
	if err != nil {
		return err
	}
	if k := api.KeyOf(in); k != rt.key {
		return badRequest(fmt.Sprintf("the body names %s but the path names %s", k, rt.key))
	}
	if ev, ok := in.(*api.Event); ok {
		if err := authorizeEvent(role, ev, s.podNode(ctx)); err != nil {
			return err
		}
	}
	check := nodeUpdateCheck(role, in, rt.subresource == "status")
	if _, isEvent := in.(*api.Event); isEvent && strings.HasPrefix(role, RoleNodePrefix) {
		// Nor may a node take over an event about something else.
		cur, err := s.store.Get(ctx, rt.key)
		if err != nil {
			return err
		}
		ev := cur.(*api.Event)
		if err := authorizeEvent(role, ev, s.podNode(ctx)); err != nil {
			return err
		}
		check = sameEvent(ev.Spec.Object)
	}
	out, err := s.store.Txn(ctx, []store.Op{updateOp(in, rt.subresource == "status", check)})
	if err != nil {
		return unwrapTxn(err)
	}
	writeJSON(w, http.StatusOK, out[0])
	return nil
}

// unwrapTxn takes the store's step wrapper off the error of a one-step
// transaction, so a PUT's error reads as before and names no step.
func unwrapTxn(err error) error {
	var te *store.TxnError
	if errors.As(err, &te) {
		return te.Err
	}
	return err
}

func (s *Server) handleDelete(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "delete", kind: rt.kind, key: rt.key}); err != nil {
		return err
	}
	q := r.URL.Query()
	var rv int64
	if v := q.Get("resourceVersion"); v != "" {
		var err error
		if rv, err = strconv.ParseInt(v, 10, 64); err != nil || rv < 0 {
			return badRequest(fmt.Sprintf("resourceVersion %q is not a revision", v))
		}
	}
	force := q.Get("force") == "true"
	isNode := strings.HasPrefix(role, RoleNodePrefix)
	if rt.kind == api.KindVolume {
		return s.deleteVolume(ctx, w, rt.key, rv, force, role)
	}
	if rt.kind == api.KindPod && isNode {
		// Delete the version whose binding is checked here: the pod
		// authorize saw may since have been made again, under its name, on
		// another node.
		cur, err := s.store.Get(ctx, rt.key)
		if err != nil {
			return err
		}
		pod := cur.(*api.Pod)
		if node := strings.TrimPrefix(role, RoleNodePrefix); pod.Spec.NodeName != node {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not delete pod %s: it is now bound to %q", node, rt.key, pod.Spec.NodeName))
		}
		if err := deleteConflict(rt.key, rv, pod); err != nil {
			return err
		}
		rv = pod.Metadata.ResourceVersion
	}
	if rt.kind == api.KindPod && !force && !isNode {
		// A pod on a node is deleted gracefully: mark it, and its agent
		// stops the containers and then removes the object.
		cur, err := s.store.Get(ctx, rt.key)
		if err != nil {
			return err
		}
		pod := cur.(*api.Pod)
		if err := deleteConflict(rt.key, rv, pod); err != nil {
			return err
		}
		if pod.Spec.NodeName != "" {
			out, err := s.markDeletion(ctx, pod)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusAccepted, out)
			return nil
		}
		rv = pod.Metadata.ResourceVersion
	}
	out, err := s.store.Delete(ctx, rt.key, rv)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteConflict refuses a delete at resourceVersion rv (0: any) of cur,
// stored at another.
func deleteConflict(k api.Key, rv int64, cur api.Object) error {
	if now := cur.Meta().ResourceVersion; rv != 0 && rv != now {
		return fmt.Errorf("%s at resourceVersion %d, now %d: %w", k, rv, now, store.ErrConflict)
	}
	return nil
}

// markDeletion begins the graceful delete of obj (a pod its agent stops,
// a volume whose data its agent removes): it sets
// metadata.deletionRequestedAt, once, and returns obj as stored.
func (s *Server) markDeletion(ctx context.Context, obj api.Object) (api.Object, error) {
	if api.Terminating(obj) {
		return obj, nil
	}
	now := s.opts.Now().UTC()
	obj.Meta().DeletionRequestedAt = &now
	return s.store.Update(ctx, obj)
}

func (s *Server) handleTxn(ctx context.Context, w http.ResponseWriter, r *http.Request, role string) error {
	if role != RoleAdmin {
		return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role %s may not run transactions", role))
	}
	objects, err := txnWantsObjects(r)
	if err != nil {
		return err
	}
	req, err := wire.DecodeTxnRequest(r.Body)
	if err != nil {
		return err
	}
	if len(req.Ops) == 0 || len(req.Ops) > maxTxnOps {
		return badRequest(fmt.Sprintf("a transaction has 1 to %d steps, this one %d", maxTxnOps, len(req.Ops)))
	}
	ops := make([]store.Op, len(req.Ops))
	for i, op := range req.Ops {
		if ops[i], err = s.txnOp(op); err != nil {
			return &wire.StepError{Index: i, Err: err}
		}
	}
	out, err := s.store.Txn(ctx, ops)
	if err != nil {
		return err
	}
	if !objects {
		writeJSON(w, http.StatusOK, txnRevisions(out))
		return nil
	}
	writeJSON(w, http.StatusOK, wire.TxnResponse{Objects: out})
	return nil
}

// txnOp turns one transaction step into the store's.
func (s *Server) txnOp(op wire.TxnOp) (store.Op, error) {
	switch op.Op {
	case wire.OpCreate, wire.OpUpdate, wire.OpStatus:
		if op.Object == nil {
			return store.Op{}, badRequest(fmt.Sprintf("op %q needs an object", op.Op))
		}
	}
	switch op.Op {
	case wire.OpCreate:
		obj := op.Object
		m := obj.Meta()
		m.ResourceVersion, m.UID, m.Generation = 0, "", 0
		if err := api.Validate(obj); err != nil {
			return store.Op{}, err
		}
		return store.Op{Type: store.OpCreate, Object: obj}, nil
	case wire.OpUpdate:
		if err := api.Validate(op.Object); err != nil {
			return store.Op{}, err
		}
		return updateOp(op.Object, false, nil), nil
	case wire.OpStatus:
		// Only the status is taken: the stored object is validated with it.
		return updateOp(op.Object, true, nil), nil
	case wire.OpDelete:
		k, err := api.ParseKey(op.Key)
		if err != nil {
			return store.Op{}, err
		}
		return store.Op{Type: store.OpDelete, Key: k, ResourceVersion: op.ResourceVersion}, nil
	case wire.OpBind:
		return s.bindOp(op)
	}
	return store.Op{}, badRequest(fmt.Sprintf("op %q: want create, update, status, delete or bind", op.Op))
}
