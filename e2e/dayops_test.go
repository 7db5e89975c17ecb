package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Maintenance: the site answers 503 with the message, HTML-escaped, and
// Retry-After, while the app keeps running (its health check still
// answers through Caddy); a deploy meanwhile leaves it on; `app live` ends
// it; `app status` shows it. No Caddy reload turns it on or off.
func TestDayOpsMaintenance(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "maint", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	// A static directory: maintenance covers it too.
	h.Root(t, "mkdir -p /var/www/maint-static && echo static-file > /var/www/maint-static/s.txt && chmod -R a+rX /var/www/maint-static")
	t.Cleanup(func() { _, _ = h.ssh("root", "rm -rf /var/www/maint-static") })
	p.setTOML(t, `health_check = "/up"`, `health_check = "/up"`+"\nstatics = { \"/static/*\" = \"/var/www/maint-static/\" }")
	p.MustRaijin("deploy")
	p.serving(h, "1.0.0", "after the first deploy")
	if code, body := Get(t, url+"static/s.txt"); code != 200 || !strings.Contains(body, "static-file") {
		t.Fatalf("the static file = %d %q, want 200", code, body)
	}

	// A bad message is refused before anything is touched.
	if r := p.Raijin("app", "maintenance", "--message", " "); r.Code != 2 || !strings.Contains(r.Stderr, "--message") {
		t.Fatalf("an empty --message: want exit 2 naming --message: %s", r)
	}
	if r := p.Raijin("app", "maintenance", "--message", "a\x1b[2Jb"); r.Code != 2 || !strings.Contains(r.Stderr, "--message") {
		t.Fatalf("a --message with a control character: want exit 2 naming --message: %s", r)
	}

	msg := `Back at 14:00 <script>alert("x")</script> & 'soon' $(touch /tmp/pwned)`
	reloads := func() string {
		return h.Root(t, "journalctl -u caddy --no-pager -o cat | grep -c 'load complete' || true")
	}
	// Maintenance pushes no site: a local change not deployed yet (another
	// static path) stays off the server, and Caddy does not reload.
	site := "/etc/caddy/conf.d/" + p.App + ".caddy"
	siteBefore, before := h.Root(t, "md5sum "+site), reloads()
	p.setTOML(t, `"/static/*"`, `"/assets/*"`)
	p.MustRaijin("app", "maintenance", "--message", msg)
	if after := h.Root(t, "md5sum "+site); after != siteBefore {
		t.Errorf("app maintenance changed the deployed site")
	}
	if after := reloads(); after != before {
		t.Errorf("app maintenance reloaded Caddy (%s -> %s load complete lines)", strings.TrimSpace(before), strings.TrimSpace(after))
	}
	p.setTOML(t, `"/assets/*"`, `"/static/*"`)
	code, body, hdr := GetFull(t, url+"any/path")
	if code != 503 {
		t.Fatalf("in maintenance GET = %d %q, want 503", code, body)
	}
	if !strings.Contains(body, "Back at 14:00 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;soon&#39; $(touch /tmp/pwned)") || strings.Contains(body, "<script>") {
		t.Errorf("the page does not hold the message HTML-escaped:\n%s", body)
	}
	if got := strings.Join(hdr["Retry-After"], ","); got != "300" {
		t.Errorf("Retry-After = %q, want 300", got)
	}
	if !strings.HasPrefix(strings.Join(hdr["Content-Type"], ""), "text/html") {
		t.Errorf("Content-Type = %q, want text/html", hdr["Content-Type"])
	}
	if _, ok := h.Try("test -e /tmp/pwned"); ok {
		t.Errorf("the message ran as a command")
	}
	// A POST gets 503 too (not file_server's 405), with Retry-After.
	resp, err := httpClient.Post(url+"any/form", "text/plain", strings.NewReader("x"))
	must(t, err)
	postBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "300" || !strings.Contains(string(postBody), "maintenance") {
		t.Errorf("in maintenance POST = %d (Retry-After %q) %q, want 503 with Retry-After 300", resp.StatusCode, resp.Header.Get("Retry-After"), postBody)
	}
	// The static paths too.
	if code, body := Get(t, url+"static/s.txt"); code != 503 || strings.Contains(body, "static-file") {
		t.Errorf("in maintenance the static file = %d %q, want 503 with the page", code, body)
	}
	// The app still runs: its unit is active and the health check answers
	// through Caddy.
	if code, body := Get(t, url+"up"); code != 200 {
		t.Errorf("the health check in maintenance = %d %q, want 200", code, body)
	}
	if out := h.Root(t, "systemctl is-active "+p.WebUnit(h)); strings.TrimSpace(out) != "active" {
		t.Errorf("the app stopped: %s", out)
	}
	r := p.Raijin("app", "status")
	if r.Code != 0 || !strings.Contains(r.Stdout, "in maintenance") {
		t.Errorf("app status should say maintenance: %s", r)
	}
	if r := p.Raijin("--json", "app", "status"); !strings.Contains(r.Stdout, `"maintenance": true`) {
		t.Errorf("app status --json should say maintenance: %s", r)
	}

	// A deploy during maintenance leaves it on.
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	if code, body := Get(t, url); code != 503 || !strings.Contains(body, "Back at 14:00") {
		t.Fatalf("after a deploy in maintenance GET = %d %q, want still 503 with the page", code, body)
	}

	p.MustRaijin("app", "live")
	p.serving(h, "1.1.0", "after app live")
	if code, body := Get(t, url+"static/s.txt"); code != 200 || !strings.Contains(body, "static-file") {
		t.Errorf("after app live the static file = %d %q, want 200", code, body)
	}
	if r := p.Raijin("app", "status"); strings.Contains(r.Stdout, "maintenance") {
		t.Errorf("app status after live still says maintenance: %s", r)
	}
	// On and off again without a reload (the deploy reloaded for 1.1.0's
	// site: count from here).
	before = reloads()
	p.MustRaijin("app", "maintenance")
	if code, body := Get(t, url); code != 503 || !strings.Contains(body, "back shortly") {
		t.Errorf("maintenance with the default text: GET = %d %q", code, body)
	}
	p.MustRaijin("app", "live")
	p.serving(h, "1.1.0", "after the second app live")
	if after := reloads(); after != before {
		t.Errorf("maintenance on and off reloaded Caddy (%s -> %s load complete lines)", strings.TrimSpace(before), strings.TrimSpace(after))
	}
	audit := h.Run(t, "cat "+p.AppDir(h)+"/.audit.jsonl")
	if !strings.Contains(audit, `"command":"app maintenance"`) || !strings.Contains(audit, `"command":"app live"`) {
		t.Errorf("the audit log lacks maintenance and live:\n%s", audit)
	}
}

