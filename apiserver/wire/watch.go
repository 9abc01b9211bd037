package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Watch event types, as a watch line spells them.
const (
	EventAdded    = "ADDED"
	EventModified = "MODIFIED"
	EventDeleted  = "DELETED"
	// EventBookmark carries only a revision (BookmarkObject).
	EventBookmark = "BOOKMARK"
	// EventError ends a watch; its object is a Status.
	EventError = "ERROR"
)

// WatchEvent is one line of a watch stream: {"type":T,"object":{...}}.
type WatchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// AppendWatchEvent appends one watch line, {"type":...,"object":...} and a
// newline, as json.Encoder would write the WatchEvent but without
// re-scanning the object: the store's event JSON comes from json.Marshal,
// so it is already compact, valid and HTML-escaped, and an encoder would
// only copy it after checking it again (a watch of pods spent a third of
// its time there). typ is one of the Event constants: nothing to escape.
func AppendWatchEvent(dst []byte, typ string, obj []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","object":`...)
	if len(obj) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, obj...)
	}
	return append(dst, "}\n"...)
}

// inlineObject is the largest object WriteWatchEvent copies into its line
// buffer; a larger one is written from the caller's bytes, so a watcher
// whose client stopped reading does not pin a copy of its own.
const inlineObject = 64 << 10

// WriteWatchEvent writes one watch line to w, using buf for small events,
// and returns buf for the next.
func WriteWatchEvent(w io.Writer, buf []byte, typ string, obj []byte) ([]byte, error) {
	if len(obj) <= inlineObject {
		buf = AppendWatchEvent(buf, typ, obj)
		_, err := w.Write(buf)
		return buf, err
	}
	buf = append(append(append(buf, `{"type":"`...), typ...), `","object":`...)
	if _, err := w.Write(buf); err != nil {
		return buf, err
	}
	if _, err := w.Write(obj); err != nil {
		return buf, err
	}
	_, err := io.WriteString(w, "}\n")
	return buf, err
}

// BookmarkObject is the object of a BOOKMARK line at revision rev.
func BookmarkObject(rev int64) []byte {
	return []byte(`{"kind":"Bookmark","metadata":{"resourceVersion":` + strconv.FormatInt(rev, 10) + `}}`)
}

// ErrorObject is the object of an ERROR line.
func ErrorObject(st Status) []byte {
	b, _ := json.Marshal(st)
	return b
}

// DecodeWatchLine takes the type and object out of one watch line. The
// line as AppendWatchEvent writes it is split without scanning the object
// (the caller's decoder of the object checks it, and refuses anything
// after it); other spellings of the same JSON go through encoding/json.
// The object aliases line.
func DecodeWatchLine(line []byte) (WatchEvent, error) {
	if typ, obj, ok := splitWatchLine(line); ok {
		return WatchEvent{Type: typ, Object: obj}, nil
	}
	var e WatchEvent
	if err := json.Unmarshal(line, &e); err != nil {
		return WatchEvent{}, fmt.Errorf("watch event: %w", err)
	}
	return e, nil
}

func splitWatchLine(line []byte) (typ string, obj []byte, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"type":"`))
	if !ok {
		return "", nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 {
		return "", nil, false
	}
	for _, c := range rest[:i] {
		if c < 'A' || c > 'Z' {
			return "", nil, false
		}
	}
	typ = string(rest[:i])
	rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"object":{`))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return "", nil, false
	}
	return typ, line[len(line)-len(rest)-1 : len(line)-1], true
}

// BookmarkRevision reads the revision of a BOOKMARK line's object.
func BookmarkRevision(obj []byte) (int64, error) {
	var b struct {
		Metadata struct {
			ResourceVersion int64 `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(obj, &b); err != nil {
		return 0, fmt.Errorf("watch bookmark: %w", err)
	}
	return b.Metadata.ResourceVersion, nil
}

// ErrorStatus reads the Status of an ERROR line's object.
func ErrorStatus(obj []byte) (*Status, error) {
	st := &Status{}
	if err := json.Unmarshal(obj, st); err != nil {
		return nil, fmt.Errorf("watch error event: %w", err)
	}
	return st, nil
}
