package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// auditLine is one line of {app_dir}/.audit.jsonl, as the tests read it.
type auditLine struct {
	Time     time.Time      `json:"time"`
	App      string         `json:"app"`
	Command  string         `json:"command"`
	User     string         `json:"user"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Result   string         `json:"result"`
	Phase    string         `json:"phase"`
	Error    string         `json:"error"`
	Duration *float64       `json:"duration_s"`
	Details  map[string]any `json:"details"`
}

func readAudit(t *testing.T, h *TestHost, file string) []auditLine {
	t.Helper()
	var out []auditLine
	for _, l := range strings.Split(strings.TrimSpace(h.Run(t, "cat "+file)), "\n") {
		var a auditLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q: %v", file, l, err)
		}
		if a.Time.IsZero() || a.User == "" || a.Duration == nil || a.Result == "" {
			t.Errorf("%s: a line without time, user, duration or result: %q", file, l)
		}
		out = append(out, a)
	}
	return out
}

// summary is "command from->to result" of each audit line.
func summary(lines []auditLine) string {
	var s []string
	for _, a := range lines {
		s = append(s, fmt.Sprintf("%s %s->%s %s", a.Command, a.From, a.To, a.Result))
	}
	return strings.Join(s, "\n")
}

func (p *Project) setTOML(t *testing.T, old, new string) {
	t.Helper()
	text := readFile(t, p.Dir+"/raijin.toml")
	if !strings.Contains(text, old) {
		t.Fatalf("raijin.toml has no %q", old)
	}
	p.Write("raijin.toml", strings.Replace(text, old, new, 1), 0o644)
}

// A held deploy lock stops every command that changes the app with exit 3,
// naming the holder; `lock status` shows it, `lock release` removes it, and
// --lock-wait waits for it.
func TestLifecycleLock(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "lock", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")
	dir := p.AppDir(h)

	if r := p.MustRaijin("lock", "status"); !strings.Contains(r.Stdout, h.Name+": free") {
		t.Errorf("lock status with no lock: %s", r)
	}
	holder := `{"user":"alice","machine":"build-box","pid":4242,"since":"2026-01-02T03:04:05Z","command":"deploy","version":"9.9.9","token":"x"}`
	h.Run(t, fmt.Sprintf("mkdir %s/.lock && printf '%%s\\n' '%s' > %s/.lock/info", dir, holder, dir))

	for _, args := range [][]string{
		{"deploy", "--set-version", "1.1.0"}, {"redeploy", "--set-version", "1.1.0"},
		{"rollback", "-y", "1.0.0"}, {"prune"}, {"down", "-y"},
	} {
		r := p.Raijin(args...)
		if r.Code != 3 {
			t.Fatalf("raijin %s with the lock held: want exit 3: %s", args[0], r)
		}
		for _, want := range []string{"held by alice@build-box", "pid 4242", "`raijin deploy` of 9.9.9", "since 2026-01-02T03:04:05Z", "raijin lock release"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("raijin %s: the error lacks %q:\n%s", args[0], want, r.Stderr)
			}
		}
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("with the lock held, GET / = %q, want 1.0.0 untouched", body)
	}

	if r := p.MustRaijin("lock", "status"); !strings.Contains(r.Stdout, h.Name+": held by alice@build-box (pid 4242, `raijin deploy` of 9.9.9)") {
		t.Errorf("lock status: %s", r)
	}
	if r := p.MustRaijin("lock", "release"); !strings.Contains(r.Stdout, h.Name+": released the lock held by alice@build-box") {
		t.Errorf("lock release: %s", r)
	}
	if out, ok := h.Try("test -e " + dir + "/.lock"); ok {
		t.Fatalf("the lock is still there after lock release: %s", out)
	}
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.1.0") {
		t.Errorf("after lock release and a deploy, GET / = %q, want 1.1.0", body)
	}

	// --lock-wait: the holder lets go after 5 s (prune: no build to wait for first).
	h.Run(t, fmt.Sprintf("mkdir %[1]s/.lock && echo '%[2]s' > %[1]s/.lock/info && { nohup sh -c 'sleep 5; rm -rf %[1]s/.lock' >/dev/null 2>&1 </dev/null & }", dir, holder))
	r := p.MustRaijin("prune", "--lock-wait", "30s")
	if !strings.Contains(r.Stderr, "waiting up to 30s for the deploy lock, held by alice@build-box") {
		t.Errorf("prune --lock-wait did not wait for the lock:\n%s", r.Stderr)
	}
	p.MustRaijin("deploy", "--set-version", "1.2.0")
	if out := h.Run(t, "ls -a "+dir); strings.Contains(out, ".lock") {
		t.Errorf("a lock is left after the deploys:\n%s", out)
	}
	// A real deploy in progress: prune and rollback wait their turn.
	p.setTOML(t, `release_command = "`, `release_command = "touch \"$STATE_DIRECTORY/release-started\"; sleep 8; `)
	done := make(chan Result)
	go func() { done <- p.RaijinCtx(context.Background(), nil, "deploy", "--set-version", "1.3.0") }()
	for i := 0; i < 300; i++ {
		if _, ok := h.Try("sudo test -e " + p.StateDir(h) + "/release-started"); ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, args := range [][]string{{"prune", "--keep", "1"}, {"rollback", "-y"}} {
		if r := p.Raijin(args...); r.Code != 3 || !strings.Contains(r.Stderr, "`raijin deploy` of 1.3.0") {
			t.Errorf("raijin %s during a deploy: want exit 3 naming that deploy: %s", args[0], r)
		}
	}
	if r := <-done; r.Code != 0 {
		t.Fatalf("the deploy that held the lock failed: %s", r)
	}
	if got := h.Run(t, "cd "+dir+" && head -1 .versions && ls -d v1.3.0"); got != "1.3.0\nv1.3.0\n" {
		t.Errorf("after the deploy: %q", got)
	}

	// Commands that did not get the lock write no audit line; lock release
	// writes one.
	if got := summary(readAudit(t, h, dir+"/.audit.jsonl")); got != "deploy ->1.0.0 ok\nlock release -> ok\ndeploy 1.0.0->1.1.0 ok\nprune 1.1.0-> ok\ndeploy 1.1.0->1.2.0 ok\ndeploy 1.2.0->1.3.0 ok" {
		t.Errorf("audit log:\n%s", got)
	}
}

// Build, transfer, install or release_command failing: the previous version
// keeps serving through Caddy, and the error says so; failures after the
// switch say what the host is left with; the audit log records each.
func TestLifecycleFailures(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "fail", Hosts: []*TestHost{h}, Webextra: `health_check_timeout = "5s"`})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")
	dir := p.AppDir(h)

	p.setTOML(t, `release_command = "`+p.App+` migrate"`, `release_command = "FAIL_MIGRATE=1 `+p.App+` migrate"`)
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "phase release:") || !strings.Contains(r.Stderr, "the previous version 1.0.0 was restored and is serving") {
		t.Errorf("failing release_command: want exit 1 saying 1.0.0 serves: %s", r)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed release GET / = %q, want 1.0.0 through Caddy", body)
	}
	p.setTOML(t, `release_command = "FAIL_MIGRATE=1 `+p.App+` migrate"`, `release_command = "`+p.App+` migrate"`)

	p.setTOML(t, `build_command = "`, `build_command = "exit 7; `)
	r = p.Raijin("deploy", "--set-version", "3.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "phase build:") || !strings.Contains(r.Stderr, "no host was touched") {
		t.Errorf("failing build: want exit 1 saying no host was touched: %s", r)
	}
	p.setTOML(t, `build_command = "exit 7; `, `build_command = "`)

	// The upload cannot land: v4.0.0 is a file, not a directory.
	h.Run(t, "touch "+dir+"/v4.0.0")
	r = p.Raijin("deploy", "--set-version", "4.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "phase transfer:") || !strings.Contains(r.Stderr, "nothing was switched: version 1.0.0 is still serving") {
		t.Errorf("failing upload: want exit 1 saying 1.0.0 still serves: %s", r)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed upload GET / = %q, want 1.0.0 through Caddy", body)
	}
	if got := h.Run(t, "cd "+dir+" && readlink "+p.App+" && cat .versions"); got != "v1.0.0/goapp\n1.0.0\n" {
		t.Errorf("after the failures: %q, want 1.0.0 current", got)
	}

	// After the switch: the new version does not start; 1.0.0 is restarted.
	p.setTOML(t, "PORT=", "FAIL_START=1\nPORT=")
	r = p.Raijin("deploy", "--set-version", "5.0.0")
	if r.Code != 4 || !strings.Contains(r.Stderr, "phase services:") || !strings.Contains(r.Stderr, "the previous version 1.0.0 was restored and is serving") {
		t.Errorf("a version that does not start: want exit 4 saying 1.0.0 was restored: %s", r)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed start GET / = %q, want 1.0.0 through Caddy", body)
	}
	p.setTOML(t, "FAIL_START=1\nPORT=", "PORT=")

	// Install cannot write .appenv (a directory stands in its way).
	h.Run(t, "rm -f "+dir+"/.appenv && mkdir -p "+dir+"/.appenv/in-the-way")
	r = p.Raijin("deploy", "--set-version", "5.5.0")
	// The write rides with release's round trip, before the switch: the
	// error names install, and the switch never ran.
	if r.Code != 1 || !strings.Contains(r.Stderr, "phase install:") || !strings.Contains(r.Stderr, "writing "+dir+"/.appenv failed") || !strings.Contains(r.Stderr, "1.0.0") {
		t.Errorf("a failing install: want exit 1 saying 1.0.0 serves: %s", r)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed install GET / = %q, want 1.0.0 through Caddy", body)
	}
	h.Run(t, "rm -rf "+dir+"/.appenv")

	// After the record: the new version is current and stays; the error says so.
	p.Write("deploy.lua", "local raijin = require(\"raijin\")\nraijin.after(\"record\", function(ctx) error(\"notify failed\", 0) end)\n", 0o644)
	r = p.Raijin("deploy", "--set-version", "6.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "notify failed") || !strings.Contains(r.Stderr, "version 6.0.0 is recorded in .versions and serving; nothing was switched back") {
		t.Errorf("a failure after record: want exit 1 saying 6.0.0 serves: %s", r)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 6.0.0") {
		t.Errorf("after a failure past the record GET / = %q, want 6.0.0", body)
	}

	audit := readAudit(t, h, dir+"/.audit.jsonl")
	if got := summary(audit); got != "deploy ->1.0.0 ok\ndeploy 1.0.0->2.0.0 failed\ndeploy 1.0.0->4.0.0 failed\ndeploy 1.0.0->5.0.0 failed\ndeploy 1.0.0->5.5.0 failed\ndeploy 1.0.0->6.0.0 failed" {
		t.Fatalf("audit log (a failed build touches no host):\n%s", got)
	}
	if audit[1].Phase != "release" || !strings.Contains(audit[1].Error, "exited 3") {
		t.Errorf("the failed release's audit line: phase %q error %q", audit[1].Phase, audit[1].Error)
	}
	if audit[2].Phase != "transfer" {
		t.Errorf("the failed upload's audit line: phase %q", audit[2].Phase)
	}
}

