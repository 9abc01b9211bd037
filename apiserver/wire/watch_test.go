package apiserver

import (
	"bytes"
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
		buf, err := writeWatchEvent(&out, nil, "MODIFIED", obj)
		if err != nil {
			t.Fatal(err)
		}
		if want := appendWatchEvent(nil, "MODIFIED", obj); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("size %d: wrote %.80q..., want %.80q...", size, out.Bytes(), want)
		}
		if size > inlineObject && cap(buf) > 1024 {
			t.Fatalf("size %d: the line buffer grew to %d bytes: the object was copied", size, cap(buf))
		}
	}
	if _, err := writeWatchEvent(failingWriter{}, nil, "ADDED", bytes.Repeat([]byte("x"), inlineObject+1)); err == nil {
		t.Fatal("a failed write was not reported")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }
