package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// probeApp asks the Go sample app's /probe what its own process may do on
// h, with the paths of p's and other's files to try.
func probeApp(t *testing.T, h *TestHost, p, other *Project, write string) map[string]string {
	t.Helper()
	q := url.Values{
		"own":   {p.AppDir(h) + "/v1.0.0/goapp"},
		"keys":  {"/home/" + h.User + "/.ssh/authorized_keys"},
		"other": {other.AppDir(h) + "/.env"},
		"apps":  {other.AppDir(h)},
		"write": {write},
	}
	code, body := Get(t, p.SiteURL(h)+"probe?"+q.Encode())
	res := map[string]string{}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("GET /probe = %d %q (%v)", code, body, err)
	}
	return res
}

// checkConfined fails t unless the probe found the app confined: no sudo,
// its code, the deploy user's keys and another app's files out of reach,
// its state directory writable.
func checkConfined(t *testing.T, res map[string]string, user string) {
	t.Helper()
	for _, k := range []string{"sudo", "write_own_code", "read_deploy_keys", "read_other_env", "list_other_app"} {
		if !strings.HasPrefix(res[k], "refused") {
			t.Errorf("the app's process may %s: %q", k, res[k])
		}
	}
	if res["write_state"] != "allowed" {
		t.Errorf("the app cannot write its state directory: %q", res["write_state"])
	}
	if res["user"] != user {
		t.Errorf("the app runs as %q, want its own user %q", res["user"], user)
	}
}

var exposureRe = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure is systemd-analyze security's rating of unit on h (0 best, 10
// worst).
func exposure(t *testing.T, h *TestHost, unit string) float64 {
	t.Helper()
	out := h.Root(t, "systemd-analyze security --no-pager "+unit+" | tail -n 1")
	m := exposureRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s said: %s", unit, out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	must(t, err)
	return v
}

// checkHardened fails t when a unit rates above 2.0 ("OK" and better).
func checkHardened(t *testing.T, h *TestHost, units ...string) {
	t.Helper()
	for _, u := range units {
		v := exposure(t, h, u)
		t.Logf("systemd-analyze security %s: %.1f", u, v)
		if v > 2.0 {
			t.Errorf("%s rates %.1f, above 2.0:\n%s", u, v, h.Root(t, "systemd-analyze security --no-pager "+u+" | grep -v '✓' | tail -n 30"))
		}
	}
}

