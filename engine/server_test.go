package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

// checkHost answers the bootstrap's checks: a command containing a key of
// fails exits 1, every other one succeeds. It records the commands.
type checkHost struct {
	mu    sync.Mutex
	fails map[string]bool
	cmds  []string
}

func (h *checkHost) respond(_ context.Context, st remote.Step) (remote.Result, error) {
	if st.Kind != "run" {
		return remote.DefaultAnswer(st), nil
	}
	h.mu.Lock()
	h.cmds = append(h.cmds, st.Line)
	h.mu.Unlock()
	if strings.Contains(st.Desc, "@@versions") { // connect: home, user, (no) lock
		return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n"}, nil
	}
	if strings.Contains(st.Desc, "echo imported") { // ctx.host:caddy_import()
		if h.fails["caddy_import"] {
			return remote.Result{Stdout: "made conf.d\nimported\n"}, nil
		}
		return remote.Result{}, nil
	}
	if strings.Contains(st.Desc, "echo admin socket") { // ctx.host:caddy_admin()
		if h.fails["caddy_admin"] {
			return remote.Result{Stdout: "admin unit\nadmin socket\n"}, nil
		}
		return remote.Result{}, nil
	}
	for k := range h.fails {
		if strings.Contains(st.Desc, k) {
			return remote.Result{Code: 1}, nil
		}
	}
	return remote.Result{}, nil
}

func bootstrapOn(t *testing.T, mode string, fails ...string) (*checkHost, []string, error) {
	t.Helper()
	cfg, err := config.Parse(t.TempDir()+"/raijin.toml", []byte(`app = "shop"
version = "1.0.0"
installation_mode = "`+mode+`"
distfile = "dist/shop"
[processes]
web = "shop serve"
[[hosts]]
name = "prod"
address = "192.0.2.1"
user = "deploy"
`))
	if err != nil {
		t.Fatal(err)
	}
	h := &checkHost{fails: map[string]bool{}}
	for _, f := range fails {
		h.fails[f] = true
	}
	ev := &quietEvents{}
	o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "bootstrap", Flow: "bootstrap", Hosts: cfg.Hosts,
		NoLock: true, Events: ev, Connect: func(context.Context, config.Host) (remote.Conn, func(), error) {
			return &remote.Recorder{HostName: "prod", Respond: h.respond}, func() {}, nil
		}}
	_, err = engine.Run(context.Background(), o)
	return h, ev.logs, err
}

// On a server that has everything, the bootstrap only checks; where things
// are missing, it changes exactly those, and says so.
func TestBootstrapFlow(t *testing.T) {
	h, logs, err := bootstrapOn(t, "binary")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(h.cmds, "\n")
	for _, bad := range []string{"apt-get", "mkdir -p /home", "systemctl enable", "if mkdir", "/.audit.jsonl; [ -d"} {
		if strings.Contains(all, bad) {
			t.Errorf("a bootstrap with everything in place ran %q:\n%s", bad, all)
		}
	}
	if got := strings.Join(logs, "\n"); got != "in place: package caddy\nin place: package zstd\nin place: directory /etc/caddy/conf.d\n"+
		"in place: /etc/caddy/Caddyfile imports conf.d/*.caddy\n"+
		"in place: caddy.service.d/raijin-admin.conf (/run/caddy for the admin socket)\n"+
		"in place: /etc/caddy/Caddyfile: admin endpoint on a unix socket\nin place: caddy enabled and running\n"+
		"in place: apps directory /opt/raijin" {
		t.Errorf("in-place bootstrap said:\n%s", got)
	}

	// A Python app on a server without Caddy, python3-venv, the import, the
	// admin socket, the apps directory; Caddy not running.
	h, logs, err = bootstrapOn(t, "python-package", "dpkg-query", "test -d", "caddy_import", "caddy_admin", "systemctl is-enabled")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, c := range h.cmds {
		cmds = append(cmds, withValues(c))
	}
	all = strings.Join(cmds, "\n")
	for _, want := range []string{
		"apt-get install -y -q --no-install-recommends caddy zstd python3-venv",
		"mkdir -p /etc/caddy/conf.d && echo made conf.d",
		"import conf.d/*.caddy\\n' >> $main; echo imported",
		"systemctl enable caddy && systemctl restart caddy",
		"mkdir -p /opt/raijin",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the bootstrap of a bare server lacks %q:\n%s", want, all)
		}
	}
	if n := strings.Count(strings.Join(logs, "\n"), "changed: "); n != 9 {
		t.Errorf("want 9 changes reported (3 packages, conf.d, import, admin drop-in, admin socket, caddy, apps dir):\n%s", strings.Join(logs, "\n"))
	}

	// Without passwordless sudo it stops first, and says how to fix it.
	h, _, err = bootstrapOn(t, "binary", "sudo -n true")
	if err == nil || !strings.Contains(err.Error(), "deploy cannot run sudo without a password on prod") ||
		!strings.Contains(err.Error(), "server create-user deploy --sudo") {
		t.Fatalf("bootstrap without sudo: %v", err)
	}
	if len(h.cmds) != 2 {
		t.Errorf("bootstrap without sudo went on:\n%s", strings.Join(h.cmds, "\n"))
	}
}
