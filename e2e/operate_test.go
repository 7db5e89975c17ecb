package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// On a fresh server: `raijin init` writes a project that deploys once the
// host is filled in; `server bootstrap` prepares the server and says what it
// changed, a second run changes nothing; `up` bootstraps and deploys;
// `app export-config` hands the generated files to the user.
func TestOperateInitBootstrapUp(t *testing.T) {
	h := rebootedHost(t, 2) // as booted: nothing bootstrapped yet
	p := NewProject(t, ProjectSpec{App: "init", Hosts: []*TestHost{h}})
	for _, f := range []string{"main.go", "probe.go", "go.mod"} {
		p.Write(f, readFile(t, filepath.Join(goappSrc, f)), 0o644)
	}

	// init refuses to write over an existing raijin.toml, and writes nothing.
	before := readFile(t, p.Dir+"/raijin.toml")
	r := p.Raijin("init", "--app", p.App)
	if r.Code != 2 || !strings.Contains(r.Stderr, "writes nothing over existing files") {
		t.Fatalf("init over an existing raijin.toml: want exit 2 and a refusal: %s", r)
	}
	if _, err := os.Stat(p.Dir + "/.env.prod"); err == nil || readFile(t, p.Dir+"/raijin.toml") != before {
		t.Fatalf("a refused init wrote files")
	}
	must(t, os.Remove(p.Dir+"/raijin.toml"))
	p.MustRaijin("init", "--app", p.App)
	for _, f := range []string{"raijin.toml", ".env.prod", ".raijin/deploy.lua", ".raijin/hooks/after_done.lua"} {
		if _, err := os.Stat(filepath.Join(p.Dir, f)); err != nil {
			t.Fatalf("init did not write %s", f)
		}
	}
	// Unfilled, the configuration says what is missing.
	if r := p.Raijin("config"); r.Code != 2 || !strings.Contains(r.Stderr, "missing required key address") {
		t.Fatalf("config of an unfilled init: want exit 2 naming address: %s", r)
	}
	// Fill in the host: address and a site address of its own. The user is
	// root at first, as on a fresh server.
	site := 9300 + h.Index%100
	toml := readFile(t, p.Dir+"/raijin.toml")
	toml = strings.Replace(toml, `address = ""`, fmt.Sprintf("address = %q", h.Addr), 1)
	toml = strings.Replace(toml, `domain_name = ""`, fmt.Sprintf(`domain_name = ":%d"`, site), 1)
	asUser := func(user string) {
		toml = regexp.MustCompile(`(?m)^user = "[^"]*"`).ReplaceAllString(toml, fmt.Sprintf("user = %q", user))
		p.Write("raijin.toml", toml, 0o644)
	}
	url := fmt.Sprintf("http://%s:%d/", h.Addr, site)

	// raijin's own way to a deploy user: as root, create-user; without
	// --sudo the bootstrap says what is missing, with it the user can deploy.
	const user = "opdeploy"
	asUser("root")
	p.MustRaijin("server", "create-user", user)
	asUser(user)
	r = p.Raijin("server", "bootstrap")
	if r.Code != 1 || !strings.Contains(r.Stderr, user+" cannot run sudo without a password") || !strings.Contains(r.Stderr, "server create-user "+user+" --sudo") {
		t.Fatalf("bootstrap as a user without sudo: want exit 1 and the way out: %s", r)
	}
	asUser("root")
	r = p.MustRaijin("server", "create-user", user, "--sudo")
	if !strings.Contains(r.Stderr, "in place: user "+user) || !strings.Contains(r.Stderr, "changed: passwordless sudo for "+user) {
		t.Errorf("create-user --sudo of an existing user: %s", r)
	}
	asUser(user)

	// Bootstrap a fresh server without Caddy (removed, its Caddyfile left
	// as dpkg leaves it; apt-get gets it from a repository on this machine,
	// as the test server has no other network): changes, then nothing to
	// change.
	aptRepo(t, h, "caddy", "zstd")
	h.Root(t, "systemctl stop caddy && dpkg -r caddy zstd >/dev/null 2>&1")
	caddyfile := h.Root(t, "dpkg-query -W -f='${Status}\n' caddy; cat /etc/caddy/Caddyfile")
	if strings.Contains(caddyfile, "conf.d/*.caddy") || !strings.HasPrefix(caddyfile, "deinstall ok config-files") {
		t.Fatalf("the fresh server has Caddy, or its Caddyfile imports conf.d already:\n%s", caddyfile)
	}
	r = p.MustRaijin("server", "bootstrap")
	for _, want := range []string{"changed: package caddy installed", "changed: package zstd installed", "changed: /etc/caddy/Caddyfile: import conf.d/*.caddy added", "changed: /etc/caddy/Caddyfile: admin unix//run/caddy/admin.sock added", "caddy enabled and", "apps directory /opt/raijin", "changed: created the system user " + p.App} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("first bootstrap lacks %q:\n%s", want, r.Stderr)
		}
	}
	state := "cat /etc/caddy/Caddyfile; ls -ld --time-style=+%s /etc/caddy/conf.d /opt/raijin; systemctl is-enabled caddy; systemctl is-active caddy"
	after1 := h.Root(t, state)
	if !strings.Contains(after1, "import conf.d/*.caddy") || !strings.Contains(after1, "enabled\nactive") {
		t.Errorf("after bootstrap: %s", after1)
	}
	t.Logf("first bootstrap (Caddy installed): %.2fs", r.Duration.Seconds())
	if !strings.Contains(r.Stderr, "8 changed, 1 already in place") {
		t.Errorf("the first bootstrap's summary:\n%s", r.Stderr)
	}
	r = p.MustRaijin("server", "bootstrap")
	t.Logf("second bootstrap (nothing to do): %.2fs", r.Duration.Seconds())
	if strings.Contains(r.Stderr, "changed:") || strings.Count(r.Stderr, "in place:") != 9 || !strings.Contains(r.Stderr, ": 0 changed, 9 already in place") {
		t.Errorf("a second bootstrap should change nothing and say so for each of its 9 checks:\n%s", r.Stderr)
	}
	if after2 := h.Root(t, state); after2 != after1 {
		t.Errorf("the second bootstrap changed the server:\n%s\n---\n%s", after1, after2)
	}

	// up: bootstrap (nothing to do), then the deploy of the init project.
	r = p.MustRaijin("up")
	t.Logf("up (bootstrap with nothing to do, first deploy): %.2fs", r.Duration.Seconds())
	if !strings.Contains(r.Stderr, "in place: caddy enabled and running") || !strings.Contains(r.Stderr, "deployed "+p.App+" 0.1.0") {
		t.Errorf("up should bootstrap, deploy and run the example hook:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stdout, url) {
		t.Errorf("up should print the URL %s:\n%s", url, r.Stdout)
	}
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "goapp 0.1.0") {
		t.Fatalf("GET %s = %d %q, want the init project's app", url, code, body)
	}

	// export-config: the generated unit and site, then kept as the user's.
	r = p.MustRaijin("app", "export-config")
	unit := readFile(t, filepath.Join(p.Dir, ".raijin", p.App+".service"))
	siteFile := readFile(t, filepath.Join(p.Dir, ".raijin", p.App+".caddy"))
	if !strings.Contains(unit, "ExecStart=") || !strings.Contains(unit, "User="+p.App) || !strings.Contains(siteFile, fmt.Sprintf(":%d {", site)) {
		t.Fatalf("export-config wrote:\n%s\n%s\n%s", unit, siteFile, r)
	}
	p.Write(".raijin/"+p.App+".service", strings.Replace(unit, "[Service]", "[Service]\nEnvironment=GREETING=from-the-exported-unit", 1), 0o644)
	r = p.MustRaijin("app", "export-config")
	if !strings.Contains(r.Stderr, "kept .raijin/"+p.App+".service (already yours)") {
		t.Errorf("a second export-config should keep the user's files:\n%s", r.Stderr)
	}
	p.MustRaijin("deploy", "--set-version", "0.2.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 0.2.0") {
		t.Errorf("after deploying with the exported files: %q", body)
	}
	if got := h.Root(t, "cat /etc/systemd/system/"+p.WebUnit(h)); !strings.Contains(got, "GREETING=from-the-exported-unit") {
		t.Errorf("the deploy did not use the user's unit file:\n%s", got)
	}
}

