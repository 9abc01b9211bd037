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
	eventDedupWindow        = time.Minute
	eventQueueSize          = 256
	eventMaxMessageLength   = 1024
)

// events records the agent's events about pods. Repeats are merged twice:
// the same (pod, reason, message) is sent at most once per dedup window (a
// failing probe or a back-off loop would otherwise write on every pass),
// and the recorder counts repeats of a (pod, reason) up on one Event
// object. Sending is asynchronous and never blocks a worker; when the API
// is slow and the queue is full, events are dropped with a log line.
type events struct {
	rec    *reconcile.Recorder
	now    func() time.Time
	log    *slog.Logger
	window time.Duration
	queue  chan reconcile.Event

	mu   sync.Mutex
	sent map[string]time.Time // pod uid/reason/message -> last sent
}

func newEvents(c *client.Client, node string, now func() time.Time, log *slog.Logger) *events {
	return &events{
		rec: &reconcile.Recorder{Client: c, Reporter: "agent/" + node, Logger: log, Now: now},
		now: now, log: log, window: eventDedupWindow,
		queue: make(chan reconcile.Event, eventQueueSize),
		sent:  map[string]time.Time{},
	}
}

// podRef names the pod of worker key "app/name" with uid.
func podRef(key, uid string) api.ObjectRef {
	app, name, _ := strings.Cut(key, "/")
	return api.ObjectRef{Kind: api.KindPod, App: app, Name: name, UID: uid}
}

// emit queues an event unless the same one went out within the window. It
// reports whether it queued it.
func (e *events) emit(ref api.ObjectRef, typ, reason, message string) bool {
	if e == nil || ref.Name == "" {
		return false
	}
	if len(message) > eventMaxMessageLength {
		message = message[:eventMaxMessageLength] + "..."
	}
	key := ref.UID + "/" + reason + "/" + message
	now := e.now()
	e.mu.Lock()
	if last, ok := e.sent[key]; ok && now.Sub(last) < e.window {
		e.mu.Unlock()
		return false
	}
	e.sent[key] = now
	for k, t := range e.sent { // keep the map small: forget what has expired
		if len(e.sent) < 1024 {
			break
		}
		if now.Sub(t) >= e.window {
			delete(e.sent, k)
		}
	}
	e.mu.Unlock()
	select {
	case e.queue <- reconcile.Event{Object: ref, Type: typ, Reason: reason, Message: message}:
		return true
	default:
		e.log.Warn("event dropped: the queue is full", "object", ref.App+"/"+ref.Name, "reason", reason)
		return false
	}
}

// run writes queued events until ctx ends.
func (e *events) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.queue:
			e.rec.Record(ctx, ev)
		}
	}
}
