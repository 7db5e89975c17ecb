package e2e

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noRelease is the Go app's build without release_command: the scheduled
// job's runs are then the only lines of migrations.log.
func noRelease() string {
	return fmt.Sprintf("build_command = \"go -C %s build -ldflags \\\"-X main.version=$RAIJIN_VERSION\\\" -o $PWD/dist/goapp .\"\ndistfile = \"dist/goapp\"\n", goappSrc)
}

// setProcs replaces the [processes] table's body in raijin.toml.
func (p *Project) setProcs(body string) {
	p.t.Helper()
	toml := readFile(p.t, p.Dir+"/raijin.toml")
	start := strings.Index(toml, "[processes]\n") + len("[processes]\n")
	end := strings.Index(toml, "\n[[hosts]]")
	p.Write("raijin.toml", toml[:start]+body+"\n"+toml[end:], 0o644)
}

// runs is the scheduled job's runs so far (the lines it wrote), "" before
// the first.
func (p *Project) runs(h *TestHost) string {
	out, _ := h.Try("sudo cat " + p.StateDir(h) + "/migrations.log 2>/dev/null")
	return out
}

// A scheduled process: a timer and a one-shot service, hardened, run as
// the app's user with its env; not run by a deploy; a run after a deploy
// runs the new version; app status shows its last run and next; app logs
// shows its runs; it goes when it leaves [processes]; a schedule the
// server's systemd refuses stops the deploy before anything changes.
func TestScheduledProcess(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "sched", Hosts: []*TestHost{h}, Head: noRelease()})
	timer, service := p.App+"-report.timer", p.App+"-report.service"
	// The first run a little after the deploy: one event, at a second
	// picked now.
	at := time.Now().UTC().Add(25 * time.Second).Truncate(time.Second)
	p.setProcs(fmt.Sprintf("web = %q\n\n[processes.report]\ncommand = \"%s migrate\"\nschedule = %q\n", p.App, p.App, at.Format("2006-01-02 15:04:05")+" UTC"))
	p.MustRaijin("deploy")

	if got := unitState(t, h, timer, service); got != timer+": active file\n"+service+": inactive file\n" {
		t.Errorf("after the deploy:\n%s", got)
	}
	if got := p.runs(h); got != "" {
		t.Errorf("the deploy ran the scheduled job: %q", got)
	}
	if out := h.Root(t, "systemctl list-timers --all --no-pager "+timer); !strings.Contains(out, timer) || !strings.Contains(out, service) {
		t.Errorf("systemctl list-timers does not list %s:\n%s", timer, out)
	}
	checkHardened(t, h, service)
	// The deploy started the timer, which ran nothing: no last run.
	if r := p.MustRaijin("app", "status"); !strings.Contains(r.Stdout, "last run never; next ") {
		t.Errorf("app status before the first run should say it never ran:\n%s", r.Stdout)
	}

	// The timer fires at its time.
	deadline := at.Add(20 * time.Second)
	for p.runs(h) == "" && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	if got := p.runs(h); got != "migrated to 1.0.0\n" {
		t.Fatalf("the timer's run at %s: %q", at.Format(time.TimeOnly), got)
	}
	fired := h.Root(t, "systemctl show -p ExecMainStartTimestamp --value "+service)
	t.Logf("scheduled for %s UTC, ran at %s", at.Format(time.TimeOnly), fired)
	if owner := h.Root(t, "stat -c %U "+p.StateDir(h)+"/migrations.log"); strings.TrimSpace(owner) != p.App {
		t.Errorf("the run wrote as %q, not as the app's user %s", owner, p.App)
	}
	r := p.MustRaijin("app", "status")
	if !strings.Contains(r.Stdout, timer) || !regexpMatch(`last run .+: success; next `, r.Stdout) {
		t.Errorf("app status should show the timer's last run and next:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout, service) {
		t.Errorf("app status lists the one-shot service, inactive between runs, as a unit of its own:\n%s", r.Stdout)
	}
	t.Logf("app status:\n%s", r.Stdout)
	if r := p.MustRaijin("app", "logs", "report"); !strings.Contains(r.Stdout, "Finished "+service) && !strings.Contains(r.Stdout, service+": Deactivated successfully") {
		t.Errorf("app logs report should show the run:\n%s", r.Stdout)
	}

	// A deploy runs nothing; the next run uses the new version. A run
	// started by hand (the timer's service) measures what a run costs.
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	if got := p.runs(h); got != "migrated to 1.0.0\n" {
		t.Errorf("the deploy of 2.0.0 ran the job: %q", got)
	}
	start := time.Now()
	h.Root(t, "systemctl start "+service)
	t.Logf("a scheduled run (systemctl start %s, a one-shot that writes a line, waited for): %s", service, time.Since(start).Round(time.Millisecond))
	t.Logf("the run itself (systemd's ExecMainStartTimestamp to ExecMainExitTimestamp, µs): %s", h.Root(t, "systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic "+service))
	if got := p.runs(h); got != "migrated to 1.0.0\nmigrated to 2.0.0\n" {
		t.Errorf("a run after the deploy of 2.0.0: %q", got)
	}

	// app restart (every process) starts the timer but runs nothing; app
	// stop report stops the timer, app start report starts it again.
	p.MustRaijin("app", "restart")
	if got := p.runs(h); got != "migrated to 1.0.0\nmigrated to 2.0.0\n" {
		t.Errorf("app restart ran the job: %q", got)
	}
	p.MustRaijin("app", "stop", "report")
	if got := unitState(t, h, timer); got != timer+": inactive file\n" {
		t.Errorf("after app stop report: %s", got)
	}
	p.MustRaijin("app", "start", "report")
	if got := unitState(t, h, timer); got != timer+": active file\n" {
		t.Errorf("after app start report: %s", got)
	}
	if got := p.runs(h); got != "migrated to 1.0.0\nmigrated to 2.0.0\n" {
		t.Errorf("app stop/start report ran the job: %q", got)
	}

	// A changed schedule reaches the running timer at the next deploy,
	// and runs nothing then.
	next := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	p.Write("raijin.toml", regexpReplace(readFile(t, p.Dir+"/raijin.toml"), `schedule = ".*"`, fmt.Sprintf("schedule = %q", next.Format("2006-01-02 15:04:05")+" UTC")), 0o644)
	p.MustRaijin("deploy", "--set-version", "2.0.1")
	if got := p.runs(h); got != "migrated to 1.0.0\nmigrated to 2.0.0\n" {
		t.Errorf("the deploy of a new schedule ran the job: %q", got)
	}
	if r := p.MustRaijin("app", "status"); !strings.Contains(r.Stdout, "next "+next.Format("Mon 2006-01-02 15:04:05")+" UTC") {
		t.Errorf("app status should show the new schedule's next run, %s:\n%s", next, r.Stdout)
	}

	// A run that fails makes app status exit 1, naming it (the timer stays
	// active); the next run that succeeds makes it exit 0 again.
	env := p.AppDir(h) + "/.env"
	h.Root(t, "echo FAIL_MIGRATE=1 >> "+env)
	if out, err := h.ssh("root", "systemctl start "+service); err == nil {
		t.Errorf("a run with FAIL_MIGRATE=1 succeeded:\n%s", out)
	}
	h.Root(t, "sed -i '/^FAIL_MIGRATE=1$/d' "+env)
	r = p.Raijin("app", "status")
	if r.Code != 1 || !regexpMatch(`last run .+: exit-code; next `, r.Stdout) || !strings.Contains(r.Stderr, "the last run of 1 scheduled process(es) failed") {
		t.Errorf("app status after a failed run should exit 1 and say so: %s", r)
	}
	if r := p.Raijin("--json", "app", "status"); r.Code != 1 || !strings.Contains(r.Stdout, `"last_result": "exit-code"`) {
		t.Errorf("app status --json after a failed run: %s", r)
	}
	h.Root(t, "systemctl start "+service)
	if r := p.MustRaijin("app", "status"); !regexpMatch(`last run .+: success; next `, r.Stdout) {
		t.Errorf("app status after the next run succeeded:\n%s", r.Stdout)
	}

	// app scale refuses a scheduled process, naming it.
	if r := p.Raijin("app", "scale", "report", "2"); r.Code != 2 || !strings.Contains(r.Stderr, "app scale report: report runs on a schedule") {
		t.Errorf("app scale report 2: %s", r)
	}
	// A bad schedule: refused at load time, with file, line and key.
	good := readFile(t, p.Dir+"/raijin.toml")
	p.Write("raijin.toml", regexpReplace(good, `schedule = ".*"`, `schedule = "every tuesday-ish"`), 0o644)
	if r := p.Raijin("deploy", "--set-version", "2.1.0"); r.Code != 2 || !regexpMatch(`raijin.toml:\d+: processes.report.schedule: "every tuesday-ish" is not a calendar event`, r.Stderr) {
		t.Errorf("deploy with a bad schedule: %s", r)
	}
	// One that only the server's systemd refuses (an unknown time zone):
	// the deploy stops before the switch, and 2.0.0 still serves.
	p.Write("raijin.toml", regexpReplace(good, `schedule = ".*"`, `schedule = "*-*-* 03:00 Mars/Olympus"`), 0o644)
	r = p.Raijin("deploy", "--set-version", "2.2.0")
	if r.Code == 0 || !strings.Contains(r.Stderr, `processes.report.schedule: the server's systemd does not take "*-*-* 03:00 Mars/Olympus"`) {
		t.Errorf("deploy with a schedule systemd refuses: %s", r)
	}
	if code, body := Get(t, p.SiteURL(h)); code != 200 || !strings.Contains(body, "goapp 2.0.1") {
		t.Errorf("after the refused schedule: %d %q", code, body)
	}
	t.Logf("a schedule the server refuses:\n%s", r.Stderr)

	// Out of [processes]: the timer and its service go.
	p.Write("raijin.toml", good, 0o644)
	p.setProcs(fmt.Sprintf("web = %q\n", p.App))
	r = p.MustRaijin("deploy", "--set-version", "3.0.0")
	if got := unitState(t, h, timer, service); got != timer+": inactive nofile\n"+service+": inactive nofile\n" {
		t.Errorf("after report left [processes]:\n%s\n%s", got, r.Stderr)
	}
	if out := h.Root(t, "systemctl list-timers --all --no-pager"); strings.Contains(out, timer) {
		t.Errorf("systemctl list-timers still lists %s:\n%s", timer, out)
	}
}