// envPushUnderLoad changes the greeting, pushes the env under load (no
// request may fail) and returns the env version and how long the push took.
func envPushUnderLoad(t *testing.T, p *Project, h *TestHost, greeting string) (Result, LoadStats) {
	t.Helper()
	url := p.SiteURL(h)
	l := StartLoad(t, url, deployLoad)
	l.waitRequests(t, 200)
	from := time.Now()
	r := p.MustRaijin("env", "push")
	time.Sleep(500 * time.Millisecond)
	l.waitRequests(t, l.Count()+50)
	s := l.Stats("env push", from, time.Now())
	l.Stop()
	if s.Requests < 100 {
		t.Errorf("only %d requests during the env push: the load did not run", s.Requests)
	}
	if s.Failed != 0 || s.PostFailed != 0 {
		t.Errorf("%d of %d GETs and %d of %d POSTs failed during the env push:\n%s", s.Failed, s.Requests, s.PostFailed, s.Posts, strings.Join(s.Errors, "\n"))
	}
	if body := l.LastBody(); !strings.Contains(body, greeting) {
		t.Errorf("the last answer during the env push is %q, want the greeting %q", body, greeting)
	}
	return r, s
}

// envPush: the env of the serving version changes with no build and no
// upload of the code, under load with no failed request; the push is a
// version (1.0.0+env1) in .versions, releases and the audit log; rollback
// brings the previous env back; a second push numbers on; prune can delete
// the versions whose code the env versions share; the secret never shows
// and is on the server's disk only in .env files.
func envPush(t *testing.T, p *Project, h *TestHost, app string) {
	const secret = "tok-Zq81-dayops-secret"
	p.Env = append(p.Env, "DAYOPS_TOKEN="+secret)
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	p.editTOML("GREETING=hello from", "API_TOKEN=$DAYOPS_TOKEN\nGREETING=hello from")
	first := p.MustRaijin("deploy")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "hello from") {
		t.Fatalf("GET %s = %d %q", url, code, body)
	}

	p.editTOML("GREETING=hello from", "GREETING=pushed env for")
	r, s := envPushUnderLoad(t, p, h, "pushed env for")
	t.Logf("%s: env push took %.2fs (%d requests during it, none failed, longest %s):\n%s", app, r.Duration.Seconds(), s.Requests, s.MaxLatency, r.Stderr)
	if strings.Contains(r.Stderr, "build") || strings.Contains(r.Stderr, "upload") && !strings.Contains(r.Stderr, "0 uploads") {
		t.Errorf("the env push built or uploaded:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "1.0.0+env1 serves the new env") {
		t.Errorf("the env push should name its version:\n%s", r.Stderr)
	}
	if got := h.Run(t, "head -2 "+dir+"/.versions"); got != "1.0.0+env1\n1.0.0\n" {
		t.Errorf(".versions after the env push:\n%s", got)
	}
	if got := h.Run(t, "grep -c '^GREETING=\"pushed env for' "+dir+"/.env "+dir+"/v1.0.0+env1/.env; grep -c pushed "+dir+"/v1.0.0/.env || true"); got != dir+"/.env:1\n"+dir+"/v1.0.0+env1/.env:1\n0\n" {
		t.Errorf("the .env files after the push:\n%s", got)
	}
	rel := p.MustRaijin("releases")
	if !strings.Contains(rel.Stdout, "* 1.0.0+env1") || !strings.Contains(rel.Stdout, "env push ok") {
		t.Errorf("releases should show the env version current and the push in its history:\n%s", rel.Stdout)
	}

	// The secret: in no output, and on the server only in .env files.
	for _, out := range []string{r.Stdout, r.Stderr, rel.Stdout, rel.Stderr} {
		if strings.Contains(out, secret) {
			t.Errorf("the secret shows in raijin's output:\n%s", out)
		}
	}
	if leaks := h.Root(t, "grep -rlF -- "+secret+" "+dir+" /var/lib/raijin /tmp /etc/systemd/system /etc/caddy 2>/dev/null | grep -v '/\\.env$' || true"); leaks != "" {
		t.Errorf("the secret is on the server's disk outside .env:\n%s", leaks)
	}
	if got := h.Run(t, "grep -c '^API_TOKEN=\""+secret+"\"$' "+dir+"/.env"); strings.TrimSpace(got) != "1" {
		t.Errorf("the secret did not reach .env: %s", got)
	}

	// Rollback brings the previous env back.
	p.MustRaijin("rollback", "-y")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "hello from") {
		t.Errorf("after the rollback GET = %d %q, want the previous greeting", code, body)
	}
	// A second push numbers on (+env2, not +env1 again); prune keeps it
	// alone, and it still serves after a restart: it needs nothing of the
	// versions pruned.
	again := p.MustRaijin("env", "push")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "pushed env for") {
		t.Errorf("after the second push GET = %d %q", code, body)
	}
	if got := h.Run(t, "head -1 "+dir+"/.versions"); got != "1.0.0+env2\n" {
		t.Errorf("the second push recorded %q, want 1.0.0+env2", got)
	}
	p.MustRaijin("prune", "--keep", "1")
	if got := h.Run(t, "cd "+dir+" && ls -d v*"); got != "v1.0.0+env2\n" {
		t.Errorf("after prune --keep 1 the version dirs are:\n%s", got)
	}
	restart := p.MustRaijin("app", "restart")
	t.Logf("%s: first deploy %.2fs; env push %.2fs under load, %.2fs without; app restart %.2fs", app,
		first.Duration.Seconds(), r.Duration.Seconds(), again.Duration.Seconds(), restart.Duration.Seconds())
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "pushed env for") {
		t.Errorf("after prune and restart GET = %d %q", code, body)
	}
	audit := h.Run(t, "cat "+dir+"/.audit.jsonl")
	if strings.Count(audit, `"command":"env push"`) != 2 || !strings.Contains(audit, `"to":"1.0.0+env2"`) {
		t.Errorf("the audit log should hold both pushes:\n%s", audit)
	}
}

