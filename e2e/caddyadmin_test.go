package e2e

import (
	"strings"
	"testing"
)

// Caddy's admin endpoint is reachable by root only once raijin has
// bootstrapped the server: on localhost:2019 (Caddy's default) any local user
// could reconfigure Caddy, every app's own user among them. Neither the
// app's user (in its sandbox, through app exec, or plainly with sudo -u) nor
// the deploy user without sudo gets in; root does; systemctl reload caddy,
// a restart, redeploys and a second bootstrap all still work.
func TestServerCaddyAdminOnlyForRoot(t *testing.T) {
	h := rebootedHost(t, 0)
	const tcp = "curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://localhost:2019/config/"
	const sock = "curl -s -o /dev/null -w '%{http_code}' --max-time 3 --http1.0 -H 'Host:' --unix-socket /run/caddy/admin.sock http://localhost/config/"
	if out, _ := h.Try(tcp); out != "200" {
		t.Fatalf("before the bootstrap the deploy user should reach Caddy's stock admin endpoint (the finding): got %q", out)
	}

	p := NewProject(t, ProjectSpec{App: "adm", Hosts: []*TestHost{h}})
	p.setRelease("true") // the sample's migrate writes into the app directory, read-only for the app
	r := p.MustRaijin("server", "bootstrap")
	for _, want := range []string{"changed: caddy.service.d/raijin-admin.conf", "changed: /etc/caddy/Caddyfile: admin unix//run/caddy/admin.sock added", "in place: caddy enabled and running"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("bootstrap lacks %q:\n%s", want, r.Stderr)
		}
	}
	p.MustRaijin("deploy")
	url := p.SiteURL(h)
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "1.0.0") {
		t.Fatalf("GET %s = %d %q after the deploy", url, code, body)
	}

	// Nobody but root: the TCP endpoint is gone, the socket's directory is
	// caddy's alone.
	if out := h.Root(t, "stat -c '%U %a' /run/caddy; "+sock); out != "caddy 700\n200" {
		t.Errorf("as root: /run/caddy and the admin API answered %q, want caddy 700 and 200", out)
	}
	user := p.App // app_user defaults to the app's name
	for who, cmd := range map[string]string{
		"the deploy user":              tcp + "; echo; " + sock,
		"the app's user (sudo -u)":     "sudo -n -u " + user + " sh -c \"" + strings.ReplaceAll(tcp+"; echo; "+sock, `"`, `\"`) + "\"",
		"the app's user (its sandbox)": "",
	} {
		var out string
		if cmd == "" {
			r := p.Raijin("app", "exec", tcp+"; echo; "+sock) // one command line
			out = r.Stdout
		} else if who == "the deploy user" {
			out, _ = h.Try(cmd)
		} else {
			out = h.Root(t, cmd+"; true")
		}
		if out != "000\n000" {
			t.Errorf("%s reached Caddy's admin endpoint (TCP, then the socket): %q, want 000 and 000", who, out)
		}
	}

	// Reload, restart, redeploy, bootstrap again: all still work.
	h.Root(t, "systemctl reload caddy && systemctl restart caddy && systemctl is-active -q caddy")
	if out := h.Root(t, sock); out != "200" {
		t.Errorf("after a restart the admin socket answered %q", out)
	}
	p.MustRaijin("deploy", "--set-version", "1.0.1")
	if code, body := Get(t, url); code != 200 || !strings.Contains(body, "1.0.1") {
		t.Errorf("GET %s = %d %q after the redeploy", url, code, body)
	}
	before := h.Root(t, "cat /etc/caddy/Caddyfile")
	r = p.MustRaijin("server", "bootstrap")
	if strings.Contains(r.Stderr, "changed: /etc/caddy/Caddyfile") || strings.Contains(r.Stderr, "changed: caddy.service.d") ||
		!strings.Contains(r.Stderr, "in place: /etc/caddy/Caddyfile: admin endpoint on a unix socket") {
		t.Errorf("a second bootstrap should leave the admin endpoint in place:\n%s", r.Stderr)
	}
	if after := h.Root(t, "cat /etc/caddy/Caddyfile"); after != before || strings.Count(after, "admin unix//run/caddy/admin.sock") != 1 {
		t.Errorf("a second bootstrap changed the Caddyfile:\n%s\n---\n%s", before, after)
	}
}

// A server bootstrapped before raijin moved the admin endpoint gets it on its
// next deploy, through Caddy's old address: no restart, no lost request.
func TestServerCaddyAdminMovedByDeploy(t *testing.T) {
	h := rebootedHost(t, 0)
	p := NewProject(t, ProjectSpec{App: "admdeploy", Hosts: []*TestHost{h}})
	p.setRelease("true") // the sample's migrate writes into the app directory, read-only for the app
	h.Root(t, "systemctl show -p MainPID --value caddy > /root/caddy.pid")
	p.MustRaijin("deploy")
	if code, _ := Get(t, p.SiteURL(h)); code != 200 {
		t.Fatalf("GET after the deploy = %d", code)
	}
	out := h.Root(t, `grep -c '^	admin unix//run/caddy/admin.sock$' /etc/caddy/Caddyfile; [ "$(systemctl show -p MainPID --value caddy)" = "$(cat /root/caddy.pid)" ] && echo same caddy; curl -s -o /dev/null -w '%{http_code}' --max-time 3 localhost:2019/config/; true`)
	if out != "1\nsame caddy\n000" {
		t.Errorf("after the deploy (admin lines, Caddy's PID, TCP admin endpoint): %q, want 1, the same Caddy, 000", out)
	}
}
