package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// relay is a TCP forwarder to a test server's sshd that the test can cut:
// after N bytes from raijin on the next connection, or all at once.
type relay struct {
	t        *testing.T
	ln       net.Listener
	target   string
	cutAfter atomic.Int64 // armed for the next connection only; 0: never
	cuts     atomic.Int64 // connections cut so far
	mu       sync.Mutex
	conns    []net.Conn
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r := &relay{t: t, ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); r.CutAll() })
	go r.serve()
	return r
}

func (r *relay) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// CutNextAfter arms a cut of the next connection after n bytes from raijin.
func (r *relay) CutNextAfter(n int64) { r.cutAfter.Store(n) }

// CutAll drops every open connection, as a network failure would.
func (r *relay) CutAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	if len(r.conns) > 0 {
		r.cuts.Add(1)
	}
	r.conns = nil
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		limit := r.cutAfter.Swap(0)
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		go func() {
			var w io.Writer = s
			if limit > 0 {
				w = &cutWriter{w: s, left: limit, cut: func() { c.Close(); s.Close(); r.cuts.Add(1) }}
			}
			io.Copy(w, c)
			c.Close()
			s.Close()
		}()
		go func() { io.Copy(c, s); c.Close(); s.Close() }()
	}
}

type cutWriter struct {
	w    io.Writer
	left int64
	cut  func()
}

func (cw *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) >= cw.left {
		cw.w.Write(p[:cw.left])
		cw.cut()
		return 0, io.ErrClosedPipe
	}
	cw.left -= int64(len(p))
	return cw.w.Write(p)
}

// viaRelay points the project's host at the relay (127.0.0.1:PORT) and
// records the server's host key for [127.0.0.1]:PORT in the project's
// known_hosts.
func (p *Project) viaRelay(h *TestHost, r *relay) {
	p.t.Helper()
	toml := readFile(p.t, filepath.Join(p.Dir, "raijin.toml"))
	toml = strings.Replace(toml, fmt.Sprintf("address = %q", h.Addr), fmt.Sprintf("address = \"127.0.0.1\"\nport = %d", r.Port()), 1)
	p.Write("raijin.toml", toml, 0o644)
	kh := readFile(p.t, h.KnownHosts)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(kh), "\n") {
		if rest, ok := strings.CutPrefix(l, h.Addr+" "); ok {
			lines = append(lines, fmt.Sprintf("[127.0.0.1]:%d %s", r.Port(), rest))
		}
	}
	if len(lines) == 0 {
		p.t.Fatalf("no key for %s in %s", h.Addr, h.KnownHosts)
	}
	must(p.t, os.WriteFile(filepath.Join(p.Home, ".ssh", "known_hosts"), []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// setRelease replaces the project's release_command.
func (p *Project) setRelease(cmd string) {
	p.t.Helper()
	toml := readFile(p.t, filepath.Join(p.Dir, "raijin.toml"))
	start := strings.Index(toml, "release_command = ")
	end := start + strings.Index(toml[start:], "\n")
	p.Write("raijin.toml", toml[:start]+fmt.Sprintf("release_command = %q", cmd)+toml[end:], 0o644)
}

// serving fails the test unless the app answers version v through Caddy.
func (p *Project) serving(h *TestHost, v, when string) {
	p.t.Helper()
	url := p.SiteURL(h)
	if code, body := Get(p.t, url); code != 200 || !strings.Contains(body, "goapp "+v+":") {
		p.t.Fatalf("%s: GET %s = %d %q, want version %s serving", when, url, code, body, v)
	}
}

// current is what the app dir says is live: the symlink and .versions line 1.
func (p *Project) current(h *TestHost) string {
	p.t.Helper()
	return h.Run(p.t, "cd "+p.AppDir(h)+" && readlink "+p.App+" && head -1 .versions")
}

// startRaijin starts raijin in the background (stdin closed) for a test that
// signals it.
func (p *Project) startRaijin(args ...string) (*exec.Cmd, *strings.Builder) {
	p.t.Helper()
	cmd := exec.Command(raijinBin, args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "HOME="+p.Home, "SSH_AUTH_SOCK=", "NO_COLOR=1")
	cmd.Env = append(cmd.Env, goEnv...)
	cmd.Env = append(cmd.Env, p.Env...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(p.t, cmd.Start())
	return cmd, out
}

// waitFor polls the server until script succeeds.
func waitFor(t *testing.T, h *TestHost, script string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, ok := h.Try(script); ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("on %s, %q did not succeed within %s", h.Name, script, within)
}

// The SSH connection drops in the middle of the binary's upload: a clear
// error, the previous version serving, no half-written file under the real
// name, the lock released over a new connection, and the next deploy works.
func TestFaultConnectionDropsMidUpload(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "dropup", Hosts: []*TestHost{h}})
	// The whole binary must go (not its difference from the live one), so
	// that the cut falls inside the upload.
	p.Env = append(p.Env, "RAIJIN_DELTA=0")
	r := newRelay(t, h.Addr+":22")
	p.viaRelay(h, r)
	p.MustRaijin("deploy")
	p.serving(h, "1.0.0", "after the first deploy")

	r.CutNextAfter(2 << 20) // 2 MiB into the session: inside the ~5 MiB upload
	res := p.Raijin("deploy", "--set-version", "2.0.0")
	t.Logf("deploy with the connection cut:\n%s", res)
	if res.Code == 0 || r.cuts.Load() == 0 {
		t.Fatalf("the connection was cut (%d cuts) but raijin exited %d", r.cuts.Load(), res.Code)
	}
	for _, want := range []string{"host " + h.Name + ": phase transfer:", "SSH connection to 127.0.0.1", "dropped during the upload", "1.0.0 is still serving"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, res.Stderr)
		}
	}
	p.serving(h, "1.0.0", "after the dropped upload")
	dir := p.AppDir(h)
	if got := p.current(h); got != "v1.0.0/goapp\n1.0.0\n" {
		t.Errorf("after the dropped upload the app dir says %q, want 1.0.0 current", got)
	}
	if out, ok := h.Try("test -e " + dir + "/v2.0.0/goapp"); ok {
		t.Errorf("a half-uploaded binary sits under its real name v2.0.0/goapp: %s", out)
	}
	if out, ok := h.Try("test -e " + dir + "/.lock"); ok {
		t.Errorf("the lock was left behind: %s", out)
	}

	res = p.MustRaijin("deploy", "--set-version", "2.0.0")
	p.serving(h, "2.0.0", "after the next deploy")
	if out := h.Run(t, "ls -a "+dir+"/v2.0.0"); strings.Contains(out, ".raijin-") {
		t.Errorf("temporary upload files are left in v2.0.0: %s", out)
	}
}