func TestDayOpsEnvPush(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "envpush", Hosts: []*TestHost{h}})
	envPush(t, p, h, "binary")
}

func TestDayOpsEnvPushPython(t *testing.T) {
	h := host(t, 0)
	p := NewPyProject(t, ProjectSpec{App: "envpushpy", Hosts: []*TestHost{h}})
	envPush(t, p, h, "python")
}

// app logs filters, app cat unit|site|env, and the errors of bad values.
func TestDayOpsLogsAndCat(t *testing.T) {
	h := host(t, 0)
	const secret = "s3cret-\"cat\"-$HOME-value"
	p := NewProject(t, ProjectSpec{App: "cat", Hosts: []*TestHost{h}, HostEnv: "API_TOKEN=$DAYOPS_CAT"})
	p.Env = append(p.Env, "DAYOPS_CAT="+secret)
	p.MustRaijin("deploy")

	// Filters: --grep keeps only matching lines, --since and --level pass.
	r := p.MustRaijin("app", "logs", "--grep", "Started", "--since", "10m", "-n", "50")
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if l == "" || strings.HasPrefix(l, "--") {
			continue
		}
		lines++
		if !strings.Contains(l, "Started") {
			t.Errorf("--grep Started printed %q", l)
		}
	}
	if lines == 0 {
		t.Errorf("--grep Started printed nothing:\n%s", r)
	}
	// Nothing matches: exit 1, as grep (journalctl's own code).
	if r := p.Raijin("app", "logs", "--grep", "no-such-line-anywhere-42"); r.Code != 1 || strings.Contains(r.Stdout, "Started") || !strings.Contains(r.Stdout, "No entries") {
		t.Errorf("--grep of a pattern nothing matches: want exit 1 and no lines:\n%s", r)
	}
	p.MustRaijin("app", "logs", "--level", "warning", "--since", "today")
	p.MustRaijin("app", "logs", "--level", "err..info", "--since", time.Now().UTC().Format("2006-01-02"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"app", "logs", "--since", "yesterday-ish"}, `--since "yesterday-ish"`},
		{[]string{"app", "logs", "--since", "2026-13-45"}, `--since "2026-13-45"`},
		{[]string{"app", "logs", "--level", "loud"}, `--level "loud"`},
		{[]string{"app", "logs", "--grep", ""}, "--grep"},
		{[]string{"app", "logs", "-n", "0"}, "--lines 0"},
		{[]string{"app", "cat", "nonsense"}, `app cat "nonsense"`},
		{[]string{"app", "cat", "unit", "--reveal"}, "--reveal"},
	} {
		if r := p.Raijin(c.args...); r.Code != 2 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("raijin %s: want exit 2 naming %s: %s", strings.Join(c.args, " "), c.want, r)
		}
	}

	if r := p.MustRaijin("app", "cat", "unit"); !strings.Contains(r.Stdout, "# /etc/systemd/system/"+p.WebUnit(h)) || !strings.Contains(r.Stdout, "ExecStart=") {
		t.Errorf("app cat unit:\n%s", r)
	}
	if r := p.MustRaijin("app", "cat", "site"); !strings.Contains(r.Stdout, "reverse_proxy localhost:") || !strings.Contains(r.Stdout, p.App+".maintenance.html") {
		t.Errorf("app cat site:\n%s", r)
	}
	r = p.MustRaijin("app", "cat", "env")
	if !strings.Contains(r.Stdout, "GREETING=hello from "+h.Name) || !strings.Contains(r.Stdout, "API_TOKEN=****** (secret DAYOPS_CAT)") {
		t.Errorf("app cat env:\n%s", r)
	}
	// A value changed on the server by hand is hidden too: it may be a
	// secret the local file no longer names.
	h.Run(t, "cd "+p.AppDir(h)+` && printf 'OLD_SECRET="hand-put-secret"\n' >> .env`)
	r = p.MustRaijin("app", "cat", "env")
	for _, leak := range []string{"s3cret", "hand-put-secret", "cat\\\""} {
		if strings.Contains(r.Stdout+r.Stderr, leak) {
			t.Errorf("app cat env shows %q:\n%s", leak, r)
		}
	}
	if !strings.Contains(r.Stdout, "OLD_SECRET=******") {
		t.Errorf("app cat env should list OLD_SECRET hidden:\n%s", r)
	}
	r = p.MustRaijin("app", "cat", "env", "--reveal")
	if !strings.Contains(r.Stdout, `API_TOKEN="s3cret-\"cat\"-\$HOME-value"`) || !strings.Contains(r.Stdout, "hand-put-secret") {
		t.Errorf("app cat env --reveal:\n%s", r)
	}
}

