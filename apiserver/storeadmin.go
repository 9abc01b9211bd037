package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/atomicfile"
)

// Store backends a migration names.
const (
	backendBolt = "bbolt"
	backendEtcd = "etcd"
)

// adminStore is what the store administration needs of the store: both
// backends are all three.
type adminStore interface {
	store.ReadOnlySwitch
	store.Dumper
	store.Snapshotter
}

func (s *Server) adminStore() (adminStore, error) {
	st, ok := s.store.(adminStore)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, wire.ReasonBadRequest, errors.New("this server's store cannot be migrated or made read-only"))
	}
	return st, nil
}

// writable fails with the store's read-only error while it refuses
// writes: for the tables kept beside the store (tokens), whose changes
// a migration would otherwise lose.
func (s *Server) writable(ctx context.Context) error {
	st, ok := s.store.(store.ReadOnlySwitch)
	if !ok {
		return nil
	}
	reason, err := st.ReadOnly(ctx)
	if err != nil {
		return err
	}
	if reason != "" {
		return fmt.Errorf("%w: %s", store.ErrReadOnly, reason)
	}
	return nil
}

// handleMigrate copies the store into a new store of the other backend:
// the store is made read-only (for every server sharing it), dumped at its
// last revision and loaded into the target, with the token table; it stays
// read-only afterwards, saying where the cluster went, so that a server
// started on it by mistake cannot write what the new store would never
// see. On an error it is made writable again and the target emptied.
func (s *Server) handleMigrate(w http.ResponseWriter, r *http.Request) {
	var req wire.MigrateRequest
	if err := decodeRequest(w, r, &req, "migrate request"); err != nil {
		writeError(w, err)
		return
	}
	src, err := s.adminStore()
	if err != nil {
		writeError(w, err)
		return
	}
	from := src.SnapshotKind()
	if req.To == from {
		writeError(w, badRequest(fmt.Sprintf("the store is %s already", from)))
		return
	}
	ctx := r.Context()
	if reason, err := src.ReadOnly(ctx); err != nil {
		writeError(w, err)
		return
	} else if reason != "" {
		writeError(w, errorf(http.StatusConflict, wire.ReasonReadOnly, fmt.Errorf("the store is read-only already: %s (if a migration was cut off, its copy is incomplete: run capstan store read-write, then migrate again)", reason)))
		return
	}
	// Reach the target before the cluster goes read-only: a wrong
	// address or file costs nothing.
	var load func() (store.Loaded, error)
	var restart string
	switch req.To {
	case backendEtcd:
		t := req.Etcd
		if t == nil || len(t.Endpoints) == 0 {
			writeError(w, badRequest("migrate to etcd: give the members' client URLs (--etcd-endpoints)"))
			return
		}
		dst, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: t.Endpoints, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, Prefix: t.Prefix, Logger: s.opts.Logger})
		if err != nil {
			writeError(w, errorf(http.StatusBadGateway, wire.ReasonBadGateway, err))
			return
		}
		defer dst.Close()
		load = func() (store.Loaded, error) {
			// The token table is unchanged from here on: its saves
			// check the read-only switch.
			tokens, err := s.tokens.snapshot(ctx)
			if err != nil {
				return store.Loaded{}, err
			}
			return store.LoadEtcd(ctx, dst, src, map[string][]byte{tokensDocument: tokens})
		}
		restart = etcdFlags(t)
	case backendBolt:
		path := req.BboltPath
		if path == "" {
			path = filepath.Join(s.opts.DataDir, "capstan.db")
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			writeError(w, errorf(http.StatusConflict, wire.ReasonAlreadyExists, fmt.Errorf("migrate to bbolt: %s exists (the store before an earlier migration?): move it away first, or give another --bbolt-path", path)))
			return
		}
		load = func() (store.Loaded, error) {
			tokens, err := s.tokens.snapshot(ctx)
			if err != nil {
				return store.Loaded{}, err
			}
			l, err := store.LoadBolt(ctx, path, src)
			if err != nil {
				return l, err
			}
			if err := atomicfile.WriteFile(filepath.Join(s.opts.DataDir, "tokens.json"), tokens, 0o600); err != nil {
				os.Remove(path) // no half migration: the store without its tokens
				return l, fmt.Errorf("write the token table: %w", err)
			}
			return l, nil
		}
		restart = "--store bbolt"
		if path != filepath.Join(s.opts.DataDir, "capstan.db") {
			restart += fmt.Sprintf(" (with %s as DATA_DIR/capstan.db)", path)
		}
	default:
		writeError(w, badRequest(fmt.Sprintf("migrate to %q: want %s or %s", req.To, backendEtcd, backendBolt)))
		return
	}

	start := s.opts.Now().UTC().Format("2006-01-02 15:04:05 MST")
	if err := src.SetReadOnly(ctx, fmt.Sprintf("being migrated to %s since %s (capstan store migrate); writes resume once the servers run on the new store; if the migration was cut off (its server stopped before it answered), run capstan store read-write and migrate again", req.To, start)); err != nil {
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("store migration begun: writes refused", "from", from, "to", req.To)
	l, err := load()
	if err != nil {
		s.opts.Logger.Error("store migration failed: writes resume on this store", "to", req.To, "err", err)
		if rerr := src.SetReadOnly(context.WithoutCancel(ctx), ""); rerr != nil {
			err = fmt.Errorf("%w (and making the store writable again failed: %v; run capstan store read-write)", err, rerr)
		}
		writeError(w, fmt.Errorf("migrate to %s: %w", req.To, err))
		return
	}
	done := fmt.Sprintf("migrated to %s at revision %d on %s: start the servers with %s; to go back to this store instead, start them on it and run capstan store read-write",
		req.To, l.Revision, start, restart)
	if err := src.SetReadOnly(ctx, done); err != nil {
		writeError(w, fmt.Errorf("the copy is done, but recording it in the old store failed: %w", err))
		return
	}
	s.opts.Logger.Info("store migrated: this server refuses writes until it runs on the new store", "to", req.To, "revision", l.Revision, "objects", l.Objects, "allocations", l.Allocations)
	writeJSON(w, http.StatusOK, wire.MigrateResponse{From: from, To: req.To, Revision: l.Revision, Head: l.Head, Objects: l.Objects, Allocations: l.Allocations, Restart: restart})
}

