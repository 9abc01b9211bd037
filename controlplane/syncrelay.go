package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
)

// syncTriggersDocument is the store document through which the servers
// that do not lead pass sync triggers (POST /sync, webhook pushes and
// pull-request events) on to the leader, whose syncer and forge workers
// are the only ones that run (docs/ha.md, Several servers).
const syncTriggersDocument = "sync-triggers"

// maxRelayed bounds the triggers the document keeps: the leader acts on
// every version it watches, so the older ones were acted on already.
const maxRelayed = 64

// Kinds of relayed triggers.
const (
	relaySync    = "sync"    // a sync of Repo ("all": every repository)
	relayConfirm = "confirm" // --allow-prune-all: confirm the held commit of Repo, then sync
	relayPull    = "pull"    // a pull-request event: plan pull request Pull of Repo
)

// relayedTrigger is one trigger a follower recorded; Seq orders them.
type relayedTrigger struct {
	Seq  int64  `json:"seq"`
	Repo string `json:"repo"`
	Kind string `json:"kind"`
	Pull int    `json:"pull,omitempty"`
	// PreviewAgain: the pull-request event added the preview label
	// (forge.Pull).
	PreviewAgain bool      `json:"previewAgain,omitempty"`
	At           time.Time `json:"at"`
}

// relayedTriggers is the document: the last triggers and the last Seq.
type relayedTriggers struct {
	Seq      int64            `json:"seq"`
	Triggers []relayedTrigger `json:"triggers"`
}

// syncRelay passes triggers between the servers of one etcd store. A nil
// *syncRelay, or one without docs (one server on bbolt), relays nothing:
// the server leads and triggers its syncer itself.
type syncRelay struct {
	docs    store.Documents
	leading func() bool
	log     *slog.Logger
}

// relays reports whether a trigger received now must go to another
// server: this one shares a store and does not lead.
func (r *syncRelay) relays() bool { return r != nil && r.docs != nil && !r.leading() }

func decodeRelayed(data []byte) (relayedTriggers, error) {
	var d relayedTriggers
	if len(data) == 0 {
		return d, nil
	}
	err := json.Unmarshal(data, &d)
	return d, err
}

// pass records t in the document for the leader, with a compare-and-swap
// so that triggers of several servers at once are all kept.
func (r *syncRelay) pass(ctx context.Context, t relayedTrigger) error {
	for attempt := 0; ; attempt++ {
		data, version, err := r.docs.Document(ctx, syncTriggersDocument)
		if err != nil {
			return err
		}
		d, err := decodeRelayed(data)
		if err != nil {
			// Unreadable (written by another version?): start it again,
			// the leader acts on what follows.
			r.log.Warn("the store's sync-triggers document is unreadable; writing it anew", "err", err)
			d = relayedTriggers{}
		}
		d.Seq++
		t.Seq, t.At = d.Seq, time.Now()
		d.Triggers = append(d.Triggers, t)
		if n := len(d.Triggers); n > maxRelayed {
			d.Triggers = d.Triggers[n-maxRelayed:]
		}
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		_, err = r.docs.PutDocument(ctx, syncTriggersDocument, b, version)
		if errors.Is(err, store.ErrConflict) && attempt < 20 && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return fmt.Errorf("relay the %s of %s to the leader: %w", t.Kind, t.Repo, err)
		}
		return nil
	}
}

// follow runs on the leader until ctx ends: it calls act with every
// trigger recorded after it began (those before are covered by the first
// sync a new leader makes of every repository).
func (r *syncRelay) follow(ctx context.Context, act func(relayedTrigger)) error {
	var seen, version int64
	for {
		data, v, err := r.docs.Document(ctx, syncTriggersDocument)
		if err == nil {
			d, _ := decodeRelayed(data)
			seen, version = d.Seq, v
			break
		}
		r.log.Warn("read the store's sync-triggers document; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	r.docs.WatchDocument(ctx, syncTriggersDocument, version, func(data []byte, _ int64) {
		d, err := decodeRelayed(data)
		if err != nil {
			r.log.Warn("the store's sync-triggers document is unreadable; ignored", "err", err)
			return
		}
		if d.Seq < seen { // deleted or written anew
			seen = 0
		}
		for _, t := range d.Triggers {
			if t.Seq > seen {
				act(t)
			}
		}
		seen = d.Seq
	})
	return nil
}