// rollback, prune and down offer to take over a stale lock on a terminal,
// as deploy does; without one they name --force-unlock.
func TestDayOpsStaleLockTakeOver(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "stale", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	dir := p.AppDir(h)
	machine, _ := os.Hostname()
	staleLock := func() {
		dead := exec.Command("true")
		must(t, dead.Run())
		h.Run(t, fmt.Sprintf(`mkdir %s/.lock && printf '%%s\n' '{"user":"ci","machine":"%s","pid":%d,"since":"2026-01-01T00:00:00Z","command":"deploy","version":"9.9.9","token":"x"}' > %s/.lock/info`,
			dir, machine, dead.Process.Pid, dir))
	}
	onTerminal := func(args string) {
		out, err := p.OnTerminal(args, "y\n")
		if err != nil || !strings.Contains(out, "so the lock is stale. Take it over? [y/N]") || !strings.Contains(out, "taking over the stale lock") {
			t.Fatalf("%s on a terminal, answering y, should take the stale lock over: %v\n%s", args, err, out)
		}
	}

	staleLock()
	if r := p.Raijin("rollback", "-y"); r.Code != 3 || !strings.Contains(r.Stderr, "--force-unlock") {
		t.Fatalf("rollback without a terminal: want exit 3 naming --force-unlock: %s", r)
	}
	onTerminal("rollback -y")
	p.serving(h, "1.0.0", "after the rollback took the stale lock over")

	staleLock()
	onTerminal("prune --keep 1")
	if got := h.Run(t, "cd "+dir+" && ls -d v*"); got != "v1.0.0\n" {
		t.Errorf("after prune --keep 1: %s", got)
	}

	staleLock()
	onTerminal("down -y")
	if _, ok := h.Try("test -e " + dir); ok {
		t.Errorf("down left the app directory")
	}
}

