package client

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestWatchReadsLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // spans the reader's buffer
	pod := func(name, label string) string {
		return `{"kind":"Pod","metadata":{"name":"` + name + `","app":"shop","resourceVersion":5,"labels":{"l":"` + label + `"}},"spec":{"containers":[{"name":"a","image":"x"}]}}`
	}
	stream := `{"type":"ADDED","object":` + pod("a", "") + "}\n" +
		"\n" +
		`{"type":"MODIFIED","object":` + pod("b", long) + "}\n" +
		// Another spelling of the same JSON takes the slow path.
		`{ "object": ` + pod("c", "") + `, "type": "DELETED" }` + "\r\n" +
		`{"type":"BOOKMARK","object":{"kind":"Bookmark","metadata":{"resourceVersion":9}}}` + "\n" +
		`{"type":"ADDED","object":` + pod("d", "")
	w := &Watch{kind: api.KindPod, body: io.NopCloser(nil), r: newLineReader(strings.NewReader(stream))}
	for _, want := range []struct{ typ, name string }{{"ADDED", "a"}, {"MODIFIED", "b"}, {"DELETED", "c"}} {
		e, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != want.typ || e.Object.Meta().Name != want.name || e.Revision != 5 {
			t.Fatalf("event %+v, want %s %s", e, want.typ, want.name)
		}
		if want.name == "b" && e.Object.Meta().Labels["l"] != long {
			t.Fatal("the long line came back cut")
		}
	}
	if e, err := w.Next(); err != nil || e.Type != "BOOKMARK" || e.Revision != 9 {
		t.Fatalf("bookmark %+v %v", e, err)
	}
	if _, err := w.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a stream cut inside a line: %v", err)
	}
	w = &Watch{kind: api.KindPod, body: io.NopCloser(nil), r: newLineReader(strings.NewReader(`{"type":"ADDED","object":` + pod("a", "") + "}\n"))}
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); err != io.EOF {
		t.Fatalf("a clean end: %v", err)
	}
	// Data after the object is refused, not dropped.
	w = &Watch{kind: api.KindPod, body: io.NopCloser(nil), r: newLineReader(strings.NewReader(`{"type":"ADDED","object":` + pod("a", "") + `,"more":1}` + "\n"))}
	if _, err := w.Next(); err == nil {
		t.Fatal("a line with data after the object was accepted")
	}
}