// replicaStarts is each running instance of base@.service: its number ->
// when it entered active (monotonic µs) and its main process's user.
func replicaStarts(t *testing.T, h *TestHost, base string, n int) (starts []int64, users []string) {
	t.Helper()
	for i := 1; i <= n; i++ {
		u := fmt.Sprintf("%s@%d.service", base, i)
		out := h.Root(t, "systemctl show -p ActiveEnterTimestampMonotonic --value "+u+"; ps -o user= -p $(systemctl show -p MainPID --value "+u+")")
		f := strings.Fields(out)
		if len(f) != 2 {
			t.Fatalf("%s: %q", u, out)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		must(t, err)
		starts, users = append(starts, v), append(users, f[1])
	}
	return starts, users
}

// activeReplicas lists the active instances of base@.service, sorted.
// replicasUp checks that the n replicas of base are active (want) and run
// as the app's user, and returns when each started.
func replicasUp(t *testing.T, h *TestHost, p *Project, base string, n int, want string) []int64 {
	t.Helper()
	if got := activeReplicas(t, h, base); got != want {
		t.Fatalf("the replicas after the deploy: %q, want %q", got, want)
	}
	starts, users := replicaStarts(t, h, base, n)
	for i, u := range users {
		if u != p.App {
			t.Errorf("replica %d runs as %q, not as the app's user %s", i+1, u, p.App)
		}
	}
	return starts
}

func activeReplicas(t *testing.T, h *TestHost, base string) string {
	t.Helper()
	out := h.Root(t, "systemctl list-units --state=active --plain --no-legend '"+base+"@*.service' | awk '{print $1}'")
	f := strings.Fields(out)
	sort.Strings(f)
	return strings.Join(f, " ")
}

// Replicas: N instances of a template unit, as the app's user, hardened; a
// deploy restarts them one at a time, each up before the next; app scale
// changes the count without a new version, the next deploy goes back to
// raijin.toml's; bad counts are refused; they go when the process does.
func TestReplicas(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "repl", Hosts: []*TestHost{h}})
	base := p.App + "-mail"
	p.setProcs(fmt.Sprintf("web = %q\nmail = { command = \"sleep 100000\", replicas = 3 }\n", p.App))
	p.MustRaijin("deploy")
	all3 := fmt.Sprintf("%[1]s@1.service %[1]s@2.service %[1]s@3.service", base)
	before := replicasUp(t, h, p, base, 3, all3)
	checkHardened(t, h, base+"@1.service")
	if r := p.MustRaijin("app", "status"); !strings.Contains(r.Stdout, base+"@3.service") {
		t.Errorf("app status should list the replicas:\n%s", r.Stdout)
	}

	// A deploy restarts them one at a time: each starts at least the
	// settle (1 s) after the one before it.
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	after, _ := replicaStarts(t, h, base, 3)
	for i := range after {
		if after[i] <= before[i] {
			t.Errorf("replica %d was not restarted by the deploy", i+1)
		}
		if i > 0 && after[i]-after[i-1] < 900_000 {
			t.Errorf("replica %d started %d ms after replica %d: not one at a time", i+1, (after[i]-after[i-1])/1000, i)
		}
	}
	t.Logf("replica restarts during the deploy, ms after the first: %d, %d", (after[1]-after[0])/1000, (after[2]-after[0])/1000)

	// app scale: up, then down, without a new version; it says raijin.toml
	// keeps its count.
	start := time.Now()
	r := p.MustRaijin("app", "scale", "mail", "5")
	t.Logf("app scale mail 5 (from 3): %s", time.Since(start).Round(time.Millisecond))
	if got, want := activeReplicas(t, h, base), all3+fmt.Sprintf(" %[1]s@4.service %[1]s@5.service", base); got != want {
		t.Errorf("after app scale mail 5: %q, want %q", got, want)
	}
	t.Logf("app scale mail 5:\n%s", r.Stderr)
	if !strings.Contains(r.Stderr, "says replicas = 3 for mail: the next deploy runs 3 again") {
		t.Errorf("app scale should say that raijin.toml keeps 3:\n%s", r.Stderr)
	}
	if r := p.MustRaijin("app", "status"); !strings.Contains(r.Stdout, base+"@5.service") {
		t.Errorf("app status should list the 5 replicas:\n%s", r.Stdout)
	}
	if got := p.MustRaijin("releases").Stdout; !strings.Contains(got, "2.0.0") {
		t.Errorf("app scale changed the versions:\n%s", got)
	}
	start = time.Now()
	p.MustRaijin("app", "scale", "mail", "2")
	t.Logf("app scale mail 2 (from 5): %s", time.Since(start).Round(time.Millisecond))
	if got, want := activeReplicas(t, h, base), fmt.Sprintf("%[1]s@1.service %[1]s@2.service", base); got != want {
		t.Errorf("after app scale mail 2: %q, want %q", got, want)
	}
	// app stop stops every replica, and disables those app scale added
	// beyond raijin.toml's count (a boot starts what app start would); app
	// start starts raijin.toml's count; app restart restarts them one at a
	// time.
	p.MustRaijin("app", "scale", "mail", "4")
	p.MustRaijin("app", "stop", "mail")
	if got := activeReplicas(t, h, base); got != "" {
		t.Errorf("after app stop mail: %q", got)
	}
	out, _ := h.Try("systemctl is-enabled " + base + "@3.service " + base + "@4.service")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "enabled" || f[1] == "enabled" {
		t.Errorf("after app stop mail, is-enabled @3 @4: %q, want enabled, not enabled", out)
	}
	p.MustRaijin("app", "start", "mail")
	if got := activeReplicas(t, h, base); got != all3 {
		t.Errorf("after app start mail: %q, want %q", got, all3)
	}
	before, _ = replicaStarts(t, h, base, 3)
	p.MustRaijin("app", "restart", "mail")
	after, _ = replicaStarts(t, h, base, 3)
	for i := range after {
		if after[i] <= before[i] || (i > 0 && after[i]-after[i-1] < 900_000) {
			t.Errorf("app restart mail: replica %d not restarted one at a time (%v, before %v)", i+1, after, before)
		}
	}
	p.MustRaijin("app", "scale", "mail", "2")

	// The next deploy runs raijin.toml's count.
	p.MustRaijin("deploy", "--set-version", "3.0.0")
	if got := activeReplicas(t, h, base); got != all3 {
		t.Errorf("the deploy after app scale: %q, want %q", got, all3)
	}

	// Refused, naming the argument.
	for _, c := range []struct{ args, want string }{
		{"nope 2", `app scale nope: ` + "" + `{FILE} has no process "nope"`},
		{"mail 0", "app scale mail 0: COUNT 0: a process runs 1 instance or more"},
		{"mail -1", ""},
		{"mail two", ""},
		{"web 2", "app scale web: web runs in one blue/green slot at a time"},
	} {
		r := p.Raijin(append([]string{"app", "scale"}, strings.Fields(c.args)...)...)
		want := strings.ReplaceAll(c.want, "{FILE}", "raijin.toml")
		if r.Code != 2 || !strings.Contains(r.Stderr, want) {
			t.Errorf("app scale %s: want exit 2 and %q: %s", c.args, want, r)
		}
	}
	p.setProcs(fmt.Sprintf("web = %q\nmail = { command = \"sleep 100000\", replicas = 0 }\n", p.App))
	if r := p.Raijin("deploy"); r.Code != 2 || !regexpMatch(`raijin.toml:\d+: processes.mail.replicas: 0: a process runs 1 instance or more`, r.Stderr) {
		t.Errorf("replicas = 0: %s", r)
	}

	// Out of [processes]: every instance and the template go.
	p.setProcs(fmt.Sprintf("web = %q\n", p.App))
	p.MustRaijin("deploy", "--set-version", "4.0.0")
	if got := activeReplicas(t, h, base); got != "" {
		t.Errorf("replicas still running after mail left [processes]: %q", got)
	}
	if got := unitState(t, h, base+"@.service"); !strings.Contains(got, "nofile") {
		t.Errorf("the template is still installed: %s", got)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func regexpReplace(s, re, with string) string {
	return regexp.MustCompile(re).ReplaceAllLiteralString(s, with)
}

// raijin down stops and removes a scheduled process's timer and service
// (and the timer's stamp) and every replica with its template.
func TestDownRemovesTimersAndReplicas(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "opsdown", Hosts: []*TestHost{h}, Head: noRelease()})
	p.setProcs(fmt.Sprintf("web = %q\nmail = { command = \"sleep 100000\", replicas = 2 }\nreport = { command = \"%s migrate\", schedule = \"hourly\" }\n", p.App, p.App))
	p.MustRaijin("deploy")
	base, timer := p.App+"-mail", p.App+"-report.timer"
	if got := activeReplicas(t, h, base); got != base+"@1.service "+base+"@2.service" {
		t.Fatalf("after the deploy: %q", got)
	}
	if got := unitState(t, h, timer); got != timer+": active file\n" {
		t.Fatalf("after the deploy: %s", got)
	}
	h.Root(t, "test -e /var/lib/systemd/timers/stamp-"+timer)
	// raijin.toml changed since the deploy: mail has no replicas, report
	// no schedule, and a process never deployed, other, has a unit file of
	// its name that another app's (shop-x's y, say) could have: down goes
	// by what was deployed, and leaves what raijin did not make for it.
	p.setProcs(fmt.Sprintf("web = %q\nmail = \"sleep 100000\"\nreport = \"%s migrate\"\nother = \"sleep 1\"\n", p.App, p.App))
	foreign := []string{"/etc/systemd/system/" + p.App + "-other.service", "/etc/systemd/system/" + p.App + "-other@.service"}
	for _, f := range foreign {
		h.Root(t, "printf '# Generated by raijin for "+p.App+"-other (process web).\\n[Service]\\nExecStart=/bin/true\\n' > "+f)
		defer h.Try("sudo rm -f " + f)
	}
	p.MustRaijin("down", "-y")
	for _, f := range foreign {
		if _, ok := h.Try("test -e " + f); !ok {
			t.Errorf("down deleted another app's unit %s", f)
		}
	}
	if got := activeReplicas(t, h, base); got != "" {
		t.Errorf("replicas still running after down: %q", got)
	}
	if got := unitState(t, h, timer, p.App+"-report.service", base+"@.service"); strings.Count(got, "nofile") != 3 || strings.Contains(got, ": active") {
		t.Errorf("after down:\n%s", got)
	}
	if _, ok := h.Try("test -e /var/lib/systemd/timers/stamp-" + timer); ok {
		t.Errorf("the timer's stamp is still there after down")
	}
	if out := h.Root(t, "ls /etc/systemd/system/multi-user.target.wants/ /etc/systemd/system/timers.target.wants/"); strings.Contains(out, p.App+"-") {
		t.Errorf("links left after down:\n%s", out)
	}
}

