package main

import (
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
)

// The log filters reach journalctl only in forms it reads; anything else
// is a usage error naming the flag.
func TestJournalFilters(t *testing.T) {
	since := []struct{ in, want string }{
		{"30m", "-1800s"}, {"2h", "-7200s"}, {"1h30m", "-5400s"},
		{"today", "today"}, {"yesterday", "yesterday"},
		{"2026-12-06", "2026-12-06"}, {"2026-12-06 14:00", "2026-12-06 14:00"},
		{"2026-12-06T14:00:05", "2026-12-06 14:00:05"},
	}
	for _, c := range since {
		if got, err := journalSince(c.in); err != nil || got != c.want {
			t.Errorf("--since %q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"yesterday-ish", "-1h", "0s", "2026-13-45", "2026-12-06 25:00", "--until=now", "1h; rm -rf /", ""} {
		if _, err := journalSince(bad); err == nil || errs.Code(err) != errs.CodeUsage || !strings.Contains(err.Error(), "--since") {
			t.Errorf("--since %q: want a usage error naming --since, got %v", bad, err)
		}
	}
	levels := []struct{ in, want string }{
		{"err", "err"}, {"error", "err"}, {"WARN", "warning"}, {"debug", "debug"}, {"err..warning", "err..warning"}, {"crit..info", "crit..info"},
	}
	for _, c := range levels {
		if got, err := journalLevel(c.in); err != nil || got != c.want {
			t.Errorf("--level %q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"loud", "3", "err..", "..err", "err..loud", "-p"} {
		if _, err := journalLevel(bad); err == nil || errs.Code(err) != errs.CodeUsage || !strings.Contains(err.Error(), "--level") {
			t.Errorf("--level %q: want a usage error naming --level, got %v", bad, err)
		}
	}
	for _, bad := range []string{"", "a\nb", "a\x00b", strings.Repeat("x", maxGrep+1)} {
		if _, err := journalGrep(bad); err == nil || !strings.Contains(err.Error(), "--grep") {
			t.Errorf("--grep %q: want an error naming --grep, got %v", bad, err)
		}
	}
	l := AppLogsCmd{Since: "2h", Grep: givenText{text: "-timeout|refused", given: true}, Level: "warn"}
	args, err := l.filters()
	if err != nil || strings.Join(args, " ") != "--since=-7200s --grep=-timeout|refused --priority=warning" {
		t.Errorf("filters = %q, %v", args, err)
	}
}

func TestMaintenanceMessage(t *testing.T) {
	for _, ok := range []string{"", "Back at 14:00 <b>UTC</b> & \"soon\"\nThanks.", "Wartung: zurück um 14 Uhr\t✓"} {
		if err := checkMessage(ok, ok != ""); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{" ", "a\x1b[2Jb", "a\rb", "\xff", strings.Repeat("x", maxMessage+1)} {
		if err := checkMessage(bad, true); err == nil || errs.Code(err) != errs.CodeUsage || !strings.Contains(err.Error(), "--message") {
			t.Errorf("%q: want a usage error naming --message, got %v", bad, err)
		}
	}
}

// env push offers `raijin rollback` only while the previous version is
// still there: versions_to_keep = 1 prunes it in the same run.
func TestEnvPushLine(t *testing.T) {
	kept := envPushLine(engine.HostResult{Host: "prod", Version: "1.3+env1", Previous: "1.3"})
	if !strings.Contains(kept, "`raijin rollback` brings it back") {
		t.Errorf("previous version kept: %q", kept)
	}
	gone := envPushLine(engine.HostResult{Host: "prod", Version: "1.3+env1", Previous: "1.3", Pruned: []string{"1.2", "1.3"}})
	if strings.Contains(gone, "rollback` brings") || !strings.Contains(gone, "pruned") {
		t.Errorf("previous version pruned: %q", gone)
	}
}