// etcdFlags are capstan server's flags for the etcd store t.
func etcdFlags(t *wire.EtcdTarget) string {
	f := []string{"--store etcd", "--etcd-endpoints " + strings.Join(t.Endpoints, ",")}
	for _, kv := range [][2]string{{"--etcd-ca", t.CAFile}, {"--etcd-cert", t.CertFile}, {"--etcd-key", t.KeyFile}, {"--etcd-prefix", t.Prefix}} {
		if kv[0] == "--etcd-prefix" && kv[1] == "/capstan/" {
			continue // the default
		}
		if kv[1] != "" {
			f = append(f, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(f, " ")
}

func (s *Server) handleGetReadOnly(w http.ResponseWriter, r *http.Request) {
	src, err := s.adminStore()
	if err != nil {
		writeError(w, err)
		return
	}
	reason, err := src.ReadOnly(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	st := wire.ReadOnlyState{ReadOnly: reason != "", Reason: reason}
	if s.opts.Leader != nil {
		st.Election = true
		if st.Leader, err = s.opts.Leader(r.Context()); err != nil {
			writeError(w, fmt.Errorf("read the leader election: %w", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// handleSetReadOnly sets the switch: read-only (for maintenance, with a
// reason) or writable again (after a migration that is not followed).
func (s *Server) handleSetReadOnly(w http.ResponseWriter, r *http.Request) {
	var req wire.ReadOnlyState
	if err := decodeRequest(w, r, &req, "read-only request"); err != nil {
		writeError(w, err)
		return
	}
	src, err := s.adminStore()
	if err != nil {
		writeError(w, err)
		return
	}
	reason := ""
	if req.ReadOnly {
		if reason = strings.TrimSpace(req.Reason); reason == "" {
			reason = "set read-only by an admin (capstan store read-only)"
		}
	}
	if err := src.SetReadOnly(r.Context(), reason); err != nil {
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("store read-only switch set", "readOnly", req.ReadOnly, "reason", reason)
	writeJSON(w, http.StatusOK, wire.ReadOnlyState{ReadOnly: reason != "", Reason: reason})
}
