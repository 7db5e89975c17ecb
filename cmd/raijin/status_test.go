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