// The python and django profiles write a configuration that is valid once the
// host is filled in.
func TestOperateInitProfiles(t *testing.T) {
	for _, profile := range []string{"python", "django", "binary"} {
		t.Run(profile, func(t *testing.T) {
			dir := t.TempDir()
			p := &Project{t: t, Dir: dir, Home: dir}
			r := p.Raijin("init", "--profile", profile, "--app", "shop-"+profile)
			if r.Code != 0 {
				t.Fatal(r)
			}
			toml := readFile(t, dir+"/raijin.toml")
			toml = strings.Replace(toml, `address = ""`, `address = "203.0.113.10"`, 1)
			toml = strings.Replace(toml, `domain_name = ""`, `domain_name = "shop.example.com"`, 1)
			p.Write("raijin.toml", toml, 0o644)
			r = p.Raijin("config")
			if r.Code != 0 {
				t.Fatalf("config of the filled-in %s profile: %s", profile, r)
			}
			mode := map[string]string{"python": "python-package", "django": "python-package", "binary": "binary"}[profile]
			if !regexp.MustCompile(`installation_mode\s+= "` + mode + `"\s+# raijin.toml:\d+`).MatchString(r.Stdout) {
				t.Errorf("config should show installation_mode %s and its line:\n%s", mode, r.Stdout)
			}
			env := readFile(t, dir+"/.env.prod")
			if profile == "django" && !strings.Contains(env, "DJANGO_SETTINGS_MODULE=shop_django.settings") {
				t.Errorf("django .env.prod:\n%s", env)
			}
			// The build is only printed in a dry run: put its output in place.
			// The django profile's .env.prod names a secret.
			p.Env = append(p.Env, "DJANGO_SECRET_KEY=dj-secret-4Rt")
			dist := "dist/shop-binary"
			if profile != "binary" {
				dist = "dist/shop_" + profile + "-0.1.0-py3-none-any.whl"
			}
			p.Write(dist, "stand-in", 0o755)
			r = p.Raijin("deploy", "--dry-run", "-v")
			if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "/shop-"+profile+".service") || strings.Contains(r.Stdout+r.Stderr, "dj-secret-4Rt") {
				t.Errorf("deploy --dry-run of the %s profile: %s", profile, r)
			}
		})
	}
}

