package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// editTOML replaces old by new in the project's raijin.toml (old must be
// there) and returns the new text.
func (p *Project) editTOML(old, new string) string {
	p.t.Helper()
	toml := readFile(p.t, p.Dir+"/raijin.toml")
	if !strings.Contains(toml, old) {
		p.t.Fatalf("raijin.toml has no %q", old)
	}
	toml = strings.Replace(toml, old, new, 1)
	p.Write("raijin.toml", toml, 0o644)
	return toml
}

// breakNext adds the env line that breaks the next version (FAIL_HEALTH=1,
// FAIL_START=1), in place of the greeting.
func (p *Project) breakNext(env string) {
	p.t.Helper()
	p.editTOML("GREETING=hello from", env+"\nGREETING=broken")
}

// The load every zero-downtime test sends: bounded in count and time. GETs
// and POSTs, on kept-alive and new connections, each client at most one
// request every 8 ms (up to 1,250 a second in all; flat out they were about
// 1,800, most of a core the servers under test needed, and a rolling deploy
// over four servers spent the 150,000-request budget).
var deployLoad = LoadSpec{Sequential: 2, Concurrent: 4, NewConn: 2, Post: 2, Pace: 8 * time.Millisecond, MaxRequests: 400000, MaxDuration: 5 * time.Minute}

func init() {
	// scripts/bench-deploy.sh may send more POSTs (RAIJIN_BENCH_POST=N
	// clients).
	if n, err := strconv.Atoi(os.Getenv("RAIJIN_BENCH_POST")); err == nil {
		deployLoad.Post = n
	}
}

// deployUnderLoad deploys (or rolls back) while the load runs and checks that
// no request failed during it, GET or POST, and that none waited more than
// a second longer than the longest before it (the new version boots beside
// the old one: nobody waits for it).
func deployUnderLoad(t *testing.T, p *Project, l *Load, name, want string, args ...string) {
	t.Helper()
	before := l.Count()
	from := time.Now()
	base := l.Stats(name+" (before)", time.Time{}, from)
	p.MustRaijin(args...)
	// Keep the load on a little after the switch: every answer must be the
	// new version by then.
	time.Sleep(500 * time.Millisecond)
	l.waitRequests(t, l.Count()+50)
	s := l.Stats(name, from, time.Now())
	benchReport(t, s)
	if s.Requests < 100 || l.Count()-before < 100 {
		t.Errorf("%s: only %d requests during the deploy: the load generator did not run", name, s.Requests)
	}
	if s.Failed != 0 || s.PostFailed != 0 {
		t.Errorf("%s: %d of %d GETs and %d of %d POSTs failed during the deploy:\n%s", name, s.Failed, s.Requests, s.PostFailed, s.Posts, strings.Join(s.Errors, "\n"))
	}
	if s.Posts == 0 {
		t.Errorf("%s: no POST was sent during the deploy", name)
	}
	if s.MaxLatency > base.MaxLatency+time.Second {
		t.Errorf("%s: a request waited %s, the longest before the deploy %s: more than a second longer", name, s.MaxLatency, base.MaxLatency)
	}
	if body := l.LastBody(); !strings.Contains(body, " "+want+": ") {
		t.Errorf("%s: the last answer is %q, want version %s", name, body, want)
	}
	if len(s.Versions) < 2 || s.Versions[len(s.Versions)-1] != want {
		t.Errorf("%s: versions seen during the deploy %v, want the old one then %s", name, s.Versions, want)
	}
}

// zeroDowntime deploys a new version, then rolls back, under a steady stream
// of sequential and concurrent GETs through Caddy: not one may fail.
func zeroDowntime(t *testing.T, p *Project, h *TestHost, kind string) {
	url := p.SiteURL(h)
	p.MustRaijin("deploy")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, " 1.0.0: ") {
		t.Fatalf("GET %s = %d %q, want 1.0.0", url, code, body)
	}
	l := StartLoad(t, url, deployLoad)
	l.waitRequests(t, 200)
	deployUnderLoad(t, p, l, kind+": deploy 1.0.0 -> 1.1.0", "1.1.0", "deploy", "--set-version", "1.1.0")
	deployUnderLoad(t, p, l, kind+": rollback 1.1.0 -> 1.0.0", "1.0.0", "rollback", "-y")
	l.Stop()
	all := l.Stats(kind+": whole run", time.Time{}, time.Time{})
	t.Log(all)
	if all.Failed != 0 || all.PostFailed != 0 {
		t.Errorf("%d requests failed:\n%s\nCaddy's last errors:\n%s", all.Failed, strings.Join(all.Errors, "\n"),
			h.Root(t, "journalctl -u caddy --no-pager -o cat | grep -i error | tail -n 5"))
	}
}