// Rollback switches to an older version already on the host, with its own
// .env, without a build or an upload; newer versions stay on disk; .versions
// records the new current first. Prune never deletes the current version.
// Releases and the audit log tell the story.
func TestLifecycleRollbackPruneReleases(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "roll", Hosts: []*TestHost{h}, Extra: "versions_to_keep = 10", HostEnv: "NOTE=first"})
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	p.MustRaijin("deploy")
	p.setTOML(t, "NOTE=first", "NOTE=second")
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	p.setTOML(t, "NOTE=second", "NOTE=third")
	p.MustRaijin("deploy", "--set-version", "1.2.0")

	// Without a terminal, rollback asks for -y.
	if r := p.Raijin("rollback"); r.Code != 2 || !strings.Contains(r.Stderr, "-y") {
		t.Errorf("rollback without a terminal or -y: want exit 2 naming -y: %s", r)
	}

	// To the previous version.
	r := p.MustRaijin("rollback", "-y")
	t.Logf("rollback to the previous version: %s wall time", r.Duration)
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.1.0") {
		t.Fatalf("after rollback, GET / = %q, want 1.1.0", body)
	}
	if _, note := Get(t, url+"env/NOTE"); note != "second" {
		t.Errorf("after rollback to 1.1.0 the app sees NOTE=%q, want 1.1.0's own .env (second)", note)
	}

	// To a named version.
	r = p.MustRaijin("rollback", "-y", "1.0.0")
	t.Logf("rollback to 1.0.0: %s wall time", r.Duration)
	if strings.Contains(r.Stderr, " build ") || strings.Contains(r.Stderr, " transfer ") || !strings.Contains(r.Stderr, " 0 uploads") {
		t.Errorf("rollback built or uploaded something:\n%s", r.Stderr)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Fatalf("after rollback 1.0.0, GET / = %q", body)
	}
	if _, note := Get(t, url+"env/NOTE"); note != "first" {
		t.Errorf("after rollback to 1.0.0 the app sees NOTE=%q, want first", note)
	}
	if got := h.Run(t, "cd "+dir+" && cat .versions && ls -d v* && sudo cat "+p.StateDir(h)+"/migrations.log | wc -l"); got != "1.0.0\n1.1.0\n1.2.0\nv1.0.0\nv1.1.0\nv1.2.0\n3\n" {
		t.Errorf("after the rollbacks: %q, want 1.0.0 first, newer versions still on disk, no migration run", got)
	}
	if r := p.Raijin("rollback", "-y", "7.7.7"); r.Code != 1 || !strings.Contains(r.Stderr, "version 7.7.7 is not on this host") {
		t.Errorf("rollback to an unknown version: %s", r)
	}

	r = p.MustRaijin("releases")
	t.Logf("raijin releases:\n%s", r.Stdout)
	lines := strings.Split(r.Stdout, "\n")
	if !strings.HasPrefix(lines[0], h.Name+": "+dir) {
		t.Errorf("releases: first line %q, want the host and app dir", lines[0])
	}
	for i, want := range []string{"* 1.0.0 ", "  1.1.0 ", "  1.2.0 "} {
		if len(lines) <= i+1 || !strings.HasPrefix(lines[i+1], "  "+want) {
			t.Errorf("releases line %d: want %q first:\n%s", i+1, want, r.Stdout)
		}
	}
	for _, want := range []string{"(rollback)", "(deploy)", "by ", "history:", "rollback ok by", "1.1.0 -> 1.0.0"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("releases lacks %q:\n%s", want, r.Stdout)
		}
	}

	var js []struct {
		Host     string `json:"host"`
		Releases []struct {
			Version string `json:"version"`
			Current bool   `json:"current"`
			Last    *struct {
				Command string `json:"command"`
			} `json:"last"`
		} `json:"releases"`
		Audit []auditLine `json:"audit"`
	}
	r = p.MustRaijin("releases", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &js); err != nil || len(js) != 1 || len(js[0].Releases) != 3 {
		t.Fatalf("releases --json: %v\n%s", err, r.Stdout)
	}
	if rel := js[0].Releases[0]; rel.Version != "1.0.0" || !rel.Current || rel.Last == nil || rel.Last.Command != "rollback" || len(js[0].Audit) != 6 {
		t.Errorf("releases --json: %s", r.Stdout)
	}

	// Prune keeps the current version, even when it is the oldest.
	p.MustRaijin("prune", "--keep", "2")
	if got := h.Run(t, "cd "+dir+" && cat .versions && ls -d v*"); got != "1.0.0\n1.1.0\nv1.0.0\nv1.1.0\n" {
		t.Errorf("after prune --keep 2: %q", got)
	}
	p.MustRaijin("prune", "--keep", "1")
	if got := h.Run(t, "cd "+dir+" && cat .versions && ls -d v*"); got != "1.0.0\nv1.0.0\n" {
		t.Errorf("after prune --keep 1: %q", got)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after prune, GET / = %q, want 1.0.0", body)
	}

	audit := readAudit(t, h, dir+"/.audit.jsonl")
	want := "deploy ->1.0.0 ok\ndeploy 1.0.0->1.1.0 ok\ndeploy 1.1.0->1.2.0 ok\nrollback 1.2.0->1.1.0 ok\nrollback 1.1.0->1.0.0 ok\nrollback 1.0.0->7.7.7 failed\nprune 1.0.0-> ok\nprune 1.0.0-> ok"
	if got := summary(audit); got != want {
		t.Errorf("audit log:\n%s\nwant:\n%s", got, want)
	}
	if n := len(audit); n == 8 {
		if fmt.Sprint(audit[6].Details["pruned"]) != "[1.2.0]" || fmt.Sprint(audit[7].Details["pruned"]) != "[1.1.0]" {
			t.Errorf("prune audit details: %v / %v", audit[6].Details, audit[7].Details)
		}
	}
}

