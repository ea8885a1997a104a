package configs

import (
	"errors"
	"strings"
	"time"
)

// schedule is a parsed Backup.Schedule.
type schedule struct {
	every        string // "" (none), "hourly", "daily", "weekly"
	weekday      time.Weekday
	hour, minute int
}

var errSchedule = errors.New(`must be "hourly", "daily HH:MM" or "weekly DAY HH:MM" (DAY: mon..sun)`)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseSchedule(s string) (schedule, error) {
	f := strings.Fields(strings.ToLower(s))
	var sc schedule
	switch {
	case len(f) == 0:
		return sc, nil
	case len(f) == 1 && f[0] == "hourly":
		sc.every = "hourly"
		return sc, nil
	case len(f) == 2 && f[0] == "daily":
		sc.every = "daily"
	case len(f) == 3 && f[0] == "weekly":
		day := f[1]
		if len(day) > 3 {
			// monday, tuesday, ...
			if w, ok := weekdays[day[:3]]; ok && day == strings.ToLower(w.String()) {
				day = day[:3]
			}
		}
		w, ok := weekdays[day]
		if !ok {
			return sc, errSchedule
		}
		sc.every, sc.weekday = "weekly", w
	default:
		return sc, errSchedule
	}
	t, err := time.Parse("15:04", f[len(f)-1])
	if err != nil {
		return sc, errSchedule
	}
	sc.hour, sc.minute = t.Hour(), t.Minute()
	return sc, nil
}

// Next returns the first scheduled backup time after t, in t's location, or
// the zero time when Schedule is "" (or invalid, which Load does not let
// through).
func (b *Backup) Next(t time.Time) time.Time {
	sc, err := parseSchedule(b.Schedule)
	if err != nil || sc.every == "" {
		return time.Time{}
	}
	y, m, d := t.Date()
	loc := t.Location()
	switch sc.every {
	case "hourly":
		n := time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
		for !n.After(t) {
			n = n.Add(time.Hour)
		}
		return n
	case "daily":
		for i := 0; ; i++ {
			if n := time.Date(y, m, d+i, sc.hour, sc.minute, 0, 0, loc); n.After(t) {
				return n
			}
		}
	default: // weekly
		ahead := (int(sc.weekday) - int(t.Weekday()) + 7) % 7
		for ; ; ahead += 7 {
			if n := time.Date(y, m, d+ahead, sc.hour, sc.minute, 0, 0, loc); n.After(t) {
				return n
			}
		}
	}
}
