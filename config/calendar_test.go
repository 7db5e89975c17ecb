package config

import (
	"os/exec"
	"testing"
)

// CheckCalendar agrees with systemd: each case is checked by the parser
// and, where this machine has systemd-analyze, by systemd too.
func TestCheckCalendarAgreesWithSystemd(t *testing.T) {
	analyze, _ := exec.LookPath("systemd-analyze")
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"Daily", true}, {"DAILY", true}, {"Hourly", true},
		{"Mon-Fri", true}, {"Mon-Fri 10:00", true}, {"Mon,Wed..Fri", true}, {"Sat,Sun *-*-01 00:00", true},
		{"10:00 Etc/GMT-5", true}, {"*-*-* 10:00 Etc/GMT-5", true}, {"Mon..Fri 12:00 UTC", true},
		{"10:00 Mon", false}, {"*-*-* 10:00 Mon", false}, {"10:00 *-*-*", false},
		{"Wed..Mon", false}, {"Wed-Mon", false}, {"Mon Tue", false}, {"daily 03:00", false},
	} {
		err := CheckCalendar(tc.s)
		if (err == nil) != tc.ok {
			t.Errorf("CheckCalendar(%q): %v, want ok=%v", tc.s, err, tc.ok)
		}
		if analyze != "" {
			if sysOK := exec.Command(analyze, "calendar", "--", tc.s).Run() == nil; sysOK != tc.ok {
				t.Errorf("systemd-analyze calendar %q: ok=%v, the table says %v", tc.s, sysOK, tc.ok)
			}
		}
	}
}