// A process that changes shape keeps no unit of its old shape: plain (a
// service that runs all the time) to scheduled stops and disables the
// service before the one-shot takes its file, and back to plain removes
// the timer and runs the service again.
func TestProcessChangesShape(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "shape", Hosts: []*TestHost{h}, Head: noRelease()})
	timer, service := p.App+"-job.timer", p.App+"-job.service"
	enabled := func() string {
		out, _ := h.Try("systemctl is-enabled " + service + " 2>/dev/null; ls /etc/systemd/system/multi-user.target.wants/ | grep -c " + service)
		return strings.ReplaceAll(strings.TrimSpace(out), "\n", " ")
	}
	p.setProcs(fmt.Sprintf("web = %q\njob = \"sleep 100000\"\n", p.App))
	p.MustRaijin("deploy")
	if got := unitState(t, h, service, timer); got != service+": active file\n"+timer+": inactive nofile\n" {
		t.Fatalf("plain:\n%s", got)
	}
	p.setProcs(fmt.Sprintf("web = %q\n\n[processes.job]\ncommand = \"sleep 100000\"\nschedule = \"2099-01-01 00:00:00 UTC\"\n", p.App))
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	if got := unitState(t, h, service, timer); got != service+": inactive file\n"+timer+": active file\n" {
		t.Errorf("plain to scheduled: the old service still runs:\n%s", got)
	}
	if got := enabled(); got != "static 0" && got != "disabled 0" {
		t.Errorf("plain to scheduled: the one-shot service is still enabled (is-enabled, wants links): %s", got)
	}
	p.setProcs(fmt.Sprintf("web = %q\njob = \"sleep 100000\"\n", p.App))
	p.MustRaijin("deploy", "--set-version", "3.0.0")
	if got := unitState(t, h, service, timer); got != service+": active file\n"+timer+": inactive nofile\n" {
		t.Errorf("scheduled to plain:\n%s", got)
	}
	if got := enabled(); got != "enabled 1" {
		t.Errorf("scheduled to plain: the service is not enabled: %s", got)
	}
	// A rollback goes by the shapes of the version it restores, not
	// raijin.toml's: 2.0.0 ran job on its schedule.
	p.MustRaijin("rollback", "-y", "2.0.0")
	if got := unitState(t, h, service, timer); got != service+": inactive file\n"+timer+": active file\n" {
		t.Errorf("rollback to the scheduled version:\n%s", got)
	}
	if got := enabled(); got != "static 0" && got != "disabled 0" {
		t.Errorf("rollback to the scheduled version: the one-shot service is enabled: %s", got)
	}
}

