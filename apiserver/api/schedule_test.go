package api

import (
	"errors"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, expr, tz string
		next           time.Time // zero: refused
	}{
		{"every minute", "* * * * *", "", time.Date(2026, 3, 28, 23, 31, 0, 0, time.UTC)},
		{"nightly UTC", "0 3 * * *", "", time.Date(2026, 3, 29, 3, 0, 0, 0, time.UTC)},
		// Paris moves to summer time on 29 March 2026: 03:00 local is 01:00 UTC.
		{"nightly in a zone", "0 3 * * *", "Europe/Paris", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"zone in the expression", "CRON_TZ=Europe/Paris 0 3 * * *", "", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"descriptor", "@hourly", "", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"every", "@every 90m", "", from.Add(90 * time.Minute)},
		{"four fields", "0 3 * *", "", time.Time{}},
		{"six fields", "0 0 3 * * *", "", time.Time{}},
		{"out of range", "61 * * * *", "", time.Time{}},
		{"never fires", "0 0 30 2 *", "", time.Time{}},
		{"empty", "", "", time.Time{}},
		{"unknown zone", "0 3 * * *", "Mars/Olympus", time.Time{}},
		{"two zones", "CRON_TZ=UTC 0 3 * * *", "Europe/Paris", time.Time{}},
		{"local zone", "0 3 * * *", "Local", time.Time{}},
		{"local in the expression", "CRON_TZ=Local 0 3 * * *", "", time.Time{}},
		{"every minute by descriptor", "@every 1m", "", from.Add(time.Minute)},
		{"every 90 seconds", "@every 90s", "", from.Add(90 * time.Second)},
		{"every 20 seconds", "@every 20s", "", time.Time{}},
		{"every 500ms", "@every 500ms", "", time.Time{}},
		{"every 0s", "@every 0s", "", time.Time{}},
		{"every negative", "@every -1h", "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr, tc.tz)
			if tc.next.IsZero() {
				if !errors.Is(err, ErrBadSchedule) {
					t.Fatalf("ParseSchedule(%q, %q) = %v, want ErrBadSchedule", tc.expr, tc.tz, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(from); !got.Equal(tc.next) {
				t.Errorf("Next(%s) = %s, want %s", from, got.UTC(), tc.next)
			}
		})
	}
}

// FuzzParseSchedule: any expression and zone either fail with
// ErrBadSchedule or give a schedule whose next time is after the input.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"* * * * *", "0 3 * * *", "@daily", "@every 1h", "CRON_TZ=Europe/Paris 5 4 * * sun", "*/5 1-3 1,15 jan-mar mon-fri", "0 0 30 2 *", "TZ=", "@every -1s", "@every 59s"} {
		f.Add(s, "")
	}
	f.Add("0 3 * * *", "America/New_York")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr, tz string) {
		s, err := ParseSchedule(expr, tz)
		if err != nil {
			if !errors.Is(err, ErrBadSchedule) {
				t.Fatalf("error %v is not ErrBadSchedule", err)
			}
			return
		}
		n := s.Next(from)
		if !n.IsZero() && !n.After(from) {
			t.Fatalf("%q: next %s is not after %s", expr, n, from)
		}
		// Runs are named by their minute: two times never share one.
		if m := s.Next(n); !n.IsZero() && !m.IsZero() && m.Sub(n) < time.Minute {
			t.Fatalf("%q: times %s and %s are less than a minute apart", expr, n, m)
		}
	})
}

// TestScheduleErrorsSayWhatToDo pins the messages that are not the
// parser's own: each names the input and what is wanted instead.
func TestScheduleErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct{ expr, tz, want string }{
		{"@every 20s", "", `bad schedule: "@every 20s": a schedule starts at most one run a minute: want @every 1m or more`},
	} {
		_, err := ParseSchedule(tc.expr, tc.tz)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseSchedule(%q, %q) = %v\nwant %s", tc.expr, tc.tz, err, tc.want)
		}
	}
}
