package api

import (
	"errors"
	"fmt"
	"strings"
	"time"

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
	hasTZ := strings.HasPrefix(e, "CRON_TZ=") || strings.HasPrefix(e, "TZ=")
	if tz != "" {
		if hasTZ {
			return nil, fmt.Errorf("%w: %q sets its time zone and timeZone sets another; keep one", ErrBadSchedule, expr)
		}
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
			return nil, fmt.Errorf("%w: unknown time zone %q: use an IANA name such as \"Europe/Paris\"", ErrBadSchedule, tz)
		}
		e = "CRON_TZ=" + tz + " " + e
	} else if !hasTZ {
		e = "CRON_TZ=UTC " + e
	}
	if strings.HasPrefix(e, "CRON_TZ=Local ") || strings.HasPrefix(e, "TZ=Local ") {
		return nil, fmt.Errorf("%w: time zone Local depends on the server; use an IANA name", ErrBadSchedule)
	}
	s, err := parseCron(e)
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
