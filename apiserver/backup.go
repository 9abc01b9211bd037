package apiserver

import (
	"errors"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/backup"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// handleBackup streams a backup (apiserver/backup's tar format, not
// encrypted: the client encrypts it) of the store and the data directory:
// the cluster CA and keys, the tokens, admin.yaml. Admins only.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.store.(store.Snapshotter)
	if !ok {
		writeError(w, errorf(http.StatusNotImplemented, wire.ReasonBadRequest, errors.New("this server's store cannot make a backup through the API")))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	m, err := backup.Write(r.Context(), w, backup.Source{
		DataDir: s.opts.DataDir, Store: snap.SnapshotKind(), Snapshot: snap.Snapshot, CAHash: s.pki.CAHash(), Now: s.opts.Now(),
	})
	if err != nil {
		s.opts.Logger.Error("backup failed", "err", err)
		// Cut the stream, so the client sees a failed backup rather
		// than a short one.
		panic(http.ErrAbortHandler)
	}
	s.opts.Logger.Info("backup sent", "revision", m.Revision, "files", len(m.Files))
}