// A TCP upstream: the new version listens on the other slot's port and
// takes over once it answers.
func TestZeroDowntimeTCP(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "zdtcp", Hosts: []*TestHost{h}})
	zeroDowntime(t, p, h, "tcp")
}

// An app that takes 3 s to listen after its start (as a Python app that
// imports a lot does), TCP and unix socket: nobody waits for it, as it boots
// beside the old version.
func TestZeroDowntimeSlowStart(t *testing.T) {
	h := host(t, 0)
	for _, kind := range []string{"tcp", "unix socket"} {
		p := NewProject(t, ProjectSpec{App: "zdslow" + kind[:3], Hosts: []*TestHost{h}})
		p.editTOML(fmt.Sprintf("web = %q", p.App), fmt.Sprintf("web = \"env START_DELAY=3s %s\"", p.App))
		if kind == "unix socket" {
			p.editTOML(fmt.Sprintf(`upstream = "localhost:%d"`, p.Port), `upstream = "unix//run/`+p.App+`.sock"`)
		}
		zeroDowntime(t, p, h, kind+", 3 s start")
	}
}

// The Python mode (a wheel in a venv, a WSGI server) taking 3 s to start,
// TCP and unix socket.
func TestZeroDowntimePython(t *testing.T) {
	h := host(t, 0)
	for _, kind := range []string{"tcp", "unix socket"} {
		p := NewPyProject(t, ProjectSpec{App: "zdpy" + kind[:3], Hosts: []*TestHost{h}})
		p.editTOML("GREETING=hello from", "START_DELAY=3s\nGREETING=hello from")
		if kind == "unix socket" {
			p.editTOML(fmt.Sprintf(`upstream = "localhost:%d"`, p.Port), `upstream = "unix//run/`+p.App+`.sock"`)
		}
		zeroDowntime(t, p, h, "python, 3 s start, "+kind)
	}
}

// A unix-socket upstream with socket activation: systemd holds the socket
// across the restart, requests queue on it; Caddy (user caddy) may connect.
func TestZeroDowntimeUnixSocket(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "zdsock", Hosts: []*TestHost{h}})
	sock := "/run/" + p.App + ".sock"
	p.editTOML(fmt.Sprintf(`upstream = "localhost:%d"`, p.Port), `upstream = "unix/`+sock+`"`)
	zeroDowntime(t, p, h, "unix socket")
	got := h.Root(t, fmt.Sprintf("stat -c '%%a %%U %%G %%F' %s; systemctl is-active %s", sock, strings.Replace(p.WebUnit(h), ".service", ".socket", 1)))
	if !strings.Contains(got, "660 root caddy socket") || !strings.Contains(got, "active") {
		t.Errorf("the socket: %q, want mode 660, owned by root:caddy, its unit active", got)
	}
	if out := h.Root(t, "ss -ltnp 2>/dev/null | grep -c ':"+strconv.Itoa(p.Port)+" ' || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("the app also listens on TCP port %d: %q", p.Port, out)
	}
}

