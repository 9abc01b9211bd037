package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestWriteWatchEvent: an event written in pieces (a large object, not
// copied into the line buffer) is the same line as one appended whole.
func TestWriteWatchEvent(t *testing.T) {
	for _, size := range []int{0, 10, inlineObject, inlineObject + 1, 3 << 20} {
		obj := []byte(`{"metadata":{"name":"` + strings.Repeat("x", size) + `"}}`)
		var out bytes.Buffer
		buf, err := WriteWatchEvent(&out, nil, "MODIFIED", obj)
		if err != nil {
			t.Fatal(err)
		}
		if want := AppendWatchEvent(nil, "MODIFIED", obj); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("size %d: wrote %.80q..., want %.80q...", size, out.Bytes(), want)
		}
		if size > inlineObject && cap(buf) > 1024 {
			t.Fatalf("size %d: the line buffer grew to %d bytes: the object was copied", size, cap(buf))
		}
	}
	if _, err := WriteWatchEvent(failingWriter{}, nil, "ADDED", bytes.Repeat([]byte("x"), inlineObject+1)); err == nil {
		t.Fatal("a failed write was not reported")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }

// FuzzSplitWatchLine: whenever the fast path takes a line whose object is
// valid JSON, encoding/json reads the same type and object from it.
func FuzzSplitWatchLine(f *testing.F) {
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Pod"}}`))
	f.Add([]byte(`{"type":"ADDED","object":{"a":1},"b":{"c":2}}`))
	f.Add([]byte(`{"type":"ADDED","object":{}}`))
	f.Add([]byte(`{"type":"","object":{}}`))
	f.Add([]byte(`{"type":"A\"","object":{"x":"}"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		typ, obj, ok := splitWatchLine(line)
		if !ok || !json.Valid(obj) {
			return
		}
		var raw struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", line, err)
		}
		var a, b bytes.Buffer
		_ = json.Compact(&a, obj)
		_ = json.Compact(&b, raw.Object)
		if raw.Type != typ || a.String() != b.String() {
			t.Fatalf("%q: fast path %q %s, encoding/json %q %s", line, typ, obj, raw.Type, raw.Object)
		}
	})
}

// TestWatchLineRoundTrip: what the encoder writes, the decoder reads back,
// for objects, bookmarks and errors.
func TestWatchLineRoundTrip(t *testing.T) {
	step := 2
	for _, tc := range []struct {
		typ string
		obj []byte
	}{
		{EventAdded, []byte(`{"kind":"Pod","metadata":{"name":"a"}}`)},
		{EventBookmark, BookmarkObject(42)},
		{EventError, ErrorObject(Status{Code: 409, Reason: ReasonConflict, Message: "a <b>", Step: &step})},
	} {
		line := AppendWatchEvent(nil, tc.typ, tc.obj)
		e, err := DecodeWatchLine(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil || e.Type != tc.typ || !bytes.Equal(e.Object, tc.obj) {
			t.Fatalf("%s: decoded %q %s, %v", tc.typ, e.Type, e.Object, err)
		}
		var via WatchEvent
		if err := json.Unmarshal(line, &via); err != nil || via.Type != tc.typ {
			t.Fatalf("%s: encoding/json reads %+v, %v", tc.typ, via, err)
		}
	}
	if rev, err := BookmarkRevision(BookmarkObject(42)); err != nil || rev != 42 {
		t.Fatalf("bookmark revision %d, %v", rev, err)
	}
	st, err := ErrorStatus(ErrorObject(Status{Code: 409, Reason: ReasonConflict, Step: &step}))
	if i, ok := st.FailedStep(); err != nil || st.Reason != ReasonConflict || !ok || i != 2 {
		t.Fatalf("error status %+v, %v", st, err)
	}
}
