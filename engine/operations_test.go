package engine_test

import (
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/engine"
)

const opsTOML = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"
[webserver]
upstream = "localhost:8000"
[processes]
web = "shop serve --port $PORT"
mail = { command = "shop mail", replicas = 3 }
[processes.report]
command = "shop report"
schedule = "daily"
[[hosts]]
name = "prod"
address = "192.0.2.1"
user = "deploy"
domain_name = ":8080"
`

// index is the position of the first command containing s, -1 if none.
func index(cmds []string, s string) int {
	for i, c := range cmds {
		if strings.Contains(c, s) {
			return i
		}
	}
	return -1
}

// A deploy checks each schedule with the server's systemd before it
// installs any unit, starts (never restarts) a scheduled process's timer
// and never its service, and restarts the replicas one at a time through
// their template, trimming any beyond raijin.toml's count.
func TestDeployScheduledAndReplicas(t *testing.T) {
	cmds := recordFlowOf(t, opsTOML, "deploy", nil)
	all := strings.Join(cmds, "\n")
	check, install := index(cmds, "systemd-analyze calendar"), index(cmds, "shop-mail@.service shop-report.service shop-report.timer")
	if check < 0 || install < 0 || check > install || !strings.Contains(cmds[check], "export SCHEDULE=daily") {
		t.Errorf("the schedule check (%d) must come before the units are installed (%d):\n%s", check, install, all)
	}
	if install >= 0 && !strings.Contains(cmds[install], "export ENABLE=shop-report.timer") {
		t.Errorf("install: %s", cmds[install])
	}
	if !strings.Contains(all, "export TIMERS=shop-report.timer") || strings.Contains(all, "restart shop-report.timer") ||
		strings.Contains(all, "start shop-report.service") {
		t.Errorf("the timer must be started, not restarted, and the job not run:\n%s", all)
	}
	roll := index(cmds, "export BASE=shop-mail")
	if roll < 0 || !strings.Contains(cmds[roll], "export COUNT=3") || !strings.Contains(cmds[roll], "export RESTART=1") || !strings.Contains(cmds[roll], "export TRIM=1") {
		t.Errorf("the replicas' restart:\n%s", all)
	}
}

// app scale starts only the missing instances and stops the extra ones;
// app stop stops every instance that runs; down removes the instances
// with their template.
func TestScaleStopDownReplicas(t *testing.T) {
	scale := recordFlowOf(t, opsTOML, "scale", func(o *engine.Options) { o.Process, o.Replicas = "mail", 5 })
	i := index(scale, "export BASE=shop-mail")
	if i < 0 || !strings.Contains(scale[i], "export COUNT=5") || !strings.Contains(scale[i], `export RESTART='\'''\''`) || !strings.Contains(scale[i], "export TRIM=1") {
		t.Errorf("app scale mail 5:\n%s", strings.Join(scale, "\n"))
	}
	stop := strings.Join(recordFlowOf(t, opsTOML, "stop", func(o *engine.Options) { o.Process = "mail" }), "\n")
	if !strings.Contains(stop, `systemctl stop '\''shop-mail@*.service'\''`) || !strings.Contains(stop, `systemctl disable -q --no-reload --now "$u"`) {
		t.Errorf("app stop mail:\n%s", stop)
	}
	report := strings.Join(recordFlowOf(t, opsTOML, "stop", func(o *engine.Options) { o.Process = "report" }), "\n")
	if !strings.Contains(report, "systemctl stop shop-report.timer") {
		t.Errorf("app stop report:\n%s", report)
	}
	restart := strings.Join(recordFlowOf(t, opsTOML, "restart", nil), "\n")
	if !strings.Contains(restart, "export TIMERS=shop-report.timer") || strings.Contains(restart, "restart shop-report.timer") {
		t.Errorf("app restart must start the timer, never restart it:\n%s", restart)
	}
	down := strings.Join(recordFlowOf(t, opsTOML, "down", nil), "\n")
	// Down removes every shape of each process (the deployed one may not be
	// raijin.toml's), and the units the versions kept, only raijin's own.
	if !strings.Contains(down, "shop-mail.timer shop-mail@.service shop-mail.service shop-report.timer shop-report@.service shop-report.service") ||
		!strings.Contains(down, `for x in $(instances "$u")`) || !strings.Contains(down, `/v*/.units/*`) ||
		!strings.Contains(down, `&& mine "$u" || continue`) {
		t.Errorf("down:\n%s", down)
	}
}

// A deploy tells the install the shape raijin.toml gives each worker
// (BASES), so that the units of a process's old shape stop first; the
// restart skips a worker the installed version runs in another shape.
func TestInstallKnowsShapes(t *testing.T) {
	cmds := recordFlowOf(t, opsTOML, "deploy", nil)
	i := index(cmds, "export BASES=")
	if i < 0 || !strings.Contains(cmds[i], "shop-report:timer shop-mail:replicas") ||
		!strings.Contains(cmds[i], `systemctl disable -q --now "$b.service"`) {
		t.Errorf("install:\n%s", strings.Join(cmds, "\n"))
	}
	if j := index(cmds, "export TIMERS=shop-report.timer"); j < 0 || !strings.Contains(cmds[j], "export UNIT_DIR=") {
		t.Errorf("start timers must skip a timer not installed:\n%s", strings.Join(cmds, "\n"))
	}
}
