package main

import "testing"

// A timer's last run is its service's last start: a timer a deploy
// started (its trigger stamp set to now) whose service never ran shows
// none; one that ran shows the service's start and result.
func TestTimerLastRun(t *testing.T) {
	show := `Id=shop-report.timer
ActiveState=active
SubState=waiting
LastTriggerUSec=Sun 2026-12-06 03:00:00 UTC
NextElapseUSecRealtime=Mon 2026-12-07 00:00:00 UTC

Id=shop-report.service
ActiveState=inactive
SubState=dead
Result=success
ExecMainStartTimestamp=
ExecMainStartTimestampMonotonic=0`
	u := timerRuns(parseShow(show))
	if len(u) != 1 || u[0].LastRun != "" || u[0].LastResult != "" || u[0].NextRun != "Mon 2026-12-07 00:00:00 UTC" {
		t.Errorf("never ran: %+v", u)
	}
	ran := show[:len(show)-len("ExecMainStartTimestamp=\nExecMainStartTimestampMonotonic=0")] +
		"ExecMainStartTimestamp=Sun 2026-12-06 02:00:00 UTC\nExecMainStartTimestampMonotonic=123456"
	u = timerRuns(parseShow(ran))
	if len(u) != 1 || u[0].LastRun != "Sun 2026-12-06 02:00:00 UTC" || u[0].LastResult != "success" {
		t.Errorf("ran: %+v", u)
	}
}

// A scheduled process whose last run failed counts for app status's exit
// code; one that succeeded, runs now or never ran does not, nor does a
// service that is not a timer's.
func TestFailedRuns(t *testing.T) {
	units := []UnitStatus{
		{Unit: "shop-report.timer", LastResult: "exit-code"},
		{Unit: "shop-clean.timer", LastResult: "success"},
		{Unit: "shop-mail.timer", LastResult: "running"},
		{Unit: "shop-new.timer"},
		{Unit: "shop-sync.timer", LastResult: "signal"},
		{Unit: "shop-worker.service", LastResult: "exit-code"},
	}
	if n := failedRuns(units); n != 2 {
		t.Errorf("failedRuns = %d, want 2 (exit-code and signal)", n)
	}
}