// Redeploy ships new code and runs release_command, but leaves the units and
// the Caddy site alone: the new version runs with the serving version's
// unit (in the other slot), and Caddy is not reloaded.
func TestLifecycleRedeploy(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "redep", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")
	// The units and the site as they run: the serving slot's unit (a
	// redeploy starts the other slot, with the same unit), the site file.
	site := "/etc/caddy/conf.d/" + p.App + ".caddy"
	state := func() string {
		return h.Run(t, "md5sum < /etc/systemd/system/"+p.WebUnit(h)+" && stat -c '%.Y %s %n' "+site+" && md5sum "+site)
	}
	before := state()

	// Both would change on a deploy: the web command and the site (statics).
	p.setTOML(t, `web = "`+p.App+`"`, `web = "env EXTRA=on `+p.App+`"`)
	p.setTOML(t, `health_check = "/up"`, `health_check = "/up"`+"\nstatics = { \"/static/*\" = \"/tmp/\" }")
	r := p.MustRaijin("-v", "redeploy", "--set-version", "1.1.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.1.0") {
		t.Fatalf("after redeploy, GET / = %q, want 1.1.0", body)
	}
	if out := p.Migrations(t, h); !strings.Contains(out, "migrated to 1.1.0") {
		t.Errorf("redeploy did not run release_command: %q", out)
	}
	if after := state(); after != before {
		t.Errorf("redeploy changed the unit or touched the site:\nbefore %s\nafter  %s", before, after)
	}
	for _, not := range []string{"reload caddy", "conf.d"} {
		if strings.Contains(r.Stderr, not) {
			t.Errorf("redeploy ran a command with %q:\n%s", not, r.Stderr)
		}
	}
	if _, extra := Get(t, url+"env/EXTRA"); extra != "" {
		t.Errorf("after redeploy the old unit should run: EXTRA=%q", extra)
	}

	// A deploy does write them: the checks above can fail.
	p.MustRaijin("deploy", "--set-version", "1.2.0")
	if after := state(); after == before {
		t.Errorf("deploy did not change the unit and site either: the redeploy check proves nothing")
	}
	if _, extra := Get(t, url+"env/EXTRA"); extra != "on" {
		t.Errorf("after deploy the new unit should run: EXTRA=%q", extra)
	}
	audit := readAudit(t, h, p.AppDir(h)+"/.audit.jsonl")
	if got := summary(audit); got != "deploy ->1.0.0 ok\nredeploy 1.0.0->1.1.0 ok\ndeploy 1.1.0->1.2.0 ok" {
		t.Errorf("audit log:\n%s", got)
	}
}