// A deploy that fails after its workers started leaves none of the units
// it added: the undo stops and removes a new timer and new replicas.
func TestUndoRemovesNewTimersAndReplicas(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "undonew", Hosts: []*TestHost{h}, Head: noRelease()})
	p.setProcs(fmt.Sprintf("web = %q\n", p.App))
	p.MustRaijin("deploy")
	base, timer := p.App+"-mail", p.App+"-report.timer"
	// The new version's web process exits at once: the deploy fails at
	// its check, after the workers started.
	p.setProcs("web = \"false\"\nmail = { command = \"sleep 100000\", replicas = 2 }\nreport = { command = \"sleep 1\", schedule = \"hourly\" }\n")
	if r := p.Raijin("deploy", "--set-version", "2.0.0"); r.Code == 0 {
		t.Fatalf("the deploy with a failing web process succeeded:\n%s", r.Stderr)
	}
	if got := activeReplicas(t, h, base); got != "" {
		t.Errorf("the undo left the new replicas running: %q", got)
	}
	if got := unitState(t, h, timer, p.App+"-report.service", base+"@.service"); strings.Count(got, "nofile") != 3 || strings.Contains(got, ": active") {
		t.Errorf("the undo left the new units:\n%s", got)
	}
	if out := h.Root(t, "ls /etc/systemd/system/multi-user.target.wants/ /etc/systemd/system/timers.target.wants/"); strings.Contains(out, p.App+"-") {
		t.Errorf("links left after the undo:\n%s", out)
	}
}

