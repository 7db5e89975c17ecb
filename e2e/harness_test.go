// Package e2e deploys real sample apps with the raijin binary to real test
// servers (systemd, sshd, sudo, Caddy, python3 in systemd-nspawn, see
// testdata/testhost) and checks what a user checks: HTTP through Caddy, the
// server layout, systemctl, rollback, failures.
//
// The servers are booted by TestMain. Where that cannot work (not root, not
// Linux) the tests fail in CI and skip loudly elsewhere.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"
)

var (
	repoRoot   string
	raijinBin  string
	goappSrc   string
	bootErr    error
	hostsMu    sync.Mutex
	hosts      = map[int]*TestHost{}
	baseIndex  = 20
	appCounter atomic.Int64
	goEnv      []string
)

// TestHost is a booted test server.
type TestHost struct {
	Name       string
	Index      int
	Addr       string
	User       string
	Key        string
	KnownHosts string
	via        *TestHost // the server the harness's ssh goes through (see OnlyThrough); nil: directly
}

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	goappSrc = filepath.Join(repoRoot, "testdata", "apps", "goapp")
	if v := os.Getenv("RAIJIN_TESTHOST_INDEX"); v != "" {
		baseIndex, _ = strconv.Atoi(v)
	}
	code := func() int {
		bin, err := os.MkdirTemp("", "raijin-e2e-bin")
		if err != nil {
			bootErr = err
			return m.Run()
		}
		defer os.RemoveAll(bin)
		raijinBin = filepath.Join(bin, "raijin")
		// The sample apps build with the go command under the project's own
		// HOME: keep them on this machine's build and module caches.
		for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
			if out, err := exec.Command("go", "env", k).Output(); err == nil {
				goEnv = append(goEnv, k+"="+strings.TrimSpace(string(out)))
			}
		}
		if out, err := exec.Command("go", "build", "-o", raijinBin, "./cmd/raijin").CombinedOutput(); err != nil {
			bootErr = fmt.Errorf("building raijin: %v\n%s", err, out)
			return m.Run()
		}
		switch {
		case runtime.GOOS != "linux":
			bootErr = fmt.Errorf("the test servers need Linux (systemd-nspawn); this is %s", runtime.GOOS)
		case os.Geteuid() != 0:
			bootErr = fmt.Errorf("the test servers need root (systemd-nspawn, network namespaces); run the tests as root")
		default:
			_, bootErr = bootHost(0)
		}
		defer shutdownHosts()
		// Stopped (Ctrl-C, or scripts/test.sh stopping its shards): the
		// test servers go down with the run, not left behind.
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
		go func() {
			s := <-stop
			fmt.Fprintf(os.Stderr, "e2e: %v: stopping the test servers\n", s)
			shutdownHosts()
			os.Exit(2)
		}()
		return m.Run()
	}()
	os.Exit(code)
}

func init() {
	// Build the repo's binary from the repo root whatever the test's cwd.
	if wd, err := os.Getwd(); err == nil && filepath.Base(wd) == "e2e" {
		os.Chdir(filepath.Dir(wd))
	}
}

func hostName(i int) string { return fmt.Sprintf("raijin-e2e-%d", baseIndex+i) }

