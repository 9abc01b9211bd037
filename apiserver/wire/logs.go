package wire

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// LogQuery is what a log request selects, on the API server's
// /api/v1/pods/APP/NAME/log and on the agent's /pods/UID/log alike:
// container=&follow=&previous=&timestamps=&tail=&sinceSeconds=&sinceTime=.
// The server checks it, then forwards it to the pod's agent.
type LogQuery struct {
	Container  string
	Follow     bool
	Previous   bool
	Timestamps bool
	// Tail is the number of last lines; negative: all.
	Tail int
	// SinceSeconds leaves out the lines written more than this many
	// seconds ago, by the node's clock (the clock that stamped them);
	// 0: no bound.
	SinceSeconds int64
	// SinceTime leaves out the lines written before it; zero: no bound.
	// At most one of SinceSeconds and SinceTime is set.
	SinceTime time.Time
}

// AgentPodParam names the pod, APP/NAME, in the API server's log and exec
// requests to the pod's agent (/pods/UID/log?pod=APP/NAME&...): the agent
// knows only the pods it runs, and says which one a user asked for when
// it runs no pod of that UID (one that moved, or has not reached it yet).
const AgentPodParam = "pod"

// Values is the query string of q.
func (q LogQuery) Values() url.Values {
	v := url.Values{}
	if q.Container != "" {
		v.Set("container", q.Container)
	}
	for name, on := range map[string]bool{"follow": q.Follow, "previous": q.Previous, "timestamps": q.Timestamps} {
		if on {
			v.Set(name, "true")
		}
	}
	if q.Tail >= 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	if q.SinceSeconds > 0 {
		v.Set("sinceSeconds", strconv.FormatInt(q.SinceSeconds, 10))
	}
	if !q.SinceTime.IsZero() {
		v.Set("sinceTime", q.SinceTime.Format(time.RFC3339Nano))
	}
	return v
}

// Since is the time before which lines are left out (zero: none), with
// now read on the node.
func (q LogQuery) Since(now time.Time) time.Time {
	if q.SinceSeconds > 0 {
		return now.Add(-time.Duration(q.SinceSeconds) * time.Second)
	}
	return q.SinceTime
}

// maxSinceSeconds bounds sinceSeconds so that it stays a time.Duration
// (about 292 years).
const maxSinceSeconds = int64(1<<63-1) / int64(time.Second)

// ParseLogQuery reads a log request's query; its error says which
// parameter is wrong and what it wants.
func ParseLogQuery(v url.Values) (LogQuery, error) {
	q := LogQuery{Container: v.Get("container"), Tail: -1}
	for name, dst := range map[string]*bool{"follow": &q.Follow, "previous": &q.Previous, "timestamps": &q.Timestamps} {
		switch s := v.Get(name); s {
		case "", "false":
		case "true":
			*dst = true
		default:
			return q, fmt.Errorf("%s=%s: want true or false", name, quote(s))
		}
	}
	if s := v.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, fmt.Errorf("tail=%s: want a number of lines, 0 or more", quote(s))
		}
		q.Tail = n
	}
	if s := v.Get("sinceSeconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > maxSinceSeconds {
			return q, fmt.Errorf("sinceSeconds=%s: want a number of seconds, 1 or more", quote(s))
		}
		q.SinceSeconds = n
	}
	if s := v.Get("sinceTime"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("sinceTime=%s: want an RFC 3339 time such as 2026-12-06T10:00:00Z", quote(s))
		}
		q.SinceTime = t
	}
	if q.SinceSeconds > 0 && !q.SinceTime.IsZero() {
		return q, errors.New("sinceSeconds and sinceTime: give one of them, not both")
	}
	return q, nil
}

// quote shows a value of a query in an error: quoted, at most 16 bytes.
func quote(s string) string {
	if len(s) > 16 {
		s = s[:16] + "..."
	}
	return strconv.QuoteToASCII(s)
}