// Down removes everything of the app (units, site, directory) and leaves
// other apps alone; --full removes Caddy once no app uses it. It runs on a
// server of its own, booted again for it: it removes Caddy, and checks
// that the apps directory is left empty (other tests leave their apps).
func TestLifecycleDown(t *testing.T) {
	h := rebootedHost(t, 1)
	a := NewProject(t, ProjectSpec{App: "downa", Hosts: []*TestHost{h}})
	b := NewProject(t, ProjectSpec{App: "downb", Hosts: []*TestHost{h}})
	a.MustRaijin("deploy")
	b.MustRaijin("deploy")

	if r := a.Raijin("down"); r.Code != 2 || !strings.Contains(r.Stderr, "-y") {
		t.Errorf("down without a terminal or -y: want exit 2 naming -y: %s", r)
	}
	r := a.MustRaijin("down", "-y", "--full")
	t.Logf("raijin down -y --full:\n%s", r.Stderr)
	if !strings.Contains(r.Stderr, "Caddy stays: other apps use it") {
		t.Errorf("down --full with another app on the host should keep Caddy:\n%s", r.Stderr)
	}
	left := h.Root(t, fmt.Sprintf(`ls /etc/systemd/system | grep -c '^%[1]s' || true
ls /etc/caddy/conf.d; test -e %[2]s && echo dir-left; systemctl list-units --all --plain --no-legend '%[1]s*' | wc -l
systemctl is-active caddy || true`, a.App, a.AppDir(h)))
	if left != "0\n"+b.App+".caddy\n0\nactive\n" {
		t.Errorf("after down of %s the host has (unit files, sites, loaded units, caddy):\n%s", a.App, left)
	}
	if _, body := Get(t, b.SiteURL(h)); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("the other app stopped answering: %q", body)
	}
	if _, err := httpClient.Get(a.SiteURL(h)); err == nil {
		t.Errorf("%s still answers after down", a.SiteURL(h))
	}
	if r := a.MustRaijin("releases"); !strings.Contains(r.Stdout, a.App+" is not deployed on this host") {
		t.Errorf("releases after down: %s", r)
	}
	appsAudit := readAudit(t, h, "/opt/raijin/.audit.jsonl")
	if got := summary(appsAudit); got != "down 1.0.0-> ok" || appsAudit[0].App != a.App {
		t.Errorf("the apps directory's audit log: %s (app %q)", got, appsAudit[0].App)
	}

	r = b.MustRaijin("down", "-y", "--full")
	if !strings.Contains(r.Stderr, "Caddy removed") {
		t.Errorf("down --full of the last app should remove Caddy:\n%s", r.Stderr)
	}
	left = h.Root(t, fmt.Sprintf(`ls /etc/systemd/system | grep -c '^%s' || true
test -e /etc/caddy && echo caddy-config-left; command -v caddy || echo no-caddy; systemctl is-active caddy || true
ls -A /opt/raijin`, b.App))
	if left != "0\nno-caddy\ninactive\n.audit.jsonl\n" {
		t.Errorf("after down --full of the last app:\n%s", left)
	}
}

