package wire

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseLogQuery(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 500, time.UTC)
	for _, tc := range []struct {
		name, query string
		want        LogQuery
		err         string
	}{
		{name: "nothing", query: "", want: LogQuery{Tail: -1}},
		{name: "all", query: "container=c&follow=true&previous=false&timestamps=true&tail=0&sinceSeconds=600",
			want: LogQuery{Container: "c", Follow: true, Timestamps: true, Tail: 0, SinceSeconds: 600}},
		{name: "since time", query: "sinceTime=2026-12-06T10:00:00.0000005Z", want: LogQuery{Tail: -1, SinceTime: at}},
		{name: "bad bool", query: "follow=yes", err: `follow="yes": want true or false`},
		{name: "bad tail", query: "tail=-2", err: `tail="-2": want a number of lines`},
		{name: "zero seconds", query: "sinceSeconds=0", err: `sinceSeconds="0": want a number of seconds, 1 or more`},
		{name: "seconds past a duration", query: "sinceSeconds=9300000000000", err: `sinceSeconds="9300000000000": want`},
		{name: "bad time", query: "sinceTime=yesterday", err: `sinceTime="yesterday": want an RFC 3339 time`},
		{name: "both", query: "sinceSeconds=5&sinceTime=2026-12-06T10:00:00Z", err: "give one of them, not both"},
		{name: "long value cut", query: "tail=" + strings.Repeat("9", 40), err: `tail="9999999999999999...": want`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseLogQuery(v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !got.SinceTime.Equal(tc.want.SinceTime) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			got.SinceTime, tc.want.SinceTime = time.Time{}, time.Time{}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLogQuerySince(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if got := (LogQuery{SinceSeconds: 90}).Since(now); !got.Equal(now.Add(-90 * time.Second)) {
		t.Errorf("90 seconds: %v", got)
	}
	if got := (LogQuery{}).Since(now); !got.IsZero() {
		t.Errorf("no bound: %v", got)
	}
}

// FuzzParseLogQuery: a query the parser accepts comes back the same from
// its Values (what the server forwards to the agent), and nothing panics.
func FuzzParseLogQuery(f *testing.F) {
	f.Add("container=c&follow=true&tail=10&sinceSeconds=60")
	f.Add("sinceTime=2026-12-06T10:00:00.123+02:00&timestamps=true&previous=true")
	f.Add("tail=-1&sinceSeconds=-5&sinceTime=x")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseLogQuery(v)
		if err != nil {
			return
		}
		again, err := ParseLogQuery(q.Values())
		if err != nil {
			t.Fatalf("%q parsed as %+v, whose query %q is refused: %v", raw, q, q.Values().Encode(), err)
		}
		if !again.SinceTime.Equal(q.SinceTime) {
			t.Fatalf("since time %v came back %v", q.SinceTime, again.SinceTime)
		}
		again.SinceTime, q.SinceTime = time.Time{}, time.Time{}
		if again != q {
			t.Fatalf("%+v came back %+v", q, again)
		}
	})
}
