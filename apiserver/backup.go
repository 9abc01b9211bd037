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
	cw := &countingWriter{w: w}
	m, err := backup.Write(r.Context(), cw, backup.Source{
		DataDir: s.opts.DataDir, Store: snap.SnapshotKind(), Snapshot: snap.Snapshot, CAHash: s.pki.CAHash(), Now: s.opts.Now(),
	})
	if err != nil {
		s.opts.Logger.Error("backup failed", "err", err)
		if cw.n == 0 {
			// Nothing sent yet (the store copy or the data directory
			// failed): the client gets the reason, not a cut stream.
			writeError(w, errorf(http.StatusInternalServerError, wire.ReasonInternalError, err))
			return
		}
		// Cut the stream, so the client sees a failed backup rather
		// than a short one.
		panic(http.ErrAbortHandler)
	}
	s.opts.Logger.Info("backup sent", "revision", m.Revision, "files", len(m.Files))
}

// countingWriter is the response writer of a backup, counting what has
// been sent: until the first byte, a failure can still be answered with
// an error status. It sets the tar content type with the first byte.
type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && len(p) > 0 {
		c.w.Header().Set("Content-Type", "application/x-tar")
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