// A new version whose health check fails: exit 4, the failed check and the
// journal in the error, and the previous version (with its .env) serving.
// Under load, not one request reaches the failing version: it answers /
// (only /up fails), so a request sent to it would show.
func TestHealthCheckFailsRollsBack(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "hcfail", Hosts: []*TestHost{h}, Webextra: `health_check_timeout = "4s"`})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")

	l := StartLoad(t, url, deployLoad)
	l.waitRequests(t, 200)
	from := time.Now()
	p.breakNext("FAIL_HEALTH=1")
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	l.waitRequests(t, l.Count()+200)
	l.Stop()
	if s := l.Stats("failed deploy", from, time.Now()); s.Failed != 0 || s.PostFailed != 0 || len(s.Versions) != 1 || s.Versions[0] != "1.0.0" {
		t.Errorf("during the failed deploy: %s, want every request answered by 1.0.0\n%s", s, strings.Join(s.Errors, "\n"))
	}
	if r.Code != 4 {
		t.Fatalf("a failing health check should exit 4: %s", r)
	}
	t.Logf("what the user sees:\n%s", r.Stderr)
	for _, want := range []string{"phase services", "health check GET /up: HTTP 503, no 2xx within 4s (health_check_timeout)", "--- journalctl -u " + p.App + "@green.service", "goapp 2.0.0 listening", "1.0.0 was restored"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("the error lacks %q:\n%s", want, r.Stderr)
		}
	}
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "goapp 1.0.0: hello from") {
		t.Errorf("after the failed deploy GET / = %d %q, want 1.0.0 with its greeting", code, body)
	}
	if _, got := Get(t, url+"env/FAIL_HEALTH"); got != "" {
		t.Errorf("the restored app sees FAIL_HEALTH=%q: the previous .env was not restored", got)
	}
	dir := p.AppDir(h)
	got := h.Run(t, "cd "+dir+" && readlink "+p.App+" && head -1 .versions && grep -c FAIL_HEALTH .env || true")
	if got != "v1.0.0/goapp\n1.0.0\n0\n" {
		t.Errorf("after the failed deploy: %q, want the symlink, .versions and .env of 1.0.0", got)
	}
	// The failed version's slot is stopped; the old one still serves.
	if got, _ := h.Try("systemctl is-active " + p.App + "@blue.service " + p.App + "@green.service"); got != "active\ninactive\n" {
		t.Errorf("after the failed deploy blue, green are %q, want active, inactive", got)
	}
}

// Without health_check, a unit that does not come up (it never answers
// HTTP, and exits) fails the readiness check, and is rolled back (exit 4).
func TestUnitFailsToStartRollsBack(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "nostart", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	p.editTOML(`health_check = "/up"`, "")
	p.MustRaijin("deploy")

	p.breakNext("FAIL_START=1")
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 4 {
		t.Fatalf("a unit that fails to start should exit 4: %s", r)
	}
	for _, want := range []string{"phase services", "readiness check (no health_check) GET / on localhost:", p.App + "@green.service is ", "it exited while starting", "refusing to start (FAIL_START=1)", "1.0.0 was restored"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("the error lacks %q:\n%s", want, r.Stderr)
		}
	}
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "goapp 1.0.0: hello from") {
		t.Errorf("after the failed deploy GET / = %d %q, want 1.0.0", code, body)
	}
	if got := h.Run(t, "systemctl is-active "+p.WebUnit(h)+"; readlink "+p.AppDir(h)+"/"+p.App); got != "active\nv1.0.0/goapp\n" {
		t.Errorf("after the failed deploy: %q, want 1.0.0 active", got)
	}
}

// With health_check, a unit that exits at start fails the check at once
// instead of after health_check_timeout.
func TestUnitFailsToStartWithHealthCheckFailsFast(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "nostarthc", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")
	p.breakNext("FAIL_START=1")
	start := time.Now()
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 4 || !strings.Contains(r.Stderr, "it exited while starting") || !strings.Contains(r.Stderr, "refusing to start") {
		t.Fatalf("want exit 4 saying the unit exited while starting: %s", r)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("the failed deploy took %s: it waited for the health check timeout (30s)", d)
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed deploy GET / = %q, want 1.0.0", body)
	}
}

