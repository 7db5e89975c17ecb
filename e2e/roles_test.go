package e2e

import (
	"strings"
	"testing"
)

// setRoles gives host h the roles line in raijin.toml (replacing the one it
// has).
func (p *Project) setRoles(h *TestHost, roles string) {
	p.t.Helper()
	toml := readFile(p.t, p.Dir+"/raijin.toml")
	var out []string
	lines := strings.Split(toml, "\n")
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		if lines[i] == `name = "`+h.Name+`"` {
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "roles = ") {
				i++
			}
			out = append(out, "roles = "+roles)
		}
	}
	p.Write("raijin.toml", strings.Join(out, "\n"), 0o644)
}

// unitState is systemctl is-active of each unit on h, and whether its file
// exists: "active file", "inactive nofile", ...
func unitState(t *testing.T, h *TestHost, units ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range units {
		out, _ := h.Try("systemctl is-active " + u + "; test -e /etc/systemd/system/" + u + " && echo file || echo nofile")
		b.WriteString(u + ": " + strings.ReplaceAll(strings.TrimSpace(out), "\n", " ") + "\n")
	}
	return b.String()
}

// Roles: each host runs the units of its roles and no other, Caddy serves
// only where web runs, a role taken away has its units (and site) removed
// at the next deploy, -R selects hosts; release_command runs once per
// deploy, on the host tagged release, and when it fails no host switches.
func TestRolesAndReleaseOnce(t *testing.T) {
	h0, h1 := freshHost(t, 0), freshHost(t, 1)
	p := NewProject(t, ProjectSpec{App: "roles", Hosts: []*TestHost{h0, h1}})
	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), "[processes]\n", "[processes]\nworker = \"sleep 100000\"\n", 1), 0o644)
	p.setRoles(h0, `["web"]`)
	p.setRoles(h1, `["worker", "release"]`)
	web, worker := p.App+"@blue.service", p.App+"-worker.service"
	site := "/etc/caddy/conf.d/" + p.App + ".caddy"

	p.MustRaijin("deploy")
	if got, want := unitState(t, h0, web, worker), web+": active file\n"+worker+": inactive nofile\n"; got != want {
		t.Errorf("web host after the first deploy:\n%s\nwant\n%s", got, want)
	}
	if got, want := unitState(t, h1, web, worker), web+": inactive nofile\n"+worker+": active file\n"; got != want {
		t.Errorf("worker host after the first deploy:\n%s\nwant\n%s", got, want)
	}
	if _, ok := h1.Try("test -e " + site); ok {
		t.Errorf("the worker host has a Caddy site %s", site)
	}
	if code, body := Get(t, p.SiteURL(h0)); code != 200 || !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("GET on the web host: %d %q", code, body)
	}
	// release_command ran once, on h1 (tagged release).
	if got := p.Migrations(t, h1); got != "migrated to 1.0.0\n" {
		t.Errorf("migrations on the release host: %q", got)
	}
	if out, ok := h0.Try("sudo cat " + p.StateDir(h0) + "/migrations.log"); ok {
		t.Errorf("release_command ran on the web host too: %q", out)
	}

	// -R selects by role; an unknown role is an error that lists the roles.
	r := p.MustRaijin("app", "status", "-R", "worker")
	if !strings.Contains(r.Stdout, h1.Name) || strings.Contains(r.Stdout, h0.Name) {
		t.Errorf("app status -R worker should show %s only:\n%s", h1.Name, r.Stdout)
	}
	r = p.Raijin("app", "status", "-R", "nope")
	if r.Code != 2 || !strings.Contains(r.Stderr, "-R nope: no host has that role") || !strings.Contains(r.Stderr, "release, web, worker") {
		t.Errorf("-R nope: %s", r)
	}

	// The roles change: h1 loses worker and gains web, h0 gains worker.
	p.setRoles(h0, `["web", "worker"]`)
	p.setRoles(h1, `["web", "release"]`)
	r = p.MustRaijin("deploy", "--set-version", "1.1.0")
	if got, want := unitState(t, h0, worker), worker+": active file\n"; got != want {
		t.Errorf("h0 after gaining worker:\n%s", got)
	}
	if got, want := unitState(t, h1, worker), worker+": inactive nofile\n"; got != want {
		t.Errorf("h1 after losing worker: its unit should be stopped and removed:\n%s", got)
	}
	for _, h := range []*TestHost{h0, h1} {
		if code, body := Get(t, p.SiteURL(h)); code != 200 || !strings.Contains(body, "goapp 1.1.0") {
			t.Errorf("GET on %s: %d %q", h.Name, code, body)
		}
	}
	if got := p.Migrations(t, h1); got != "migrated to 1.0.0\nmigrated to 1.1.0\n" {
		t.Errorf("migrations on the release host: %q", got)
	}

	// h0 loses web: its slots, marker and site go.
	p.setRoles(h0, `["worker"]`)
	p.MustRaijin("deploy", "--set-version", "1.2.0")
	if got, want := unitState(t, h0, p.App+"@blue.service", p.App+"@green.service"), p.App+"@blue.service: inactive nofile\n"+p.App+"@green.service: inactive nofile\n"; got != want {
		t.Errorf("h0 after losing web:\n%s", got)
	}
	if _, ok := h0.Try("test -e " + site); ok {
		t.Errorf("h0 lost web, and its Caddy site %s is still there", site)
	}

	// release_command fails: no host switches to 1.3.0.
	p.editTOML("GREETING=hello from "+h1.Name, "FAIL_MIGRATE=1\nGREETING=hello from "+h1.Name)
	r = p.Raijin("deploy", "--set-version", "1.3.0")
	if r.Code == 0 {
		t.Fatalf("a failing release_command should fail the deploy: %s", r)
	}
	t.Logf("what the user sees:\n%s", r.Stderr)
	if !strings.Contains(r.Stderr, "release failed on "+h1.Name+", where it runs once for every host: nothing was switched") {
		t.Errorf("the error does not say where the release failed:\n%s", r.Stderr)
	}
	for _, h := range []*TestHost{h0, h1} {
		if got := strings.TrimSpace(h.Run(t, "head -1 "+p.AppDir(h)+"/.versions")); got != "1.2.0" {
			t.Errorf("%s is on %s after the failed release, want 1.2.0", h.Name, got)
		}
	}
	if code, body := Get(t, p.SiteURL(h1)); code != 200 || !strings.Contains(body, "goapp 1.2.0") {
		t.Errorf("GET on %s after the failed release: %d %q", h1.Name, code, body)
	}
}
