package apiserver

import (
	"sync/atomic"
	"unsafe"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// watchLines holds the encoded watch lines of recent events, so that an
// event going to many watch streams is encoded once and every stream
// writes the same bytes. The store hands each watcher the same Object
// bytes of an event; a line is found again by the event's revision, type
// and those bytes' address (the slot keeps them alive, so the address is
// not reused while the slot names it). Lock-free: a miss encodes and
// replaces the slot; two streams missing at once both encode.
type watchLines struct {
	slots [watchLineSlots]atomic.Pointer[watchLine]
}

const (
	watchLineSlots = 64
	// maxSharedObject bounds the objects whose lines are kept, and so
	// what the slots can pin (64 x 16 KiB).
	maxSharedObject = 16 << 10
)

type watchLine struct {
	rev  int64
	typ  store.EventType
	obj  *byte // unsafe.SliceData of the event's Object
	n    int
	line []byte
}

// line returns the watch line of e, shared (never modify it), or nil when
// e's object is too large to keep: the caller writes it from its own
// buffer then.
func (c *watchLines) line(e store.Event) []byte {
	if len(e.Object) == 0 || len(e.Object) > maxSharedObject {
		return nil
	}
	p := unsafe.SliceData(e.Object)
	slot := &c.slots[uint64(e.Rev)%watchLineSlots]
	if l := slot.Load(); l != nil && l.rev == e.Rev && l.typ == e.Type && l.obj == p && l.n == len(e.Object) {
		return l.line
	}
	line := wire.AppendWatchEvent(make([]byte, 0, len(e.Object)+32), string(e.Type), e.Object)
	slot.Store(&watchLine{rev: e.Rev, typ: e.Type, obj: p, n: len(e.Object), line: line})
	return line
}
