package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Event reasons the agent records on pods (and volumes), as the kubelet
// spells them.
const (
	EventFailed             = "Failed"                 // an image pull or a container start failed
	EventBackOff            = "BackOff"                // a pull or a restart waits for its back-off
	EventUnhealthy          = "Unhealthy"              // a readiness or liveness probe failed
	EventProbeWarning       = "ProbeWarning"           // a probe passed with a warning: a redirect it did not follow
	EventKilling            = "Killing"                // a container is stopped: its liveness probe failed
	EventOOMKilled          = "OOMKilled"              // a container went over its memory limit
	EventFailedCreatePod    = "FailedCreatePodSandBox" // the sandbox (namespaces, CNI) could not be made
	EventVolumeResized      = "VolumeResized"          // a volume's file system grew to its new size (on the Volume)
	EventVolumeResizeFailed = "VolumeResizeFailed"     // it could not (on the Volume)
	EventVolumeAdopted      = "VolumeAdopted"          // a volume got the data an earlier object of it left on the node (on the Volume)
	eventDedupWindow        = time.Minute
	eventQueueSize          = 256
	eventMaxMessageLength   = 1024
)

// events records the agent's events about pods. Repeats are merged twice:
// the same (pod, reason, message) is sent at most once per dedup window (a
// failing probe or a back-off loop would otherwise write on every pass),
// its repeats in between counted and sent with the next one (or by flush,
// once the window is over), so that the stored count is how often it
// happened; and the recorder counts repeats of a (pod, reason) up on one
// Event object. Sending is asynchronous and never blocks a worker; when the
// API is slow and the queue is full, events are dropped with a log line.
type events struct {
	rec    *reconcile.Recorder
	now    func() time.Time
	log    *slog.Logger
	window time.Duration
	queue  chan reconcile.Event

	mu   sync.Mutex
	sent map[string]*sentEvent // pod uid/reason/message -> last sent
}

// sentEvent is an event sent within the window and its repeats since.
type sentEvent struct {
	at      time.Time
	ev      reconcile.Event
	repeats int32
}

func newEvents(c *client.Client, node string, now func() time.Time, log *slog.Logger) *events {
	return &events{
		rec: &reconcile.Recorder{Client: c, Reporter: "agent/" + node, Logger: log, Now: now},
		now: now, log: log, window: eventDedupWindow,
		queue: make(chan reconcile.Event, eventQueueSize),
		sent:  map[string]*sentEvent{},
	}
}

// podRef names the pod of worker key "app/name" with uid.
func podRef(key, uid string) api.ObjectRef {
	app, name, _ := strings.Cut(key, "/")
	return api.ObjectRef{Kind: api.KindPod, App: app, Name: name, UID: uid}
}

// emit queues an event unless the same one went out within the window
// (then it is counted, to go out with the next). It reports whether it
// queued it.
func (e *events) emit(ref api.ObjectRef, typ, reason, message string) bool {
	if e == nil || ref.Name == "" {
		return false
	}
	if len(message) > eventMaxMessageLength {
		message = message[:eventMaxMessageLength] + "..."
	}
	key := ref.UID + "/" + reason + "/" + message
	now := e.now()
	ev := reconcile.Event{Object: ref, Type: typ, Reason: reason, Message: message, Count: 1}
	e.mu.Lock()
	if s, ok := e.sent[key]; ok && now.Sub(s.at) < e.window {
		s.repeats++
		e.mu.Unlock()
		return false
	} else if ok {
		ev.Count += s.repeats
	}
	e.sent[key] = &sentEvent{at: now, ev: ev}
	e.mu.Unlock()
	return e.send(ev)
}

func (e *events) send(ev reconcile.Event) bool {
	select {
	case e.queue <- ev:
		return true
	default:
		e.log.Warn("event dropped: the queue is full", "object", ev.Object.App+"/"+ev.Object.Name, "reason", ev.Reason, "count", ev.Count)
		return false
	}
}

// flush sends the repeats counted for events whose window is over, and
// forgets the events without repeats whose window is over.
func (e *events) flush() {
	now := e.now()
	var out []reconcile.Event
	e.mu.Lock()
	for k, s := range e.sent {
		if now.Sub(s.at) < e.window {
			continue
		}
		if s.repeats == 0 {
			delete(e.sent, k)
			continue
		}
		ev := s.ev
		ev.Count = s.repeats
		s.at, s.repeats = now, 0
		out = append(out, ev)
	}
	e.mu.Unlock()
	for _, ev := range out {
		e.send(ev)
	}
}

// run writes queued events, and every window the counted repeats, until
// ctx ends.
func (e *events) run(ctx context.Context) {
	t := time.NewTicker(e.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.flush()
		case ev := <-e.queue:
			e.rec.Record(ctx, ev)
		}
	}
}
