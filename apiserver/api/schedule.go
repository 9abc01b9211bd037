package api

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones that validate on a laptop work on any server
	"unicode"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron schedule.
type Schedule interface {
	// Next returns the first schedule time after t, or the zero time
	// when there is none.
	Next(t time.Time) time.Time
}

// ErrBadSchedule marks a cron expression or time zone that does not parse.
var ErrBadSchedule = errors.New("bad schedule")

// scheduleCheckFrom is where ParseSchedule looks for a first run: a fixed
// time, so that validation is a pure function of its input.
var scheduleCheckFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// MinEvery is the shortest @every interval: runs are named by the minute
// of their time, so a schedule fires at most once a minute.
const MinEvery = time.Minute

// ParseSchedule parses a cron expression in the standard five fields
// (minute, hour, day of month, month, day of week) or a descriptor
// (@yearly, @monthly, @weekly, @daily, @hourly, @every 90m), in time zone
// tz (an IANA name; "" is UTC; the expression may instead start with
// CRON_TZ=ZONE). An expression that can never fire (30 February) is
// refused: its runs would all be in the past; so is @every under a
// minute.
func ParseSchedule(expr, tz string) (Schedule, error) {
	e := strings.TrimSpace(expr)
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		rest, ok := strings.CutPrefix(e, prefix)
		if !ok {
			continue
		}
		if tz != "" {
			return nil, fmt.Errorf("%w: %q sets its time zone and timeZone sets another; keep one", ErrBadSchedule, expr)
		}
		i := strings.IndexFunc(rest, unicode.IsSpace)
		if i < 0 {
			return nil, fmt.Errorf("%w: %q has a time zone but no schedule: want %sZONE then five fields, e.g. \"%sEurope/Paris 0 3 * * *\"", ErrBadSchedule, expr, prefix, prefix)
		}
		tz, e = rest[:i], strings.TrimSpace(rest[i:])
		break
	}
	if err := checkZone(tz); err != nil {
		return nil, err
	}
	if tz == "" {
		tz = "UTC"
	}
	s, err := parseCron("CRON_TZ=" + tz + " " + e)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w (want five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\", or @daily, @every 1h)", ErrBadSchedule, expr, err)
	}
	if every, ok := s.(cron.ConstantDelaySchedule); ok && every.Delay < MinEvery {
		// robfig/cron turns an interval under a second, zero or negative
		// into one second.
		return nil, fmt.Errorf("%w: %q: a schedule starts at most one run a minute: want @every 1m or more", ErrBadSchedule, expr)
	}
	if s.Next(scheduleCheckFrom).IsZero() {
		return nil, fmt.Errorf("%w: %q never fires: no such date", ErrBadSchedule, expr)
	}
	return s, nil
}

// checkZone refuses a time zone that is not an IANA name, or whose
// meaning depends on the server it runs on ("Local", "localtime": the
// validating laptop and the server could disagree). The zone database is
// built in (time/tzdata), so a server without one agrees with the laptop.
func checkZone(tz string) error {
	if tz == "Local" || tz == "localtime" {
		return fmt.Errorf("%w: time zone %q depends on the server's settings: use an IANA name such as \"Europe/Paris\"", ErrBadSchedule, tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("%w: unknown time zone %q: use an IANA name such as \"Europe/Paris\"", ErrBadSchedule, tz)
	}
	return nil
}

// parseCron calls the parser, turning its panics (it has had some on odd
// input) into errors.
func parseCron(e string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return cron.ParseStandard(e)
}
