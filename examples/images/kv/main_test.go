package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPutGetSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.log")
	st, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(st, "v1")
	for _, kv := range [][2]string{{"a", "1"}, {"b", "two\nlines"}, {"a", "3"}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/kv/"+kv[0], strings.NewReader(kv[1])))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("PUT %s = %d %s", kv[0], rec.Code, rec.Body)
		}
	}
	st.close()
	// A crash in the middle of a write leaves a torn line: dropped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"k":"c","v":"hal`)
	f.Close()

	st, err = open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	h = newHandler(st, "v2")
	for key, want := range map[string]string{"a": "3", "b": "two\nlines"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/kv/"+key, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != want || rec.Header().Get("X-KV-Version") != "v2" {
			t.Fatalf("GET %s = %d %q (version %q), want %q", key, rec.Code, rec.Body, rec.Header().Get("X-KV-Version"), want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/kv/c", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET of a torn write = %d, want 404", rec.Code)
	}
	// The next write starts on a line of its own.
	if err := st.put("d", "4"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasSuffix(b, []byte("\"}\n"+`{"k":"d","v":"4"}`+"\n")) {
		t.Fatalf("log after the torn tail: %q", b)
	}
}

func TestValueTooLarge(t *testing.T) {
	st, err := open(filepath.Join(t.TempDir(), "kv.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	rec := httptest.NewRecorder()
	newHandler(st, "").ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/kv/big", bytes.NewReader(make([]byte, maxValue+1))))
	if rec.Code != http.StatusRequestEntityTooLarge || st.len() != 0 {
		t.Fatalf("PUT of %d bytes = %d, %d keys", maxValue+1, rec.Code, st.len())
	}
}

// FuzzReplay: any file replays without error to the records of its good
// prefix, and good is a prefix length.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(`{"k":"a","v":"1"}` + "\n" + `{"k":"b"`))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"k":1}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		data, good, err := replay(bytes.NewReader(b))
		if err != nil || good < 0 || good > int64(len(b)) {
			t.Fatalf("replay = %v, %d, %v", data, good, err)
		}
		again, good2, _ := replay(bytes.NewReader(b[:good]))
		if good2 != good || len(again) != len(data) {
			t.Fatalf("the good prefix replays to %d keys / %d bytes, not %d / %d", len(again), good2, len(data), good)
		}
	})
}

// TestCompact: the client of POST /compact against a real HTTP server; the
// log keeps one record per key, the values survive a reopen, and writes
// after the compaction land in the new file.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, logName)
	st, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := st.put("counter", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.put("name", "kv"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(st, "v1"))
	defer srv.Close()
	msg, err := requestCompaction(srv.URL)
	if err != nil || !strings.HasPrefix(msg, "compacted 2 keys") {
		t.Fatalf("compact: %q, %v", msg, err)
	}
	if err := st.put("after", "yes"); err != nil {
		t.Fatal(err)
	}
	st.close()
	b, _ := os.ReadFile(path)
	if want := `{"k":"counter","v":"99"}` + "\n" + `{"k":"name","v":"kv"}` + "\n" + `{"k":"after","v":"yes"}` + "\n"; string(b) != want {
		t.Fatalf("log after compaction:\n%s\nwant\n%s", b, want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, logName+".compact-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	st, err = open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	for key, want := range map[string]string{"counter": "99", "name": "kv", "after": "yes"} {
		if v, _ := st.get(key); v != want {
			t.Errorf("%s = %q after reopen, want %q", key, v, want)
		}
	}
	srv.Close()
	if _, err := requestCompaction(srv.URL); err == nil {
		t.Error("compaction against a closed server succeeded")
	}
}