// bootHost boots (once) test server number i of this run.
func bootHost(i int) (*TestHost, error) {
	hostsMu.Lock()
	defer hostsMu.Unlock()
	if h, ok := hosts[i]; ok {
		return h, nil
	}
	name := hostName(i)
	cmd := exec.Command(filepath.Join(repoRoot, "testdata/testhost/up.sh"), name, strconv.Itoa(baseIndex+i))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("booting test server %s: %v\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	state := lines[len(lines)-1]
	env, err := readEnv(filepath.Join(state, "env"))
	if err != nil {
		return nil, err
	}
	h := &TestHost{Name: name, Index: baseIndex + i, Addr: env["RAIJIN_TESTHOST_ADDR"], User: env["RAIJIN_TESTHOST_USER"],
		Key: env["RAIJIN_TESTHOST_KEY"], KnownHosts: env["RAIJIN_TESTHOST_KNOWN_HOSTS"]}
	hosts[i] = h
	return h, nil
}

// freshHost returns test server i with the stock setup: when an earlier test
// changed what every test expects (TestLifecycleDown removes Caddy), the
// server is booted again, clean (--volatile=overlay), in about 2 s.
func freshHost(t *testing.T, i int) *TestHost {
	t.Helper()
	h := host(t, i)
	if _, ok := h.Try("command -v caddy >/dev/null && systemctl is-active -q caddy"); ok {
		return h
	}
	return rebootedHost(t, i)
}

// rebootedHost boots test server i again, as new (--volatile=overlay), for a
// test that needs a server nothing else has touched.
func rebootedHost(t *testing.T, i int) *TestHost {
	t.Helper()
	harnessUp(t)
	hostsMu.Lock()
	delete(hosts, i)
	hostsMu.Unlock()
	h, err := bootHost(i)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// WebUnit is the unit of the web slot that serves the app on h
// ({app}@blue.service or {app}@green.service).
func (p *Project) WebUnit(h *TestHost) string {
	out, _ := h.Try("test -e /var/lib/raijin/" + p.App + ".green && echo green || echo blue")
	return p.App + "@" + strings.TrimSpace(out) + ".service"
}

// sshUp reports whether the server's sshd accepts a connection within wait.
func (h *TestHost) sshUp(wait time.Duration) bool {
	end := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, "22"), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// diagnose is the end of the server's console log and of its journal
// (read through its PID 1's namespaces, as sshd may be gone).
func (h *TestHost) diagnose() string {
	run := os.Getenv("RAIJIN_TESTHOST_RUN")
	if run == "" {
		run = "/run/raijin-testhost"
	}
	state := filepath.Join(run, h.Name)
	var b strings.Builder
	if out, err := exec.Command("tail", "-n", "30", filepath.Join(state, "nspawn.log")).CombinedOutput(); err == nil {
		b.WriteString("--- console (nspawn.log)\n")
		b.Write(out)
	}
	if pid, err := os.ReadFile(filepath.Join(state, "pid1")); err == nil {
		out, _ := exec.Command("nsenter", "-t", strings.TrimSpace(string(pid)), "-a", "journalctl", "-n", "60", "--no-pager").CombinedOutput()
		b.WriteString("--- journalctl -n 60\n")
		b.Write(out)
	}
	return b.String()
}

func shutdownHosts() {
	hostsMu.Lock()
	defer hostsMu.Unlock()
	for _, h := range hosts {
		exec.Command(filepath.Join(repoRoot, "testdata/testhost/down.sh"), h.Name).Run()
	}
}

func readEnv(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env, sc.Err()
}

// harnessUp fails the test when the test servers cannot boot on this
// machine: in CI and under scripts/test.sh (RAIJIN_E2E_REQUIRED=1), where an
// end-to-end test that does not run is a failure; a plain `go test`
// elsewhere skips it, loudly.
func harnessUp(t *testing.T) {
	t.Helper()
	if bootErr != nil {
		if os.Getenv("CI") != "" || os.Getenv("RAIJIN_E2E_REQUIRED") != "" {
			t.Fatalf("END-TO-END TESTS CANNOT RUN: %v", bootErr)
		}
		t.Skipf("END-TO-END TESTS NOT RUN: %v", bootErr)
	}
}

// host returns test server i, booting it if needed; without a harness the
// test fails in CI and skips loudly elsewhere.
func host(t *testing.T, i int) *TestHost {
	t.Helper()
	harnessUp(t)
	h, err := bootHost(i)
	if err != nil {
		t.Fatal(err)
	}
	if !h.sshUp(5 * time.Second) {
		// A server whose sshd no longer answers would fail this test and
		// every one after it: say what its console and journal show, and
		// boot it again.
		t.Logf("test server %s: nothing answers on %s:22; booting it again. Its console and journal:\n%s", h.Name, h.Addr, h.diagnose())
		return rebootedHost(t, i)
	}
	return h
}

// Project is a sample project on disk with its own HOME (ssh key and
// known_hosts for the test servers).
type Project struct {
	t    *testing.T
	Dir  string
	Home string
	App  string
	Port int
	Env  []string // extra environment for raijin
}

// ProjectSpec fills the raijin.toml template.
type ProjectSpec struct {
	App      string
	Hosts    []*TestHost
	Version  string
	Head     string // the build and release keys; default: those of the Go app
	Extra    string // more top-level TOML, before the tables
	Webextra string // more [webserver] keys
	Procs    string // [processes] body; default web = "goapp"
	HostEnv  string // env lines for each host
	HostTOML string // more keys for each host
	Domain   string // domain_name; default http://ADDR:PORT-derived
}

const tomlTemplate = `app = "{{.App}}"
version = "{{.Version}}"
{{if .Head}}{{.Head}}{{else -}}
build_command = "go -C {{.Src}} build -ldflags \"-X main.version=$RAIJIN_VERSION\" -o $PWD/dist/goapp ."
distfile = "dist/goapp"
release_command = "{{.App}} migrate"
{{end -}}
{{.Extra}}
[webserver]
upstream = "localhost:{{.Port}}"
health_check = "/up"
{{.Webextra}}
[processes]
{{.Procs}}
{{range .Hosts}}
[[hosts]]
name = "{{.Name}}"
address = "{{.Addr}}"
user = "{{.User}}"
domain_name = "{{$.Domain}}"
{{$.HostTOML}}
env = """
PORT={{$.Port}}
GREETING=hello from {{.Name}}
{{$.HostEnv}}
"""
{{end}}`

// NewProject writes a project deploying the sample Go app to the given hosts.
func NewProject(t *testing.T, spec ProjectSpec) *Project {
	t.Helper()
	if len(spec.Hosts) == 0 {
		spec.Hosts = []*TestHost{host(t, 0)}
	}
	n := appCounter.Add(1)
	if spec.App == "" {
		spec.App = fmt.Sprintf("app%d", n)
	}
	spec.App = fmt.Sprintf("%s-%d", spec.App, os.Getpid()%1000)
	if spec.Version == "" {
		spec.Version = "1.0.0"
	}
	if spec.Procs == "" {
		spec.Procs = fmt.Sprintf("web = %q", spec.App)
	}
	port := 8100 + int(n)
	dir := t.TempDir()
	p := &Project{t: t, Dir: dir, Home: filepath.Join(dir, "home"), App: spec.App, Port: port}
	if spec.Domain == "" {
		spec.Domain = fmt.Sprintf(":%d", 9100+int(n))
	}
	p.writeTOML(spec)
	ssh := filepath.Join(p.Home, ".ssh")
	must(t, os.MkdirAll(ssh, 0o700))
	key, err := os.ReadFile(spec.Hosts[0].Key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(ssh, "id_ed25519"), key, 0o600))
	var kh []byte
	for _, h := range spec.Hosts {
		data, err := os.ReadFile(h.KnownHosts)
		must(t, err)
		kh = append(kh, data...)
	}
	must(t, os.WriteFile(filepath.Join(ssh, "known_hosts"), kh, 0o600))
	t.Cleanup(func() { p.cleanupServer(spec.Hosts) })
	return p
}

func (p *Project) writeTOML(spec ProjectSpec) {
	tpl := template.Must(template.New("toml").Parse(tomlTemplate))
	var b bytes.Buffer
	data := struct {
		ProjectSpec
		Port int
		Src  string
	}{spec, p.Port, goappSrc}
	must(p.t, tpl.Execute(&b, data))
	must(p.t, os.WriteFile(filepath.Join(p.Dir, "raijin.toml"), b.Bytes(), 0o644))
}

// cleanupServer removes what a test's app left on the shared servers, so the
// tests do not pile up running apps.
func (p *Project) cleanupServer(hs []*TestHost) {
	for _, h := range hs {
		script := fmt.Sprintf(`systemctl disable --now %[1]s.service %[1]s.socket >/dev/null 2>&1; systemctl disable --now '%[1]s-*@*.service' >/dev/null 2>&1; systemctl stop '%[1]s-*@*.service' >/dev/null 2>&1; for u in /etc/systemd/system/%[1]s*.timer /etc/systemd/system/%[1]s*.service /etc/systemd/system/%[1]s*.socket; do [ -e "$u" ] && systemctl disable --now "$(basename "$u")" >/dev/null 2>&1; rm -rf "$u" "$u.d"; done; rm -f /etc/caddy/conf.d/%[1]s.caddy /var/lib/raijin/%[1]s.green /var/lib/raijin/%[1]s.maintenance.html; systemctl daemon-reload; systemctl reload caddy; true`, p.App)
		h.Root(p.t, script)
	}
}

// Write writes a file of the project.
func (p *Project) Write(name, content string, mode os.FileMode) {
	p.t.Helper()
	path := filepath.Join(p.Dir, name)
	must(p.t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(p.t, os.WriteFile(path, []byte(content), mode))
}

// Result is how a raijin run ended.
type Result struct {
	Stdout, Stderr string
	Code           int
	Duration       time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// Raijin runs the raijin binary in the project directory.
func (p *Project) Raijin(args ...string) Result {
	p.t.Helper()
	return p.RaijinCtx(context.Background(), nil, args...)
}

// RaijinCtx runs raijin with a context and optional stdin.
func (p *Project) RaijinCtx(ctx context.Context, stdin io.Reader, args ...string) Result {
	cmd := exec.CommandContext(ctx, raijinBin, args...)
	// Cancelling ctx is a Ctrl-C: raijin gets SIGINT and time to clean up.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "HOME="+p.Home, "SSH_AUTH_SOCK=", "NO_COLOR=1")
	cmd.Env = append(cmd.Env, goEnv...)
	cmd.Env = append(cmd.Env, p.Env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String(), Duration: time.Since(start)}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			res.Code = ee.ExitCode()
		} else {
			res.Code = -1
			res.Stderr += err.Error()
		}
	}
	return res
}

// MustRaijin runs raijin and fails the test unless it exits 0.
func (p *Project) MustRaijin(args ...string) Result {
	p.t.Helper()
	r := p.Raijin(args...)
	if r.Code != 0 {
		p.t.Fatalf("raijin %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// Run runs a command on the test server as the deploy user and returns its
// output; it fails the test on a non-zero exit.
func (h *TestHost) Run(t *testing.T, script string) string {
	t.Helper()
	out, err := h.ssh(h.User, script)
	if err != nil {
		t.Fatalf("on %s: %s: %v\n%s", h.Name, script, err, out)
	}
	return out
}

// Root runs a command on the test server as root.
func (h *TestHost) Root(t *testing.T, script string) string {
	t.Helper()
	out, err := h.ssh("root", script)
	if err != nil {
		t.Fatalf("on %s as root: %s: %v\n%s", h.Name, script, err, out)
	}
	return out
}

// Try runs a command as the deploy user and reports whether it exited 0.
func (h *TestHost) Try(script string) (string, bool) {
	out, err := h.ssh(h.User, script)
	return out, err == nil
}

func (h *TestHost) ssh(user, script string) (string, error) {
	args := h.sshOptions()
	if h.via != nil {
		// Through the jump host's ssh -W, with the same key and checks.
		args = append(args, "-o", "ProxyCommand=ssh "+strings.Join(h.via.sshOptions(), " ")+" -W %h:%p "+h.via.User+"@"+h.via.Addr)
	}
	cmd := exec.Command("ssh", append(args, user+"@"+h.Addr, script)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sshOptions are the options of the harness's ssh to h (file names without
// spaces: they also go into a ProxyCommand).
func (h *TestHost) sshOptions() []string {
	return []string{"-i", h.Key, "-o", "UserKnownHostsFile=" + h.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}
}

// AppDir is where the project's app lives on h.
func (p *Project) AppDir(h *TestHost) string {
	return "/opt/raijin/" + p.App
}

// StateDir is the app's state directory on h ($STATE_DIRECTORY), the app
// user's: the deploy user reads it with sudo.
func (p *Project) StateDir(h *TestHost) string {
	return "/var/lib/raijin/" + p.App
}

// Migrations is the log the sample apps' release command writes.
func (p *Project) Migrations(t *testing.T, h *TestHost) string {
	t.Helper()
	return h.Run(t, "sudo cat "+p.StateDir(h)+"/migrations.log")
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// Get fetches url and returns the status and body.
func Get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, _ := GetFull(t, url)
	return code, body
}

// GetFull is Get with the answer's headers.
func GetFull(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// OnTerminal runs raijin ARGS on a terminal (script(1)) with stdin as what
// is typed, and returns what the terminal showed.
func (p *Project) OnTerminal(args, stdin string) (string, error) {
	term := exec.Command("script", "-qec", raijinBin+" "+args, "/dev/null")
	term.Dir = p.Dir
	term.Env = append(os.Environ(), "HOME="+p.Home, "SSH_AUTH_SOCK=", "NO_COLOR=1")
	term.Env = append(term.Env, goEnv...)
	term.Stdin = strings.NewReader(stdin)
	out, err := term.CombinedOutput()
	return string(out), err
}

// SiteURL is the app's URL through Caddy on h (the domain_name ":PORT").
func (p *Project) SiteURL(h *TestHost) string {
	data, err := os.ReadFile(filepath.Join(p.Dir, "raijin.toml"))
	must(p.t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, `domain_name = ":`); ok {
			return fmt.Sprintf("http://%s:%s/", h.Addr, strings.TrimSuffix(v, `"`))
		}
	}
	p.t.Fatalf("no domain_name in raijin.toml")
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var osReadFile = os.ReadFile