// Every app and server command on a deployed app with two processes.
func TestOperateAppAndServerCommands(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "ops", Hosts: []*TestHost{h}, HostEnv: "OPS_SECRET=$E2E_OPS_SECRET",
		Procs: "", Extra: `
[aliases]
where = "app exec pwd"`})
	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), "[processes]\n", "[processes]\nworker = \"sleep 100000\"\n", 1), 0o644)
	const secret = "ops-secret-Zq81vX"
	p.Env = append(p.Env, "E2E_OPS_SECRET="+secret)
	url := p.SiteURL(h)
	dir := p.AppDir(h)

	// printenv: redacted unless --reveal; the dry run never shows it.
	r := p.MustRaijin("printenv")
	if strings.Contains(r.Stdout+r.Stderr, secret) || !strings.Contains(r.Stdout, "OPS_SECRET=") {
		t.Errorf("printenv should list OPS_SECRET redacted:\n%s", r)
	}
	if r := p.MustRaijin("printenv", "--reveal"); !strings.Contains(r.Stdout, secret) {
		t.Errorf("printenv --reveal should show the value:\n%s", r)
	}

	p.MustRaijin("deploy")
	if r := p.MustRaijin("deploy", "--dry-run", "-v"); strings.Contains(r.Stdout+r.Stderr, secret) || !strings.Contains(r.Stdout, "/v1.0.0/.env (mode 0640)") {
		t.Errorf("deploy --dry-run should show the .env with the secret redacted:\n%s", r)
	}
	web, worker := p.WebUnit(h), p.App+"-worker.service"

	// status: version, URL, both units active; --json says the same.
	r = p.MustRaijin("app", "status")
	for _, want := range []string{"version 1.0.0", url, web, worker, "active (running)"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("app status lacks %q:\n%s", want, r)
		}
	}
	r = p.MustRaijin("app", "status", "--json")
	var st []struct {
		Host, Version string
		Units         []struct{ Unit, State string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || len(st) != 1 || st[0].Version != "1.0.0" || len(st[0].Units) != 2 || st[0].Units[1].State != "active" {
		t.Errorf("app status --json: %v\n%s", err, r.Stdout)
	}

	// exec: in the app directory, with the app's env; the exit code is the
	// remote one; stdin goes through.
	// Its output is redacted, unless --raw.
	r = p.MustRaijin("app", "exec", `echo "$GREETING|$(pwd)|$OPS_SECRET"`)
	if want := "hello from " + h.Name + "|" + dir + "|******"; strings.TrimSpace(r.Stdout) != want {
		t.Errorf("app exec printed %q, want %q", r.Stdout, want)
	}
	r = p.MustRaijin("app", "exec", "--raw", `echo "$GREETING|$(pwd)|$OPS_SECRET"`)
	if want := "hello from " + h.Name + "|" + dir + "|" + secret; strings.TrimSpace(r.Stdout) != want {
		t.Errorf("app exec --raw printed %q, want %q", r.Stdout, want)
	}
	if r := p.Raijin("app", "exec", "echo oops >&2; exit 7"); r.Code != 7 || !strings.Contains(r.Stderr, "oops") {
		t.Errorf("app exec of a command exiting 7: %s", r)
	}
	r = p.RaijinCtx(t.Context(), strings.NewReader("line from stdin\n"), "app", "exec", "cat")
	if r.Code != 0 || r.Stdout != "line from stdin\n" {
		t.Errorf("app exec cat with stdin: %s", r)
	}
	if r := p.MustRaijin("where"); strings.TrimSpace(r.Stdout) != dir {
		t.Errorf("the alias `where` (app exec pwd) printed %q", r.Stdout)
	}

	// logs: the journal of all processes, or of one.
	r = p.MustRaijin("app", "logs")
	if !strings.Contains(r.Stdout, "goapp 1.0.0 listening") || !strings.Contains(r.Stdout, "Started") {
		t.Errorf("app logs should show the app's own output and systemd's:\n%s", r)
	}
	r = p.MustRaijin("app", "logs", "worker", "-n", "20")
	if strings.Contains(r.Stdout, "goapp 1.0.0 listening") || !strings.Contains(r.Stdout, "worker") {
		t.Errorf("app logs worker should show the worker only:\n%s", r)
	}
	if r := p.Raijin("app", "logs", "nosuch"); r.Code != 2 || !strings.Contains(r.Stderr, `no process "nosuch"`) || !strings.Contains(r.Stderr, "web, worker") {
		t.Errorf("app logs of an unknown process: %s", r)
	}

	// stop, status (exit 1), start, restart of one process.
	p.MustRaijin("app", "stop", "web")
	if got, _ := h.Try("systemctl is-active " + web); strings.TrimSpace(got) != "inactive" {
		t.Errorf("after app stop web: %s is %q", web, got)
	}
	r = p.Raijin("app", "status")
	if r.Code != 1 || !strings.Contains(r.Stdout, web) || !strings.Contains(r.Stdout, "inactive (dead)") || !strings.Contains(r.Stderr, "1 unit(s) not active") {
		t.Errorf("app status with web stopped: %s", r)
	}
	p.MustRaijin("app", "start")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after app start: GET = %d %q", code, body)
	}
	pid := func() string { return strings.TrimSpace(h.Run(t, "systemctl show -p MainPID --value "+worker)) }
	webPid := strings.TrimSpace(h.Run(t, "systemctl show -p MainPID --value "+web))
	old := pid()
	r = p.MustRaijin("app", "restart", "worker")
	if !strings.Contains(r.Stderr, "restarted "+worker) {
		t.Errorf("app restart worker: %s", r)
	}
	if now := pid(); now == old || now == "0" {
		t.Errorf("the worker was not restarted: pid %s -> %s", old, now)
	}
	if now := strings.TrimSpace(h.Run(t, "systemctl show -p MainPID --value "+web)); now != webPid {
		t.Errorf("restarting the worker restarted web too: pid %s -> %s", webPid, now)
	}

	// server info and exec.
	r = p.MustRaijin("server", "info")
	for _, want := range []string{"system:   Debian", "memory:", "caddy:    2.", "sudo without password", p.App + "  1.0.0"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("server info lacks %q:\n%s", want, r.Stdout)
		}
	}
	if r := p.MustRaijin("server", "exec", "id -un; pwd"); r.Stdout != h.User+"\n/home/"+h.User+"\n" {
		t.Errorf("server exec: %q", r.Stdout)
	}
	if r := p.Raijin("server", "exec", "exit 5"); r.Code != 5 {
		t.Errorf("server exec exit 5: %s", r)
	}

	// create-user: a login user the same key works for, with a password
	// printed once; a second run finds everything in place.
	user := fmt.Sprintf("ops%d", os.Getpid()%10000)
	t.Cleanup(func() { h.Root(t, "userdel -r "+user+" 2>/dev/null; rm -f /etc/sudoers.d/raijin-"+user+"; true") })
	r = p.MustRaijin("server", "create-user", user, "--with-password", "--sudo")
	m := regexp.MustCompile(`password of ` + user + ` on \S+: (\S+)`).FindStringSubmatch(r.Stdout)
	if m == nil || !strings.Contains(r.Stderr, "changed: user "+user+" created") || !strings.Contains(r.Stderr, "changed: passwordless sudo for "+user) {
		t.Fatalf("create-user: %s", r)
	}
	if out, err := h.ssh(user, "id -un; sudo -n id -un"); err != nil || out != user+"\nroot\n" {
		t.Errorf("logging in as the new user and using sudo: %v %q", err, out)
	}
	// The password printed is the one set.
	chk := h.Root(t, fmt.Sprintf(`h=$(getent shadow %s | cut -d: -f2); python3 -W ignore -c 'import crypt,sys; print(crypt.crypt(sys.argv[2], sys.argv[1]) == sys.argv[1])' "$h" %s`, user, m[1]))
	if strings.TrimSpace(chk) != "True" {
		t.Errorf("the printed password does not match the user's password hash: %q", chk)
	}
	r = p.MustRaijin("server", "create-user", user, "--sudo")
	if strings.Contains(r.Stderr, "changed:") || !strings.Contains(r.Stderr, "in place: user "+user) {
		t.Errorf("a second create-user should change nothing: %s", r)
	}
}

