package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// CheckCalendar checks a systemd calendar event (a timer's OnCalendar=,
// systemd.time(7)) without systemd: a shorthand (daily, hourly, ..., in
// any case) or "[WEEKDAYS] [DATE] [TIME] [TIMEZONE]", in this order, where
// WEEKDAYS is a list of day names and ranges (Mon..Fri,Sun; Mon-Fri; not
// backwards), TIMEZONE a name like UTC, Europe/Berlin or Etc/GMT-5, DATE is [YEAR-]MONTH-DAY (or
// MONTH~DAY, counted from the month's end), TIME is HOUR:MINUTE[:SECOND],
// and each number may be *, a list (1,15), a range (9..17) or a
// repetition (0/15, 9..17/2). The deploy asks the server's
// systemd-analyze calendar too.
func CheckCalendar(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty")
	}
	if bad := strings.IndexFunc(s, func(r rune) bool { return !calendarRune(r) }); bad >= 0 {
		return fmt.Errorf("%q cannot appear in a calendar event", s[bad:bad+1])
	}
	words := strings.Fields(s)
	if len(words) == 1 && calendarShorthands[strings.ToLower(words[0])] {
		return nil
	}
	// The parts come in this order, each at most once.
	order := []string{"day of the week", "date", "time", "time zone"}
	last := -1
	for i, w := range words {
		kind := ""
		var err error
		switch {
		case i == len(words)-1 && i > 0 && timezoneRe.MatchString(w):
			kind = "time zone"
		case strings.Contains(w, ":"):
			kind, err = "time", checkCalendarTime(w)
		case strings.ContainsAny(w, "-~") && strings.ContainsAny(w, "0123456789*"):
			kind, err = "date", checkCalendarDate(w)
		case weekdayRe.MatchString(w) && (checkWeekdays(w) == nil || strings.ContainsAny(w, ",.-")):
			kind, err = "day of the week", checkWeekdays(w)
		default:
			if calendarShorthands[strings.ToLower(w)] {
				return fmt.Errorf("%q: a shorthand stands alone (schedule = %q)", w, strings.ToLower(w))
			}
			return fmt.Errorf("%q is neither a day of the week (Mon..Sun), a date (YYYY-MM-DD, *-*-01), a time (HH:MM[:SS]) nor a shorthand (%s)", w, shorthandList)
		}
		if err != nil {
			return fmt.Errorf("%q: %v", w, err)
		}
		k := slices.Index(order, kind)
		if k == last {
			return fmt.Errorf("%q: a second %s", w, kind)
		}
		if k < last {
			return fmt.Errorf("%q: a %s comes before the %s (the order is: days of the week, date, time, time zone)", w, kind, order[last])
		}
		last = k
	}
	return nil
}

var (
	calendarShorthands = map[string]bool{"minutely": true, "hourly": true, "daily": true, "weekly": true, "monthly": true,
		"yearly": true, "annually": true, "quarterly": true, "semiannually": true}
	shorthandList = "minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly"
	weekdayRe     = regexp.MustCompile(`^[A-Za-z]+((,|\.\.|-)[A-Za-z]+)*$`)
	timezoneRe    = regexp.MustCompile(`^(UTC|GMT|[A-Z][A-Za-z_+-]*(/[A-Za-z0-9_+-]+)+)$`)
	weekdays      = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
)

func calendarRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" *,.:~/_+-", r)
}

// checkWeekdays checks Mon..Fri,Sun (or Mon-Fri): short or long English
// names; a range does not run backwards.
func checkWeekdays(w string) error {
	for _, item := range strings.Split(w, ",") {
		days := strings.Split(strings.ReplaceAll(item, "..", "-"), "-")
		if len(days) > 2 {
			return fmt.Errorf("%q: a range of days is FROM..TO", item)
		}
		for _, d := range days {
			if weekday(d) < 0 {
				return fmt.Errorf("%q is not a day of the week (Mon, Tue, ... or Monday, ...)", d)
			}
		}
		if len(days) == 2 && weekday(days[1]) < weekday(days[0]) {
			return fmt.Errorf("the range %s runs backwards (Mon..Sun)", item)
		}
	}
	return nil
}

func weekday(d string) int {
	d = strings.ToLower(d)
	for i, w := range weekdays {
		if d == w {
			return i
		}
		long := map[string]string{"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday", "sat": "saturday", "sun": "sunday"}[w]
		if d == long {
			return i
		}
	}
	return -1
}

// checkCalendarDate checks [YEAR-]MONTH-DAY, or [YEAR-]MONTH~DAY.
func checkCalendarDate(w string) error {
	if strings.Count(w, "~") > 1 {
		return fmt.Errorf("one ~ at most (MONTH~DAY: the DAYth day from the month's end)")
	}
	if i := strings.Index(w, "~"); i >= 0 {
		w = w[:i] + "-" + w[i+1:]
	}
	parts := strings.Split(w, "-")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("a date is YEAR-MONTH-DAY or MONTH-DAY")
	}
	if len(parts) == 3 {
		if err := checkCalendarField(parts[0], "year", 1970, 2199); err != nil {
			return err
		}
		parts = parts[1:]
	}
	if err := checkCalendarField(parts[0], "month", 1, 12); err != nil {
		return err
	}
	return checkCalendarField(parts[1], "day", 1, 31)
}

// checkCalendarTime checks HOUR:MINUTE[:SECOND] (seconds may have a
// fraction).
func checkCalendarTime(w string) error {
	parts := strings.Split(w, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("a time is HOUR:MINUTE or HOUR:MINUTE:SECOND")
	}
	if err := checkCalendarField(parts[0], "hour", 0, 23); err != nil {
		return err
	}
	if err := checkCalendarField(parts[1], "minute", 0, 59); err != nil {
		return err
	}
	if len(parts) == 3 {
		return checkCalendarField(parts[2], "second", 0, 59)
	}
	return nil
}

// checkCalendarField checks one component: *, or a list of VALUE,
// FROM..TO, VALUE/STEP, FROM..TO/STEP, each number within [lo, hi].
func checkCalendarField(f, what string, lo, hi int) error {
	if f == "" {
		return fmt.Errorf("the %s is missing", what)
	}
	for _, item := range strings.Split(f, ",") {
		base, step, stepped := strings.Cut(item, "/")
		if stepped {
			n, err := calendarNumber(step, what)
			if err != nil {
				return err
			}
			if n < 1 {
				return fmt.Errorf("a repetition of the %s must be 1 or more, not %q", what, step)
			}
		}
		if base == "*" {
			continue
		}
		from, to, isRange := strings.Cut(base, "..")
		ends := []string{from}
		if isRange {
			ends = append(ends, to)
		}
		var nums []float64
		for _, e := range ends {
			n, err := calendarNumber(e, what)
			if err != nil {
				return err
			}
			if n < float64(lo) || n >= float64(hi)+1 {
				return fmt.Errorf("the %s %s is out of range (%d..%d)", what, e, lo, hi)
			}
			nums = append(nums, n)
		}
		if isRange && nums[1] < nums[0] {
			return fmt.Errorf("the %s range %s runs backwards", what, base)
		}
	}
	return nil
}

// calendarNumber reads a number of a calendar component; only seconds
// take a fraction.
func calendarNumber(s, what string) (float64, error) {
	if s == "" || strings.Trim(s, "0123456789.") != "" || (what != "second" && strings.Contains(s, ".")) {
		return 0, fmt.Errorf("%q is not a %s (a number, *, a list a,b, a range a..b or a repetition a/n)", s, what)
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a %s", s, what)
	}
	return n, nil
}