// Workers restart with the new web process, and their settle is checked
// alongside its check: web takes 1.5 s to listen, the worker starts with it
// (not 1.5 s later), and the deploy waits for the longer of the two. A
// worker that does not start rolls both back before any request reaches
// the new web process: requests stay with the old one, and the worker runs
// the old version's unit again.
func TestWorkersRestartWithWeb(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "workers", Hosts: []*TestHost{h}})
	// The worker refuses to start when the version's .env says WORKER_FAIL=1.
	p.editTOML(fmt.Sprintf("web = %q", p.App),
		fmt.Sprintf("web = \"env START_DELAY=1500ms %[1]s\"\nworker = \"env LISTEN_ADDR=127.0.0.1:0 FAIL_START=${WORKER_FAIL:-0} %[1]s\"", p.App))
	p.MustRaijin("deploy")
	p.MustRaijin("deploy", "--set-version", "1.1.0")

	web, worker := p.WebUnit(h), p.App+"-worker.service"
	out := h.Run(t, fmt.Sprintf(`for u in %s %s; do systemctl show -p ExecMainStartTimestampMonotonic --value $u; systemctl is-active $u; readlink /proc/$(systemctl show -p MainPID --value $u)/exe 2>/dev/null || sudo readlink /proc/$(systemctl show -p MainPID --value $u)/exe; done`, web, worker))
	f := strings.Fields(out)
	if len(f) != 6 {
		t.Fatalf("unexpected unit facts: %q", out)
	}
	webStart, _ := strconv.ParseInt(f[0], 10, 64)
	workerStart, _ := strconv.ParseInt(f[3], 10, 64)
	if f[1] != "active" || f[4] != "active" {
		t.Errorf("web is %s, worker is %s, want both active", f[1], f[4])
	}
	for _, exe := range []string{f[2], f[5]} {
		if !strings.Contains(exe, "/v1.1.0/goapp") {
			t.Errorf("a process runs %s, want version 1.1.0", exe)
		}
	}
	if gap := time.Duration(workerStart-webStart) * time.Microsecond; gap < 0 || gap > time.Second {
		t.Errorf("the worker started %s after web, want with it (web takes 1.5s to listen, the worker's settle 1s: overlapped)", gap)
	}
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.1.0") {
		t.Errorf("GET / = %q, want 1.1.0", body)
	}

	// A worker that does not start: both processes go back to 1.1.0, exit 4.
	p.breakNext("WORKER_FAIL=1")
	r := p.Raijin("deploy", "--set-version", "1.2.0")
	if r.Code != 4 {
		t.Fatalf("a worker that fails to start should exit 4: %s", r)
	}
	for _, want := range []string{"phase services", worker + " is ", "refusing to start (FAIL_START=1)", "1.1.0 was restored"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("the error lacks %q:\n%s", want, r.Stderr)
		}
	}
	if now := p.WebUnit(h); now != web {
		t.Errorf("after the failed deploy requests go to %s, want %s (the old web process)", now, web)
	}
	out = h.Run(t, fmt.Sprintf(`for u in %s %s; do systemctl is-active $u; sudo readlink /proc/$(systemctl show -p MainPID --value $u)/exe; done`, web, worker))
	if out != fmt.Sprintf("active\n%[1]s/v1.1.0/goapp\nactive\n%[1]s/v1.1.0/goapp\n", p.AppDir(h)) {
		t.Errorf("after the failed deploy: %q, want web and worker active on 1.1.0", out)
	}
}

// Changing the upstream of a deployed app from TCP to a unix socket and back:
// the new slot's socket unit is started, later stopped, and the app answers
// after each deploy.
func TestUpstreamSwitchTCPToUnixAndBack(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "upswitch", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	tcp, unix := fmt.Sprintf(`upstream = "localhost:%d"`, p.Port), `upstream = "unix//run/`+p.App+`.sock"`
	p.MustRaijin("deploy")
	p.editTOML(tcp, unix)
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.1.0") {
		t.Errorf("on the unix socket GET / = %q, want 1.1.0", body)
	}
	sock := strings.Replace(p.WebUnit(h), ".service", ".socket", 1)
	if got, _ := h.Try("systemctl is-active " + sock); got != "active\n" {
		t.Errorf("the socket unit %s is %q, want active", sock, got)
	}
	p.editTOML(unix, tcp)
	p.MustRaijin("deploy", "--set-version", "1.2.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.2.0") {
		t.Errorf("back on TCP GET / = %q, want 1.2.0", body)
	}
	if got, _ := h.Try("systemctl is-active " + p.App + "@blue.socket " + p.App + "@green.socket"); got != "inactive\ninactive\n" {
		t.Errorf("back on TCP the socket units are %q, want inactive", got)
	}
}

// A first deploy whose health check fails has no previous version to go back
// to: exit 1 (not 4), and the error says so.
func TestHealthCheckFailsOnFirstDeploy(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "hcfirst", Hosts: []*TestHost{h}, Webextra: `health_check_timeout = "2s"`})
	p.breakNext("FAIL_HEALTH=1")
	r := p.Raijin("deploy")
	if r.Code != 1 {
		t.Fatalf("a first deploy failing its health check should exit 1: %s", r)
	}
	for _, want := range []string{"health check GET /up: HTTP 503, no 2xx within 2s", "this was the first deploy: there is no previous version to restore"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("the error lacks %q:\n%s", want, r.Stderr)
		}
	}
}