// ptySession runs raijin on a local terminal, like a person at a keyboard.
type ptySession struct {
	t    *testing.T
	f    *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	code int
}

func (p *Project) startPTY(args ...string) *ptySession {
	p.t.Helper()
	cmd := exec.Command(raijinBin, args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "HOME="+p.Home, "SSH_AUTH_SOCK=", "NO_COLOR=1", "TERM=dumb")
	cmd.Env = append(cmd.Env, p.Env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 120})
	must(p.t, err)
	s := &ptySession{t: p.t, f: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		s.code = cmd.ProcessState.ExitCode()
		_ = err
		close(s.done)
	}()
	p.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
		f.Close()
	})
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// expect waits until the terminal shows re.
func (s *ptySession) expect(re string, timeout time.Duration) {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if rx.MatchString(s.output()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("the terminal never showed %q in %s:\n%s", re, timeout, s.output())
}

func (s *ptySession) send(keys string) {
	s.t.Helper()
	_, err := s.f.Write([]byte(keys))
	must(s.t, err)
}

func (s *ptySession) wait(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(timeout):
		s.t.Fatalf("raijin did not end within %s:\n%s", timeout, s.output())
	}
	return -1
}

// app shell, exec -i and logs -f on a real remote terminal: keys go through,
// Ctrl-C interrupts the remote program (not raijin), the exit code comes back.
func TestOperateInteractive(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "tty", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	dir := p.AppDir(h)

	s := p.startPTY("app", "shell")
	// Keys typed before the remote shell has started can be lost (sudo and
	// systemd-run set up the terminals between): type at the prompt, as a
	// person does.
	s.expect(`\$ $`, 20*time.Second)
	s.send("echo marker-$((6*7)) $GREETING; tty\r")
	s.expect(`marker-42 hello from `+h.Name, 20*time.Second)
	s.expect(`/dev/pts/\d+`, 5*time.Second)
	s.send("pwd\r")
	s.expect(regexp.QuoteMeta(dir), 5*time.Second)
	// The remote terminal has the local one's size, and follows it.
	s.send("echo size-$(stty size | tr ' ' x)\r")
	s.expect(`size-30x120`, 5*time.Second)
	must(t, pty.Setsize(s.f, &pty.Winsize{Rows: 40, Cols: 100}))
	time.Sleep(300 * time.Millisecond)
	s.send("echo size-$(stty size | tr ' ' x)\r")
	s.expect(`size-40x100`, 5*time.Second)
	s.send("sleep 60; echo slept-$((2+3))\r")
	time.Sleep(500 * time.Millisecond)
	s.send("\x03") // Ctrl-C: interrupts the remote sleep; the shell and raijin go on
	s.send("echo after-$((1+1))\r")
	s.expect(`after-2`, 5*time.Second)
	if strings.Contains(s.output(), "slept-5") {
		t.Errorf("Ctrl-C did not interrupt the remote sleep")
	}
	s.send("exit 3\r")
	if code := s.wait(10 * time.Second); code != 3 {
		t.Errorf("app shell ended with exit %d, want the shell's 3:\n%s", code, s.output())
	}

	s = p.startPTY("app", "exec", "-i", `printf 'name? '; read x; echo "got-$x-$(tty | cut -c1-8)"`)
	s.expect(`name\? `, 20*time.Second)
	s.send("abc\r")
	s.expect(`got-abc-/dev/pts`, 5*time.Second)
	if code := s.wait(10 * time.Second); code != 0 {
		t.Errorf("app exec -i ended with %d", code)
	}

	s = p.startPTY("server", "exec", "-i", "cat")
	s.send("typed-line\r")
	s.expect(`typed-line\r?\n.*typed-line`, 20*time.Second) // the terminal's echo, then cat's copy
	s.send("\x04")                                          // Ctrl-D: end of input for cat
	if code := s.wait(10 * time.Second); code != 0 {
		t.Errorf("server exec -i cat ended with %d", code)
	}

	s = p.startPTY("app", "logs", "-f", "-n", "5")
	s.expect(`goapp 1.0.0 listening`, 20*time.Second)
	before := len(s.output())
	p.MustRaijin("app", "restart") // new lines arrive while following
	for end := time.Now().Add(20 * time.Second); !strings.Contains(s.output()[before:], "listening"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("app logs -f showed nothing of the restart in 20s:\n%s", s.output())
		}
	}
	start := time.Now()
	s.send("\x03")
	s.wait(10 * time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ctrl-C took %s to end app logs -f", d)
	}
}

