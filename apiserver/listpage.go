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
	ListPage(ctx context.Context, kind api.Kind, opts store.ListOptions, after string, limit int, into []byte) (store.Page, error)
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
	chunk := limit
	if limit == 0 {
		chunk = wholeListChunk
	}
	page, err := pl.ListPage(ctx, kind, opts, tok.After, chunk, nil)
	if err != nil {
		return err
	}
	rev := page.Rev
	if cont != "" {
		rev = tok.Rev
	}
	if limit > 0 {
		var next string
		if page.Last != "" {
			next = encodeContinue(continueToken{Rev: rev, After: page.Last})
		}
		lw := startList(w, kind.Singular()+"List", rev, next)
		lw.items(page.Items)
		lw.end()
		return nil
	}
	// A list without a limit is read wholeListChunk objects at a time
	// and written as it is read, so that a list of every pod never holds
	// its tens of MB at once (the server's memory at 30,000 pods). Each
	// chunk is a read of its own, as the pages of a paged list are: an
	// object changed meanwhile shows as it is when its chunk is read, and
	// a watch from rev brings the changes, as after paged lists.
	lw := startList(w, kind.Singular()+"List", rev, "")
	var buf []byte // the chunks after the first are read into one buffer
	for {
		lw.items(page.Items)
		if page.Last == "" {
			break
		}
		if ctx.Err() != nil {
			return nil // the client went away: read no more
		}
		if buf == nil {
			n := 0
			for _, it := range page.Items {
				n += len(it)
			}
			buf = make([]byte, 0, n+n/4)
		}
		if page, err = pl.ListPage(ctx, kind, opts, page.Last, wholeListChunk, buf); err != nil {
			// The status line is out: break the stream off, so the client
			// sees an error rather than a part of the list for the whole.
			s.opts.Logger.Warn("list cut short", "kind", kind, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	lw.end()
	return nil
}

// wholeListChunk is how many objects a list without a limit reads at a
// time (a variable: tests make it small).
var wholeListChunk = 1000

// listWriter writes a list's JSON as its items come: startList, items as
// often as needed, end.
type listWriter struct {
	bw *bufio.Writer
	n  int
}

// startList writes the status line and the list's head: its kind,
// resourceVersion and continue token (when next is set).
func startList(w http.ResponseWriter, kind string, rev int64, next string) *listWriter {
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
	return &listWriter{bw: bw}
}

// items writes objects' stored JSON as they are.
func (l *listWriter) items(items [][]byte) {
	for _, it := range items {
		if l.n > 0 {
			l.bw.WriteByte(',')
		}
		l.bw.Write(it)
		l.n++
	}
}

// end closes the list and flushes it.
func (l *listWriter) end() {
	l.bw.WriteString("]}\n")
	_ = l.bw.Flush()
}