// Each app runs as a system user of its own in a hardened unit: from
// inside, sudo, its own code, the deploy user's keys and another app's
// files are out of reach; its state directory is writable and what it
// wrote there survives a deploy, a rollback and a down without
// --delete-state. release_command and app exec run as that user too.
func TestAppRunsConfined(t *testing.T) {
	h := host(t, 0)
	other := NewProject(t, ProjectSpec{App: "neighbour", Hosts: []*TestHost{h}, HostEnv: "NEIGHBOUR_SECRET=s3cr3t-of-the-neighbour"})
	other.MustRaijin("deploy")
	p := NewProject(t, ProjectSpec{App: "confined", Hosts: []*TestHost{h}})
	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), "[processes]\n", "[processes]\nworker = \"sleep 100000\"\n", 1), 0o644)
	r := p.MustRaijin("deploy")
	if !strings.Contains(r.Stderr, "changed: created the system user "+p.App) {
		t.Errorf("the first deploy should create the app's user and say so:\n%s", r.Stderr)
	}

	checkConfined(t, probeApp(t, h, p, other, "one"), p.App)
	checkHardened(t, h, p.WebUnit(h), p.App+"-worker.service")
	if got := h.Root(t, fmt.Sprintf(`id -nG %[1]s; getent passwd %[1]s | cut -d: -f6,7; sudo -l -U %[1]s | tail -n 1 | sed 's/ on .*/ on HOST/'
stat -c '%%a %%U %%G %%n' %[2]s %[2]s/.env %[2]s/.versions %[2]s/.audit.jsonl %[2]s/.apprun %[2]s/.appenv %[3]s`, p.App, p.AppDir(h), p.StateDir(h))); got != fmt.Sprintf(
		"%[1]s\n/nonexistent:/usr/sbin/nologin\nUser %[1]s is not allowed to run sudo on %[4]s\n2750 deploy %[1]s %[2]s\n640 deploy %[1]s %[2]s/.env\n600 deploy %[1]s %[2]s/.versions\n600 deploy %[1]s %[2]s/.audit.jsonl\n600 deploy %[1]s %[2]s/.apprun\n640 deploy %[1]s %[2]s/.appenv\n750 %[1]s %[1]s %[3]s\n",
		p.App, p.AppDir(h), p.StateDir(h), "HOST") {
		t.Errorf("the app's user and files:\n%s", got)
	}

	// release_command and app exec: the app's user, its env, its sandbox.
	if got := p.Migrations(t, h); got != "migrated to 1.0.0\n" {
		t.Errorf("release_command wrote %q in the state directory", got)
	}
	r = p.MustRaijin("app", "exec", "id -un; echo $GREETING; echo $STATE_DIRECTORY; sudo -n true 2>/dev/null && echo SUDO; cat "+other.AppDir(h)+"/.env 2>/dev/null; touch v1.0.0/x 2>/dev/null && echo WROTE; true")
	if want := p.App + "\nhello from " + h.Name + "\n" + p.StateDir(h) + "\n"; r.Stdout != want {
		t.Errorf("app exec printed %q, want %q", r.Stdout, want)
	}

	// The state survives a deploy, a rollback and a down that keeps it.
	p.MustRaijin("deploy", "--set-version", "1.1.0")
	p.MustRaijin("rollback", "-y")
	if res := probeApp(t, h, p, other, "two"); res["state"] != "one\ntwo\n" {
		t.Errorf("after a deploy and a rollback the state directory holds %q", res["state"])
	}
	r = p.MustRaijin("down", "-y")
	if !strings.Contains(r.Stderr, "its data stays in "+p.StateDir(h)) {
		t.Errorf("down should say that the data stays:\n%s", r.Stderr)
	}
	if got := h.Root(t, "cat "+p.StateDir(h)+"/state.txt; id -un "+p.App); got != "one\ntwo\n"+p.App+"\n" {
		t.Errorf("after down the state directory and user: %q", got)
	}
	p.MustRaijin("deploy")
	if res := probeApp(t, h, p, other, "three"); res["state"] != "one\ntwo\nthree\n" {
		t.Errorf("after down and a new deploy the state directory holds %q", res["state"])
	}
	r = p.MustRaijin("down", "-y", "--delete-state")
	if !strings.Contains(r.Stderr, "deleted the state directory "+p.StateDir(h)) || !strings.Contains(r.Stderr, "deleted the system user "+p.App) {
		t.Errorf("down --delete-state should say what it deleted:\n%s", r.Stderr)
	}
	if got := h.Root(t, "test -e "+p.StateDir(h)+" && echo state-left; id "+p.App+" >/dev/null 2>&1 && echo user-left; true"); got != "" {
		t.Errorf("after down --delete-state: %s", got)
	}
}

