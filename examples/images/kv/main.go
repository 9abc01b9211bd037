// Command kv is Capstan's example stateful program: a key-value store that
// keeps every write in an append-only file in its persistent volume, each
// write synced to disk (fsync) before it is acknowledged, and replays the
// file when it starts.
//
//	PUT /kv/KEY    stores the request body (at most 1 MiB) under KEY: 204
//	GET /kv/KEY    answers the value, or 404
//	POST /compact  rewrites the file with only the current values
//	GET /healthz   ok once the file is replayed
//
// Environment: DATA_DIR (default /data), PORT (default 8080), VERSION
// (reported in the X-KV-Version header, so a rolled image can be told
// apart). It exits cleanly on SIGTERM or SIGINT.
//
// `kv compact URL` is the client of POST /compact, for a cron job: it
// exits 0 when the store compacted its file, 1 otherwise.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "compact" {
		msg, err := requestCompaction(os.Args[2])
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(msg)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	dir, port := os.Getenv("DATA_DIR"), os.Getenv("PORT")
	if dir == "" {
		dir = "/data"
	}
	if port == "" {
		port = "8080"
	}
	st, err := open(filepath.Join(dir, logName))
	if err != nil {
		log.Fatal(err)
	}
	defer st.close()
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("kv: %d keys from %s, listening on %s", st.len(), dir, ln.Addr())
	if err := serve(ctx, ln, newHandler(st, os.Getenv("VERSION"))); err != nil {
		log.Fatal(err)
	}
}

// record is one line of the log.
type record struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// logName is the log's file name in DATA_DIR.
const logName = "kv.log"

// store is the in-memory map and the log it was replayed from.
type store struct {
	mu   sync.Mutex
	f    *os.File
	data map[string]string
}

// open replays path (made when missing) and keeps it open for appends. A
// last line cut short by a crash (no newline, or not JSON) is dropped, as
// its write was never acknowledged.
func open(path string) (*store, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	data, good, err := replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	// Cut a torn tail so the next append starts on a line of its own.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &store{f: f, data: data}, nil
}

// replay reads records from r until the end or the first bad line, and
// returns the map and how many bytes of good lines there were.
func replay(r io.Reader) (map[string]string, int64, error) {
	data := map[string]string{}
	br := bufio.NewReader(r)
	var good int64
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return data, good, nil // a line without newline is torn
		}
		if err != nil {
			return nil, 0, err
		}
		var rec record
		if json.Unmarshal(line, &rec) != nil {
			return data, good, nil
		}
		data[rec.Key] = rec.Value
		good += int64(len(line))
	}
}

// put appends the record and syncs it before it changes the map.
func (s *store) put(key, value string) error {
	b, _ := json.Marshal(record{Key: key, Value: value})
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.data[key] = value
	return nil
}

func (s *store) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

func (s *store) close() error { return s.f.Close() }

// compact rewrites the log with one record per key: a new file written and
// synced beside the log, renamed over it, the directory synced, then
// appends go to the new file. A crash at any point leaves either the old
// log or the new one, each complete. It returns the sizes before and
// after.
func (s *store) compact() (before, after int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.f.Name()
	if fi, err := s.f.Stat(); err == nil {
		before = fi.Size()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), logName+".compact-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	w := bufio.NewWriter(tmp)
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(record{Key: k, Value: s.data[k]})
		w.Write(append(b, '\n'))
	}
	if err := errors.Join(w.Flush(), tmp.Sync()); err != nil {
		tmp.Close()
		return 0, 0, err
	}
	if fi, err := tmp.Stat(); err == nil {
		after = fi.Size()
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tmp.Close()
		return 0, 0, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	s.f.Close()
	s.f = tmp // positioned at its end: appends follow the records
	return before, after, nil
}

// requestCompaction asks the store at base (http://HOST:PORT) to compact.
func requestCompaction(base string) (string, error) {
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Post(strings.TrimRight(base, "/")+"/compact", "", nil)
	if err != nil {
		return "", fmt.Errorf("compact: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("compact: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// maxValue bounds a value.
const maxValue = 1 << 20

func newHandler(st *store, version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-KV-Version", version)
		v, ok := st.get(r.PathValue("key"))
		if !ok {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("POST /compact", func(w http.ResponseWriter, _ *http.Request) {
		before, after, err := st.compact()
		if err != nil {
			http.Error(w, "compact: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "compacted %d keys: %d -> %d bytes\n", st.len(), before, after)
	})
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-KV-Version", version)
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValue))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := st.put(r.PathValue("key"), string(b)); err != nil {
			http.Error(w, "write: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// serve runs an HTTP server on ln until ctx ends, then shuts down within a
// second.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return err
}
