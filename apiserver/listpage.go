package apiserver

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
)

// pageLister is a store that reads a list a page at a time, as stored
// JSON (store.Bolt). A store without it answers lists whole.
type pageLister interface {
	ListPage(ctx context.Context, kind api.Kind, opts store.ListOptions, after string, limit int) (store.Page, error)
}

// compactedRevisioner tells the oldest revision a watch may start from.
type compactedRevisioner interface {
	CompactedRevision() int64
}

// maxListLimit bounds ?limit=.
const maxListLimit = 10_000

// continueToken is what a continue token carries, as Kubernetes' does:
// the revision of the list's first page, which every page reports (a
// client watches from it), and the key the next page starts after.
type continueToken struct {
	Rev   int64  `json:"rev"`
	After string `json:"after"`
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeContinue parses a continue token from a client.
func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	if len(s) > 1024 {
		return t, badRequest("continue token too long: pass back the token of the previous page")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(raw, &t) != nil || t.Rev < 0 || t.After == "" {
		return continueToken{}, badRequest("continue token is not one this server gave: list again without it")
	}
	return t, nil
}

// parseLimit reads ?limit= (0: no limit).
func parseLimit(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxListLimit {
		return 0, badRequest(fmt.Sprintf("limit %s: want a number from 0 to %d", strconv.QuoteToASCII(truncate(v, 32)), maxListLimit))
	}
	return n, nil
}

// listPage answers a list from a pageLister: at most limit objects after
// the continue token's key, the stored JSON written as it is (no decode
// and encode per object), with a token for the next page while more may
// follow. Pages after the first are read when asked for, not at the first
// page's revision (bbolt keeps no old versions): every page reports the
// first page's revision, and a client that watches from it sees every
// change made since, so an informer converges; once that revision is
// compacted the token is refused with 410 Expired, as a watch from it
// would be.
func (s *Server) listPage(ctx context.Context, w http.ResponseWriter, pl pageLister, kind api.Kind, opts store.ListOptions, limit int, cont string) error {
	var tok continueToken
	if cont != "" {
		var err error
		if tok, err = decodeContinue(cont); err != nil {
			return err
		}
		if opts.App != "" && !kind.ClusterScoped() && !strings.HasPrefix(tok.After, opts.App+"/") {
			return badRequest("continue token is for another list: pass the same app, labels and node as for the first page")
		}
		if c, ok := s.store.(compactedRevisioner); ok && tok.Rev < c.CompactedRevision() {
			return fmt.Errorf("continue token from revision %d: %w", tok.Rev, store.ErrCompacted)
		}
	}
	page, err := pl.ListPage(ctx, kind, opts, tok.After, limit)
	if err != nil {
		return err
	}
	rev := page.Rev
	if cont != "" {
		rev = tok.Rev
	}
	var next string
	if page.Last != "" {
		next = encodeContinue(continueToken{Rev: rev, After: page.Last})
	}
	writeList(w, kind.Singular()+"List", rev, next, page.Items)
	return nil
}

// writeList writes a wire.List from stored JSON items, streaming them
// through a buffer instead of building the body.
func writeList(w http.ResponseWriter, kind string, rev int64, next string, items [][]byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(`{"kind":`)
	bw.WriteString(strconv.Quote(kind))
	bw.WriteString(`,"resourceVersion":`)
	bw.WriteString(strconv.FormatInt(rev, 10))
	if next != "" {
		bw.WriteString(`,"continue":"`)
		bw.WriteString(next) // base64url: nothing to escape
		bw.WriteByte('"')
	}
	bw.WriteString(`,"items":[`)
	for i, it := range items {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(it)
	}
	bw.WriteString("]}\n")
	_ = bw.Flush()
}