// Ctrl-C during release_command: raijin stops, the previous version keeps
// serving, the lock is released and the audit log says the deploy failed.
func TestLifecycleInterruptReleasesLock(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "intr", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	p.MustRaijin("deploy")
	p.setTOML(t, `release_command = "`, `release_command = "touch \"$STATE_DIRECTORY/release-started\"; sleep 60; `)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Interrupt once release_command runs.
		for i := 0; i < 200; i++ {
			if _, ok := h.Try("sudo test -e " + p.StateDir(h) + "/release-started"); ok {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
	}()
	r := p.RaijinCtx(ctx, nil, "deploy", "--set-version", "2.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "phase release: interrupted") {
		t.Errorf("Ctrl-C during release_command: want exit 1, interrupted: %s", r)
	}
	if r.Duration > 30*time.Second {
		t.Errorf("raijin took %s to stop after Ctrl-C", r.Duration)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after Ctrl-C GET / = %q, want 1.0.0", body)
	}
	if out := h.Run(t, "ls -a "+dir); strings.Contains(out, ".lock") {
		t.Errorf("the lock is left after Ctrl-C:\n%s", out)
	}
	audit := readAudit(t, h, dir+"/.audit.jsonl")
	if got := summary(audit); got != "deploy ->1.0.0 ok\ndeploy 1.0.0->2.0.0 failed" || audit[1].Phase != "release" {
		t.Errorf("audit log after Ctrl-C:\n%s (phase %q)", got, audit[len(audit)-1].Phase)
	}
	// release_command ran in a unit of its own as the app's user: the
	// interrupt stopped it too.
	if left := h.Run(t, "systemctl list-units --no-legend 'raijin-"+p.App+"-run-*' | wc -l; pgrep -u "+p.App+" -c sleep || true"); left != "0\n0\n" {
		t.Errorf("after Ctrl-C the release command still runs (units, processes): %q", left)
	}
}