// The connection drops after install switched the symlink: while
// release_command runs, or once the new version was started (a hook after
// services). The previous version keeps serving (switched back and restarted
// over a new connection), the lock is released, and the next deploy repairs
// everything.
func TestFaultConnectionDropsAfterSwitch(t *testing.T) {
	for _, phase := range []string{"release", "services"} {
		t.Run(phase, func(t *testing.T) {
			h := host(t, 0)
			p := NewProject(t, ProjectSpec{App: "drop" + phase[:3], Hosts: []*TestHost{h}})
			r := newRelay(t, h.Addr+":22")
			p.viaRelay(h, r)
			p.MustRaijin("deploy")
			dir := p.AppDir(h)
			stalled := dir + "/stalled"
			if phase == "release" {
				// release_command runs as the app's user: it may write
				// only its state directory.
				stalled = p.StateDir(h) + "/stalled"
				p.setRelease(`touch "$STATE_DIRECTORY/stalled" && sleep 20 && ` + p.App + " migrate")
			} else {
				p.Write("deploy.lua", fmt.Sprintf("local raijin = require(\"raijin\")\nraijin.after(\"services\", function(ctx) ctx.host:run(%q, { cwd = ctx.paths.app_dir }) end)\n", "touch stalled && sleep 20"), 0o644)
			}
			cmd, out := p.startRaijin("deploy", "--set-version", "2.0.0")
			waitFor(t, h, "sudo test -e "+stalled, 60*time.Second)
			if phase == "services" {
				p.serving(h, "2.0.0", "before the drop")
			}
			r.CutAll()
			err := cmd.Wait()
			t.Logf("deploy with the connection cut during %s:\n%s", phase, out)
			if err == nil {
				t.Fatalf("raijin exited 0 although its connection dropped during %s", phase)
			}
			for _, want := range []string{"phase " + phase + ":", "dropped", "connecting again", "1.0.0 was restored"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			p.serving(h, "1.0.0", "after the drop during "+phase)
			if got := p.current(h); got != "v1.0.0/goapp\n1.0.0\n" {
				t.Errorf("after the drop the app dir says %q, want 1.0.0 switched back", got)
			}
			if out, ok := h.Try("test -e " + dir + "/.lock"); ok {
				t.Errorf("the lock was left behind: %s", out)
			}

			p.setRelease(p.App + " migrate")
			os.Remove(filepath.Join(p.Dir, "deploy.lua"))
			p.MustRaijin("deploy", "--set-version", "2.0.0")
			p.serving(h, "2.0.0", "after the next deploy")
			if got := p.current(h); got != "v2.0.0/goapp\n2.0.0\n" {
				t.Errorf("after the repairing deploy the app dir says %q", got)
			}
		})
	}
}

// raijin interrupted (SIGINT) mid-deploy undoes its install and releases the
// lock; killed (SIGKILL) it leaves a lock that the next deploy reports as
// stale with its holder: without a terminal it stops at once naming
// --force-unlock; on a terminal it asks; --force-unlock takes over.
func TestFaultRaijinKilledMidDeploy(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "killed", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	dir := p.AppDir(h)
	p.setRelease(`touch "$STATE_DIRECTORY/release-started" && sleep 15 && ` + p.App + " migrate")

	cmd, out := p.startRaijin("deploy", "--set-version", "2.0.0")
	waitFor(t, h, "sudo test -e "+p.StateDir(h)+"/release-started", 60*time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	t.Logf("deploy interrupted with SIGINT:\n%s", out)
	if err == nil {
		t.Fatalf("an interrupted deploy exited 0")
	}
	p.serving(h, "1.0.0", "after SIGINT")
	if got := p.current(h); got != "v1.0.0/goapp\n1.0.0\n" {
		t.Errorf("after SIGINT the app dir says %q, want 1.0.0 switched back", got)
	}
	if out, ok := h.Try("test -e " + dir + "/.lock"); ok {
		t.Errorf("SIGINT left the lock behind: %s", out)
	}

	h.Run(t, "sudo rm -f "+p.StateDir(h)+"/release-started")
	cmd, out = p.startRaijin("deploy", "--set-version", "2.0.0")
	waitFor(t, h, "sudo test -e "+p.StateDir(h)+"/release-started", 60*time.Second)
	pid := cmd.Process.Pid
	cmd.Process.Kill()
	cmd.Wait()
	t.Logf("deploy killed with SIGKILL:\n%s", out)
	p.serving(h, "1.0.0", "after SIGKILL")
	if out, ok := h.Try("cat " + dir + "/.lock/info"); !ok || !strings.Contains(out, fmt.Sprintf(`"pid":%d`, pid)) {
		t.Fatalf("after SIGKILL the lock should still name pid %d: %s", pid, out)
	}
	// What a run killed in the middle of an upload leaves (its script's
	// EXIT trap does not run): a patch half received beside the file, in
	// the version directory the next deploy of 2.0.0 takes again, and a
	// link half replaced; the next run that holds the lock removes them.
	h.Run(t, "head -c 100000 /dev/urandom > "+dir+"/v2.0.0/goapp.raijin-99999.p && ln -sfn v1.0.0 "+dir+"/.slot-green.raijin-tmp")

	p.setRelease(p.App + " migrate")
	start := time.Now()
	res := p.RaijinCtx(context.Background(), nil, "deploy", "--set-version", "2.0.0")
	if res.Code != 3 {
		t.Fatalf("a deploy meeting the stale lock should exit 3: %s", res)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("without a terminal raijin should fail at once, it took %s", d)
	}
	for _, want := range []string{"stale", fmt.Sprintf("pid %d", pid), "--force-unlock", "deploy` of 2.0.0"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("the stale-lock error lacks %q:\n%s", want, res.Stderr)
		}
	}

	// On a terminal, raijin asks whether to take the stale lock over.
	termOut, err := p.OnTerminal("deploy --set-version 2.0.0", "y\n")
	if err != nil || !strings.Contains(termOut, "so the lock is stale. Take it over? [y/N]") || !strings.Contains(termOut, "taking over the stale lock") {
		t.Fatalf("on a terminal, answering y should take the stale lock over: %v\n%s", err, termOut)
	}
	p.serving(h, "2.0.0", "after taking the stale lock over")
	if out := h.Run(t, "find "+dir+" -maxdepth 2 -name '*.raijin-*'"); out != "" {
		t.Errorf("the killed run's temporaries are still there after the next deploy:\n%s", out)
	}

	// --force-unlock takes over a stale lock without asking.
	dead := exec.Command("true")
	must(t, dead.Run())
	machine, _ := os.Hostname()
	h.Run(t, fmt.Sprintf(`mkdir %s/.lock && printf '%%s\n' '{"user":"ci","machine":"%s","pid":%d,"since":"2026-01-01T00:00:00Z","command":"deploy","version":"9.9.9","token":"x"}' > %s/.lock/info`,
		dir, machine, dead.Process.Pid, dir))
	res = p.Raijin("deploy", "--set-version", "3.0.0")
	if res.Code != 3 || !strings.Contains(res.Stderr, "ci@"+machine) || !strings.Contains(res.Stderr, "--force-unlock") {
		t.Fatalf("want exit 3 naming the holder and --force-unlock: %s", res)
	}
	p.MustRaijin("deploy", "--set-version", "3.0.0", "--force-unlock")
	p.serving(h, "3.0.0", "after --force-unlock")
	if out, ok := h.Try("test -e " + dir + "/.lock"); ok {
		t.Errorf("the lock was left behind: %s", out)
	}
}

// The server's disk fills up during the upload (apps_dir on a small tmpfs):
// a clear error, nothing switched, the previous version serving.
func TestFaultDiskFullDuringUpload(t *testing.T) {
	h := host(t, 0)
	mnt := fmt.Sprintf("/srv/tiny-%d", os.Getpid())
	h.Root(t, fmt.Sprintf("mkdir -p %[1]s && mount -t tmpfs -o size=9m,mode=0755,uid=$(id -u %[2]s),gid=$(id -g %[2]s) tmpfs %[1]s", mnt, h.User))
	t.Cleanup(func() { h.Root(t, "umount -l "+mnt+"; rmdir "+mnt+"; true") })
	p := NewProject(t, ProjectSpec{App: "diskfull", Hosts: []*TestHost{h}, HostTOML: fmt.Sprintf("apps_dir = %q", mnt)})
	p.MustRaijin("deploy")
	p.serving(h, "1.0.0", "after the first deploy")
	dir := mnt + "/" + p.App

	res := p.Raijin("deploy", "--set-version", "2.0.0")
	t.Logf("deploy onto a full disk:\n%s", res)
	if res.Code != 1 {
		t.Fatalf("a deploy onto a full disk should exit 1: %s", res)
	}
	for _, want := range []string{"phase transfer:", "no space left", "1.0.0 is still serving"} {
		if !strings.Contains(strings.ToLower(res.Stderr), strings.ToLower(want)) {
			t.Errorf("error lacks %q:\n%s", want, res.Stderr)
		}
	}
	p.serving(h, "1.0.0", "after the full disk")
	if got := h.Run(t, "cd "+dir+" && readlink "+p.App+" && head -1 .versions"); got != "v1.0.0/goapp\n1.0.0\n" {
		t.Errorf("after the full disk the app dir says %q, want 1.0.0", got)
	}
	if out, ok := h.Try("test -e " + dir + "/v2.0.0/goapp"); ok {
		t.Errorf("a partial binary sits under its real name: %s", out)
	}
	if out := h.Run(t, "ls -a "+dir+"/v2.0.0 2>/dev/null; true"); strings.Contains(out, ".raijin-") {
		t.Errorf("the partial upload was left in v2.0.0: %s", out)
	}
}

// A new version whose unit fails to start: exit 4 with the unit's last journal
// lines, and the previous version restored and serving.
func TestFaultUnitFailsToStart(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "nostart", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	p.Write("raijin.toml", strings.Replace(toml, "env = \"\"\"\n", "env = \"\"\"\nFAIL_START=1\n", 1), 0o644)

	res := p.Raijin("deploy", "--set-version", "2.0.0")
	if res.Code != 4 {
		t.Fatalf("a unit that does not start should exit 4: %s", res)
	}
	for _, want := range []string{"phase services:", "journalctl", "refusing to start (FAIL_START=1)", "1.0.0"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, res.Stderr)
		}
	}
	p.serving(h, "1.0.0", "after the failed start")
	if got := p.current(h); got != "v1.0.0/goapp\n1.0.0\n" {
		t.Errorf("after the failed start the app dir says %q", got)
	}
	if out := h.Run(t, "systemctl is-active "+p.WebUnit(h)+" || true"); strings.TrimSpace(out) != "active" {
		t.Errorf("%s is %q after the restore, want active", p.WebUnit(h), out)
	}
}