// The same for the Python app: a scheduled job runs its console script from
// the version's environment, as the app's user, with the app's env, and not
// at deploy time; replicas of a Python process run as the app's user and a
// deploy restarts them one at a time.
func TestScheduledProcessAndReplicasPython(t *testing.T) {
	h := host(t, 0)
	p := NewPyProject(t, ProjectSpec{App: "pysched", Hosts: []*TestHost{h}})
	// No release_command: the job's runs are the only lines in migrations.log.
	toml := readFile(t, p.Dir+"/raijin.toml")
	p.Write("raijin.toml", strings.Replace(toml, "release_command = \"pyapp migrate\"\n", "", 1), 0o644)
	timer, service, base := p.App+"-report.timer", p.App+"-report.service", p.App+"-mail"
	p.setProcs("web = \"pyapp serve\"\n" +
		"report = { command = \"pyapp migrate\", schedule = \"*-*-* 03:17:00\" }\n" +
		"mail = { command = \"python3 -c 'import time; time.sleep(100000)'\", replicas = 2 }\n")
	p.MustRaijin("deploy")
	if got := unitState(t, h, timer, service); got != timer+": active file\n"+service+": inactive file\n" {
		t.Errorf("after the deploy:\n%s", got)
	}
	if got := p.runs(h); got != "" {
		t.Errorf("the deploy ran the scheduled job: %q", got)
	}
	checkHardened(t, h, service)
	// A run (the timer's service, started as the timer would) uses the
	// version's environment and writes as the app's user.
	h.Root(t, "systemctl start "+service)
	if got := p.runs(h); got != "migrated to 1.0.0\n" {
		t.Fatalf("the Python job's run: %q", got)
	}
	if owner := h.Root(t, "stat -c %U "+p.StateDir(h)+"/migrations.log"); strings.TrimSpace(owner) != p.App {
		t.Errorf("the run wrote as %q, not as the app's user %s", owner, p.App)
	}
	if r := p.MustRaijin("app", "status"); !regexpMatch(`last run .+: success; next `, r.Stdout) {
		t.Errorf("app status should show the Python job's last run:\n%s", r.Stdout)
	}
	before := replicasUp(t, h, p, base, 2, fmt.Sprintf("%[1]s@1.service %[1]s@2.service", base))
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	after, _ := replicaStarts(t, h, base, 2)
	if after[0] <= before[0] || after[1] <= before[1] || after[1]-after[0] < 900_000 {
		t.Errorf("the deploy should restart the Python replicas one at a time: before %v, after %v", before, after)
	}
	if got := p.runs(h); got != "migrated to 1.0.0\n" {
		t.Errorf("the deploy of 1.1.0 ran the job: %q", got)
	}
	h.Root(t, "systemctl start "+service)
	if got := p.runs(h); got != "migrated to 1.0.0\nmigrated to 1.1.0\n" {
		t.Errorf("a run after the deploy of 1.1.0 should run 1.1.0: %q", got)
	}
}
