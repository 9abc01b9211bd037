package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Recorder writes Events: one object per (object, reason), counted up when
// the same thing happens again to the same object (by UID: the count of a
// new object of the same name starts over), with the latest message.
// Recording is best-effort: a failure is logged, never returned, because
// an event must not fail a reconcile. A new event the server's event
// limits drop (429) is logged at debug level only: the server records on
// the object that it drops them.
type Recorder struct {
	Client   *client.Client
	Reporter string
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now (a manager passes its clock's)
}

// Record writes e. Events about cluster-scoped objects (nodes) are only
// logged: Event objects live in apps.
func (r *Recorder) Record(ctx context.Context, e Event) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("event", "object", fmt.Sprintf("%s/%s/%s", e.Object.Kind, e.Object.App, e.Object.Name), "type", e.Type, "reason", e.Reason, "message", e.Message)
	if r.Client == nil || e.Object.App == "" {
		return
	}
	clock := RealClock{}.Now
	if r.Now != nil {
		clock = r.Now
	}
	now := clock()
	n := max(e.Count, 1)
	sum := sha256.Sum256([]byte(string(e.Object.Kind) + "/" + e.Object.Name + "/" + e.Reason))
	name := eventName(e.Object.Name, hex.EncodeToString(sum[:4]))
	key := api.Key{Kind: api.KindEvent, App: e.Object.App, Name: name}
	for range 3 {
		cur, err := r.Client.Get(ctx, key)
		if client.IsNotFound(err) {
			ev := api.KindEvent.New().(*api.Event)
			ev.Metadata = api.ObjectMeta{Name: name, App: e.Object.App}
			ev.Spec = api.EventSpec{Object: e.Object, Type: e.Type, Reason: e.Reason, Message: e.Message, Reporter: r.Reporter,
				Count: n, FirstSeen: now, LastSeen: now}
			_, err = r.Client.Create(ctx, ev)
			switch {
			case client.IsTooManyRequests(err):
				// The server's event limits: it records on the object
				// that it drops them, and counts them.
				log.Debug("record event: dropped by the server's event limits", "event", key, "err", err)
			case err != nil && !client.IsAlreadyExists(err):
				log.Warn("record event", "event", key, "err", err)
			}
			if !client.IsAlreadyExists(err) {
				return
			}
			continue
		}
		if err != nil {
			log.Warn("record event", "event", key, "err", err)
			return
		}
		ev := api.Clone(cur.(*api.Event))
		if old := ev.Spec.Object.UID; old != "" && e.Object.UID != "" && old != e.Object.UID {
			// A new object of the same name (an ordered replica made
			// again, an app deleted and declared again): its count starts
			// over rather than carrying on the old one's.
			ev.Spec.Count, ev.Spec.FirstSeen = 0, now
		}
		ev.Spec.Count += n
		ev.Spec.LastSeen, ev.Spec.Message, ev.Spec.Object, ev.Spec.Type = now, e.Message, e.Object, e.Type
		if _, err = r.Client.Update(ctx, ev); err == nil || !client.IsConflict(err) {
			if err != nil {
				log.Warn("record event", "event", key, "err", err)
			}
			return
		}
	}
}

// eventName is "<object>-<hash>", cut to fit a DNS label.
func eventName(object, hash string) string {
	if n := 63 - len(hash) - 1; len(object) > n {
		object = object[:n]
	}
	return object + "-" + hash
}