// An app under the deploy user's home (apps_dir = ".local/share/raijin", the
// layout of an older raijin) is hardened as far as that allows: the rest of
// the home is hidden from it. One an older raijin ran as the deploy user
// moves to a user of its own at the next deploy, which says so, and its
// versions stay to roll back to. With the default apps_dir, a deploy notes
// an app left in the old place.
func TestHomeLayoutAndUpgrade(t *testing.T) {
	h := host(t, 0)
	other := NewProject(t, ProjectSpec{App: "homeother", Hosts: []*TestHost{h}, HostTOML: `apps_dir = ".local/share/raijin"`})
	other.MustRaijin("deploy")
	p := NewProject(t, ProjectSpec{App: "homeapp", Hosts: []*TestHost{h}, HostTOML: `apps_dir = ".local/share/raijin"`})
	dir := "/home/" + h.User + "/.local/share/raijin/" + p.App
	p.MustRaijin("deploy")
	q := url.Values{"own": {dir + "/v1.0.0/goapp"}, "keys": {"/home/" + h.User + "/.ssh/authorized_keys"},
		"other": {"/home/" + h.User + "/.local/share/raijin/" + other.App + "/.env"}, "apps": {"/home/" + h.User + "/.local/share/raijin/" + other.App}, "write": {"x"}}
	_, body := Get(t, p.SiteURL(h)+"probe?"+q.Encode())
	res := map[string]string{}
	must(t, json.Unmarshal([]byte(body), &res))
	checkConfined(t, res, p.App)
	checkHardened(t, h, p.WebUnit(h))

	// As an older raijin left it: the deploy user's files, its group,
	// readable by all, run as the deploy user; no app user.
	h.Root(t, fmt.Sprintf(`set -e; systemctl stop %[4]s
sed -i 's/^User=.*/User=%[3]s/; s/^Group=.*/Group=%[3]s/' /etc/systemd/system/%[4]s
chgrp -R %[3]s %[2]s; chmod -R o+rX,g-s %[2]s; userdel %[1]s; systemctl daemon-reload; systemctl start %[4]s`, p.App, dir, h.User, p.WebUnit(h)))
	r := p.MustRaijin("deploy", "--set-version", "1.1.0")
	for _, want := range []string{"changed: created the system user " + p.App, "changed: " + p.App + " now runs as " + p.App} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("the deploy after an older raijin's lacks %q:\n%s", want, r.Stderr)
		}
	}
	if got := h.Run(t, "stat -c '%a %G' "+dir+" "+dir+"/v1.0.0/goapp "+dir+"/.env"); got != "2750 "+p.App+"\n750 "+p.App+"\n640 "+p.App+"\n" {
		t.Errorf("after the move to the app's user: %q", got)
	}
	p.MustRaijin("rollback", "-y")
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("the rollback to the version an older raijin deployed: %q", body)
	}
	if res := probeApp(t, h, p, other, "y"); res["user"] != p.App {
		t.Errorf("after the rollback the app runs as %q", res["user"])
	}

	// The default apps_dir with the app still in the old place: a note.
	n := NewProject(t, ProjectSpec{App: "moved", Hosts: []*TestHost{h}})
	h.Run(t, "mkdir -p .local/share/raijin/"+n.App+" && echo 0.9.0 > .local/share/raijin/"+n.App+"/.versions")
	r = n.MustRaijin("deploy")
	if !strings.Contains(r.Stderr, "note: /home/"+h.User+"/.local/share/raijin/"+n.App+" holds this app as an older raijin installed it") {
		t.Errorf("a deploy with the app in the old place should say so:\n%s", r.Stderr)
	}
}

// A project loosens one setting of the sandbox in .raijin/sandbox.conf
// (a JIT's writable-executable memory): the units get it, the rest stays;
// a line that is not a setting is refused with its file and line, before
// anything is switched.
func TestSandboxLoosenedByTheProject(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "jit", Hosts: []*TestHost{h}})
	p.Write(".raijin/sandbox.conf", "# this app's JIT writes code at run time\nMemoryDenyWriteExecute=no\n", 0o644)
	p.MustRaijin("deploy")
	if got := h.Run(t, "for p in MemoryDenyWriteExecute NoNewPrivileges ProtectSystem; do systemctl show -p $p --value "+p.WebUnit(h)+"; done"); got != "no\nyes\nstrict\n" {
		t.Errorf("the unit's MemoryDenyWriteExecute, NoNewPrivileges, ProtectSystem: %q, want no, yes, strict", got)
	}
	checkHardened(t, h, p.WebUnit(h))

	p.Write(".raijin/sandbox.conf", "MemoryDenyWriteExecute=no\n\nlet the app write /srv\n", 0o644)
	r := p.Raijin("deploy", "--set-version", "1.1.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, ".raijin/sandbox.conf:3: \"let the app write /srv\" is not a setting") {
		t.Errorf("a sandbox.conf line that is not a setting: want exit 1 naming file and line: %s", r)
	}
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the refused sandbox.conf GET / = %q, want 1.0.0", body)
	}
}