// Behind a load balancer, maintenance applies on each web host: the
// balancer passes the page on and keeps the hosts in (their health check
// is not under maintenance), so one web host can be in maintenance while
// the other serves, and `app live` brings all back at once. The balancer
// itself has nothing to do.
func TestDayOpsMaintenanceBehindBalancer(t *testing.T) {
	lb := freshHost(t, 0)
	webs := []*TestHost{freshHost(t, 1), freshHost(t, 2)}
	for _, w := range webs {
		Route(t, lb, w)
	}
	p := NewProject(t, ProjectSpec{App: "lbmaint", Hosts: append(append([]*TestHost{}, webs...), lb)})
	p.setRoles(lb, `["loadbalancer"]`)
	for _, w := range webs {
		p.setRoles(w, `["web"]`)
	}
	url := p.SiteURL(lb)
	p.MustRaijin("deploy")

	// count sends n GETs through the balancer: the page's 503s by host is
	// unknown (the page does not name one), so count pages and the hosts
	// that answered 200.
	count := func(n int) (pages int, served map[string]bool) {
		served = map[string]bool{}
		for i := 0; i < n; i++ {
			code, body := Get(t, url)
			switch {
			case code == 503 && strings.Contains(body, "One host resting"):
				pages++
			case code == 200:
				if m := answerRe.FindStringSubmatch(body); m != nil {
					served[m[2]] = true
				}
			default:
				t.Fatalf("GET %s = %d %q: neither the app nor the maintenance page", url, code, body)
			}
		}
		return pages, served
	}

	r := p.MustRaijin("-H", webs[0].Name, "app", "maintenance", "--message", "One host resting")
	t.Logf("maintenance of one web host: %.2fs", r.Duration.Seconds())
	// Past the balancer's health checks: the host in maintenance is still
	// in (it answers the page), the other serves.
	time.Sleep(3 * time.Second)
	pages, served := count(30)
	if pages == 0 || !served[webs[1].Name] || served[webs[0].Name] {
		t.Errorf("one web host in maintenance: %d pages, served by %v; want pages from %s and answers from %s only", pages, served, webs[0].Name, webs[1].Name)
	}

	r = p.MustRaijin("app", "maintenance", "--message", "One host resting")
	if !strings.Contains(r.Stderr, lb.Name) || !strings.Contains(r.Stderr, "nothing to do") {
		t.Errorf("the balancer should be reported with nothing to do:\n%s", r.Stderr)
	}
	time.Sleep(3 * time.Second)
	if pages, served := count(20); pages != 20 || len(served) != 0 {
		t.Errorf("every web host in maintenance: %d of 20 pages, served by %v", pages, served)
	}
	if code, _, hdr := GetFull(t, url); code != 503 || strings.Join(hdr["Retry-After"], "") != "300" {
		t.Errorf("through the balancer: %d, Retry-After %q", code, hdr["Retry-After"])
	}

	p.MustRaijin("app", "live")
	if pages, served := count(30); pages != 0 || len(served) != 2 {
		t.Errorf("after app live: %d pages, served by %v; want both web hosts at once", pages, served)
	}
}