// aptRepo serves the named Debian packages (downloaded once on this machine,
// as the test server cannot) to test server h as its only apt source.
func aptRepo(t *testing.T, h *TestHost, pkgs ...string) {
	t.Helper()
	cache := filepath.Join(os.Getenv("RAIJIN_TESTHOST_CACHE"), "debs")
	if os.Getenv("RAIJIN_TESTHOST_CACHE") == "" {
		cache = "/var/cache/raijin-testhost/debs"
	}
	must(t, os.MkdirAll(cache, 0o755))
	var index bytes.Buffer
	for _, pkg := range pkgs {
		debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		if len(debs) == 0 {
			cmd := exec.Command("apt-get", "download", "-q", pkg)
			cmd.Dir = cache
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("apt-get download %s (for the test server's apt repository): %v\n%s", pkg, err, out)
			}
			debs, _ = filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		}
		if len(debs) == 0 {
			t.Fatalf("no %s .deb in %s", pkg, cache)
		}
		deb := debs[len(debs)-1]
		control, err := exec.Command("dpkg-deb", "-f", deb).Output()
		must(t, err)
		data, err := os.ReadFile(deb)
		must(t, err)
		fmt.Fprintf(&index, "%sFilename: ./%s\nSize: %d\nSHA256: %x\n\n", control, filepath.Base(deb), len(data), sha256.Sum256(data))
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Packages"), index.Bytes(), 0o644))
	for _, pkg := range pkgs {
		debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		must(t, os.Symlink(debs[len(debs)-1], filepath.Join(dir, filepath.Base(debs[len(debs)-1]))))
	}
	// This machine's end of the test server's link: 10.213.N.1.
	hostIP := h.Addr[:strings.LastIndex(h.Addr, ".")] + ".1"
	ln, err := net.Listen("tcp", hostIP+":0")
	must(t, err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	h.Root(t, fmt.Sprintf(`mv -f /etc/apt/sources.list /etc/apt/sources.list.raijin-test 2>/dev/null; echo 'deb [trusted=yes] http://%s ./' > /etc/apt/sources.list.d/raijin-test.list`, ln.Addr()))
}

// The python profile's output deploys once the host is filled in, built here
// by the sample app's own wheel script (the test server has no network, so
// the requirement is a local wheel).
func TestOperateInitPythonDeploys(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "pyinit", Hosts: []*TestHost{h}})
	must(t, os.Remove(p.Dir+"/raijin.toml"))
	p.MustRaijin("init", "--profile", "python", "--app", p.App)
	site := 9400 + p.Port%100
	src := filepath.Join(repoRoot, "testdata", "apps", "pyapp")
	toml := readFile(t, p.Dir+"/raijin.toml")
	for old, new := range map[string]string{
		`address = ""`:     fmt.Sprintf("address = %q", h.Addr),
		`domain_name = ""`: fmt.Sprintf(`domain_name = ":%d"`, site),
		`user = "deploy"`:  fmt.Sprintf("user = %q", h.User),
		// The sample app: its wheel, its requirement, its console script.
		`build_command = "python3 -m build --wheel"`:              fmt.Sprintf("build_command = \"python3 %s/build_wheel.py dist\"", src),
		`distfile = "dist/` + strings.ReplaceAll(p.App, "-", "_"): `distfile = "dist/pyapp`,
		`# requirements = "requirements.txt"`:                     `requirements = "requirements.txt"`,
		`web = "` + p.App + `"`:                                   `web = "pyapp serve"`,
		`upstream = "localhost:8000"`:                             fmt.Sprintf(`upstream = "localhost:%d"`, p.Port),
	} {
		if !strings.Contains(toml, old) {
			t.Fatalf("the python profile has no %q:\n%s", old, toml)
		}
		toml = strings.Replace(toml, old, new, 1)
	}
	p.Write("raijin.toml", toml, 0o644)
	p.Write(".env.prod", readFile(t, p.Dir+"/.env.prod")+"\nGREETING=from the python profile\n", 0o600)
	p.Write("requirements.txt", "./dist/greet-1.0-py3-none-any.whl\n", 0o644)
	r := p.MustRaijin("up")
	if !strings.Contains(r.Stderr, "in place: package python3-venv") || !strings.Contains(r.Stderr, "deployed "+p.App+" 0.1.0") {
		t.Errorf("up of the python profile should check python3-venv and run the example hook:\n%s", r.Stderr)
	}
	url := fmt.Sprintf("http://%s:%d/", h.Addr, site)
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "pyapp 0.1.0: from the python profile") {
		t.Fatalf("GET %s = %d %q", url, code, body)
	}
	if r := p.MustRaijin("app", "exec", "command -v pyapp"); strings.TrimSpace(r.Stdout) != p.AppDir(h)+"/.venv/bin/pyapp" {
		t.Errorf("app exec sees pyapp at %q, want the app's venv", r.Stdout)
	}
}
