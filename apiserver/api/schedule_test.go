package api

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
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
		{"localtime", "0 3 * * *", "localtime", time.Time{}},
		{"localtime in the expression", "CRON_TZ=localtime 0 3 * * *", "", time.Time{}},
		{"zone without fields", "CRON_TZ=Europe/Paris", "", time.Time{}},
		{"TZ without fields", "TZ=", "", time.Time{}},
		{"zone then a tab", "CRON_TZ=Europe/Paris\t0 3 * * *", "", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
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
	for _, s := range []string{"* * * * *", "0 3 * * *", "@daily", "@every 1h", "CRON_TZ=Europe/Paris 5 4 * * sun", "*/5 1-3 1,15 jan-mar mon-fri", "0 0 30 2 *", "TZ=", "@every -1s", "@every 59s", "CRON_TZ=Europe/Paris", "CRON_TZ=localtime 0 3 * * *"} {
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
		{"CRON_TZ=Europe/Paris", "", `bad schedule: "CRON_TZ=Europe/Paris" has a time zone but no schedule: want CRON_TZ=ZONE then five fields, e.g. "CRON_TZ=Europe/Paris 0 3 * * *"`},
		{"@every 20s", "", `bad schedule: "@every 20s": a schedule starts at most one run a minute: want @every 1m or more`},
		{"0 3 * * *", "localtime", `bad schedule: time zone "localtime" depends on the server's settings: use an IANA name such as "Europe/Paris"`},
		{"CRON_TZ=Local 0 3 * * *", "", `bad schedule: time zone "Local" depends on the server's settings: use an IANA name such as "Europe/Paris"`},
	} {
		_, err := ParseSchedule(tc.expr, tc.tz)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseSchedule(%q, %q) = %v\nwant %s", tc.expr, tc.tz, err, tc.want)
		}
	}
}

// TestZoneDatabaseBuiltIn: a zone that validates on a laptop must load on
// a server without /usr/share/zoneinfo (a distroless image), so the
// package that parses zones links the zone database in.
func TestZoneDatabaseBuiltIn(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !slices.Contains(strings.Fields(string(out)), "time/tzdata") {
		t.Fatalf("package api does not import time/tzdata; imports:\n%s", out)
	}
}