// The audit log keeps its last 1,000 lines: a log of 1,100 lines (as a
// busy app's would be after many deploys) is trimmed by the command that
// appends the 1,101st, whose line is the last one kept, with the file's
// mode unchanged.
func TestDayOpsAuditTrim(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "audit", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	log := p.AppDir(h) + "/.audit.jsonl"
	// 1,099 older lines after the deploy's: 1,100 in all.
	h.Run(t, fmt.Sprintf(`for i in $(seq 1 1099); do printf '{"time":"2026-01-01T00:00:00Z","app":"audit","command":"deploy","to":"0.%%d","result":"ok"}\n' $i; done >> %s`, log))
	if got := strings.TrimSpace(h.Run(t, "wc -l < "+log)); got != "1100" {
		t.Fatalf("the audit log holds %s lines before the command, want 1100", got)
	}
	p.MustRaijin("prune", "--keep", "3")
	if got := strings.TrimSpace(h.Run(t, "wc -l < "+log)); got != "1000" {
		t.Errorf("after the 1,101st line the audit log holds %s lines, want the last 1000", got)
	}
	last := h.Run(t, "tail -n1 "+log)
	if !strings.Contains(last, `"command":"prune"`) {
		t.Errorf("the last line kept is not the prune's: %s", last)
	}
	if first := h.Run(t, "head -n1 "+log); !strings.Contains(first, `"to":"0.101"`) {
		t.Errorf("the oldest 101 lines should be gone (the deploy's and 0.1 to 0.100): the first is %s", first)
	}
	if mode := strings.TrimSpace(h.Run(t, "stat -c %a "+log)); mode != "600" {
		t.Errorf("the trimmed log's mode is %s, want 600", mode)
	}
}
