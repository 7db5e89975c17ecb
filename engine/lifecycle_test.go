package engine_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

type quietEvents struct{ logs []string }

func (q *quietEvents) PhaseStart(string, string)                     {}
func (q *quietEvents) PhaseEnd(string, string, time.Duration, error) {}
func (q *quietEvents) Log(_, _, msg string)                          { q.logs = append(q.logs, msg) }
func (q *quietEvents) Command(string, string)                        {}
func (q *quietEvents) DryRun(string, string, string, string)         {}

// recordFlow runs flow of the built-in binary recipe against a recording
// host and returns the commands it ran.
func recordFlow(t *testing.T, flow string, tweak func(*engine.Options)) []string {
	t.Helper()
	return recordFlowOf(t, shopTOML, flow, tweak)
}

// recordFlowOf is recordFlow for the project of raijin.toml text toml.
func recordFlowOf(t *testing.T, toml, flow string, tweak func(*engine.Options)) []string {
	t.Helper()
	cfg, err := config.Parse(t.TempDir()+"/raijin.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	rec := &remote.Recorder{HostName: "prod"}
	o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: flow, Flow: flow, Hosts: cfg.Hosts, DryRun: true,
		Events: &quietEvents{}, Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return rec, func() {}, nil }}
	if tweak != nil {
		tweak(&o)
	}
	if _, err := engine.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, st := range rec.Steps {
		cmds = append(cmds, st.Line)
	}
	return cmds
}

// factsHost is a recording host (not a dry run) whose connect step finds
// the lock free, .versions holding versions and the version directories
// dirs (one a line each).
func factsHost(versions, dirs string) (*remote.Recorder, func(*engine.Options)) {
	rec := &remote.Recorder{HostName: "prod", Respond: func(_ context.Context, st remote.Step) (remote.Result, error) {
		if strings.Contains(st.Desc, "@@versions") {
			return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n" + versions + "@@dirs\n" + dirs}, nil
		}
		return remote.DefaultAnswer(st), nil
	}}
	return rec, func(o *engine.Options) {
		o.DryRun = false
		o.Connect = func(context.Context, config.Host) (remote.Conn, func(), error) { return rec, func() {}, nil }
	}
}

const shopTOML = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"
[webserver]
upstream = "localhost:8000"
[processes]
web = "shop serve"
worker = "shop work"
[[hosts]]
name = "prod"
address = "192.0.2.1"
user = "deploy"
domain_name = ":8080"
`

// Down stops and removes the units (both web slots, the web unit of an older
// raijin, the worker; the socket units first) and the live marker, the
// Caddy site and the app directory, in that order; Caddy stays without --full.
func TestDownFlow(t *testing.T) {
	var cmds []string
	for _, c := range recordFlow(t, "down", nil) {
		cmds = append(cmds, withValues(c))
	}
	all := strings.Join(cmds, "\n")
	order := []string{
		"for u in shop@blue.socket shop@green.socket shop.socket shop@blue.service shop@green.service shop.service shop-worker.timer shop-worker@.service shop-worker.service $kept; do",
		"[ -e /etc/systemd/system/$u ] && mine $u || continue",
		"systemctl disable -q --now $u 2>/dev/null || true\n  rm -rf /etc/systemd/system/$u /etc/systemd/system/$u.d;", "systemctl daemon-reload",
		"rm -f /var/lib/raijin/shop.green",
		"rm -f /etc/caddy/conf.d/shop.caddy", "systemctl reload caddy",
		"rm -rf -- /opt/raijin/shop",
	}
	at := 0
	for _, want := range order {
		i := strings.Index(all[at:], want)
		if i < 0 {
			t.Fatalf("down: %q missing or out of order in:\n%s", want, all)
		}
		at += i
	}
	if strings.Contains(all, "apt-get") {
		t.Errorf("down without --full touched the Caddy package:\n%s", all)
	}
	full := strings.Join(recordFlow(t, "down", func(o *engine.Options) { o.Full = true }), "\n")
	if !strings.Contains(full, "ls /etc/caddy/conf.d/*.caddy") || !strings.Contains(full, "apt-get purge -y -q caddy") {
		t.Errorf("down --full with no other site should purge Caddy:\n%s", full)
	}
}

// Prune alone is the prune step: what to delete is worked out from the
// versions read when the lock was taken, deleted in the round trip that
// writes the audit line and releases the lock; no switch, no restart.
func TestPruneFlow(t *testing.T) {
	rec, withFacts := factsHost("1.3\n1.2\n1.1\n", "v1.1\nv1.2\nv1.3\nvstray\n")
	recordFlow(t, "prune", func(o *engine.Options) {
		o.Keep = 2
		withFacts(o)
	})
	var cmds []string
	for _, st := range rec.Steps {
		cmds = append(cmds, st.Line)
	}
	all := strings.Join(cmds, "\n")
	if !strings.Contains(all, "rm -rf -- v1.1 vstray") || strings.Contains(all, "v1.2 ") || strings.Contains(all, "systemctl") {
		t.Errorf("prune ran:\n%s", all)
	}
	if rec.Trips != 2 {
		t.Errorf("%d round trips, want 2: the lock and facts, then the prune with the audit line", rec.Trips)
	}
}

// `raijin app start|stop|restart [PROC]` are the recipe's flows of those
// names: systemctl on the process's units (all of them without PROC), then
// the check a deploy makes, except after a stop.
func TestAppControlFlows(t *testing.T) {
	all := strings.Join(recordFlow(t, "stop", nil), "\n")
	if !strings.Contains(all, "systemctl stop shop@blue.service shop-worker.service") || strings.Contains(all, "units=") {
		t.Errorf("app stop ran:\n%s", all)
	}
	worker := strings.Join(recordFlow(t, "restart", func(o *engine.Options) { o.Process = "worker" }), "\n")
	if !strings.Contains(worker, "systemctl restart shop-worker.service") || strings.Contains(worker, "restart shop.service") ||
		!strings.Contains(worker, "units=shop-worker.service") {
		t.Errorf("app restart worker ran:\n%s", worker)
	}
	web := strings.Join(recordFlow(t, "start", func(o *engine.Options) { o.Process = "web" }), "\n")
	if !strings.Contains(web, "systemctl start shop@blue.service") || !strings.Contains(web, "http://localhost:8000/") || strings.Contains(web, "shop-worker") {
		t.Errorf("app start web ran:\n%s", web)
	}
}

// `raijin env push`: no build and no upload; a new version named after the
// current one (the next +envN of that code) made from its files with the
// new .env, switched to, restarted, recorded; the env carries the secret
// only as file content, never in a command line.
func TestEnvPushFlow(t *testing.T) {
	rec, withFacts := factsHost("1.3+env2\n1.3\n", "v1.3\nv1.3+env2\nv1.3+env4\n")
	recordFlow(t, "env_push", withFacts)
	var lines []string
	for _, st := range rec.Steps {
		switch st.Kind {
		case "upload":
			t.Errorf("env push uploaded %s", st.Local)
		case "write":
			if strings.Contains(st.Path, "/etc/caddy") {
				t.Errorf("env push wrote the Caddy site %s", st.Path)
			}
			lines = append(lines, "write "+st.Path)
		default:
			lines = append(lines, st.Line)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"FROM=1.3+env2", "TO=1.3+env5", "write /opt/raijin/shop/.v1.3+env5.raijin-tmp/.env", "VERSION=1.3+env5", `"to":"1.3+env5"`, `"command":"env_push"`} {
		if !strings.Contains(all, want) {
			t.Errorf("env push lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "go build") {
		t.Errorf("env push built:\n%s", all)
	}
}

// `raijin app maintenance`: the page is written as root (0644) with the
// message HTML-escaped, as a file, never in a command line; `app live`
// deletes it. Neither restarts anything.
func TestMaintenanceFlows(t *testing.T) {
	msg := `<script>alert(1)</script> & 'x' $(reboot)`
	rec := &remote.Recorder{HostName: "prod"}
	recordFlow(t, "maintenance", func(o *engine.Options) {
		o.Message = msg
		o.Connect = func(context.Context, config.Host) (remote.Conn, func(), error) { return rec, func() {}, nil }
	})
	var page string
	for _, st := range rec.Steps {
		if st.Kind == "write" && st.Path == "/var/lib/raijin/shop.maintenance.html" {
			page = string(st.Content)
			if st.Mode != 0o644 || st.Root == "" {
				t.Errorf("the page is written with mode %04o, as root %q", st.Mode, st.Root)
			}
			continue
		}
		if strings.Contains(st.Line, "reboot") || strings.Contains(st.Line, "restart shop") {
			t.Errorf("maintenance ran %q", st.Line)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;x&#39; $(reboot)") || strings.Contains(page, "<script>") {
		t.Errorf("the page does not hold the message escaped:\n%s", page)
	}
	live := strings.Join(recordFlow(t, "live", nil), "\n")
	if !strings.Contains(live, "PAGE=/var/lib/raijin/shop.maintenance.html") || !strings.Contains(live, `rm -f "$PAGE"`) {
		t.Errorf("app live ran:\n%s", live)
	}
}

// `raijin app maintenance` with a project's own Caddy site: the server's
// site is checked (a real shell runs the check against it), never pushed
// nor reloaded. An own site holding the route `app export-config` shows
// (`root /var/lib/raijin` and `try_files /shop.maintenance.html` apart) is
// ready; one without it, or a site an older raijin made, stops with a hint.
func TestMaintenanceOwnSite(t *testing.T) {
	route := `:8080 {
	@shop_maintenance {
		file {
			root /var/lib/raijin
			try_files /shop.maintenance.html
		}
		not path /up
	}
	handle @shop_maintenance {
		root * /var/lib/raijin
		rewrite * /shop.maintenance.html
		file_server {
			status 503
		}
	}
	handle {
		reverse_proxy localhost:8000
	}
}
`
	for _, tc := range []struct{ name, site, wantErr string }{
		{"own site with the route", route, ""},
		{"own site without it", ":8080 {\n\treverse_proxy localhost:8000\n}\n", "has no maintenance route: add the one of `raijin app export-config --dry-run`"},
		{"older raijin's site", "# Generated by raijin for shop.\n:8080 {\n\treverse_proxy localhost:8000\n}\n", "deploy first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			served := dir + "/served.caddy"
			if err := os.WriteFile(served, []byte(tc.site), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir+"/.raijin", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir+"/.raijin/shop.caddy", []byte(route), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(dir+"/raijin.toml", []byte("app = \"shop\"\nversion = \"1.0.0\"\ndistfile = \"dist/shop\"\n"+
				"[webserver]\nupstream = \"localhost:8000\"\nhealth_check = \"/up\"\n[processes]\nweb = \"shop serve\"\n"+
				"[[hosts]]\nname = \"prod\"\naddress = \"192.0.2.1\"\nuser = \"deploy\"\ndomain_name = \":8080\"\n"))
			if err != nil {
				t.Fatal(err)
			}
			rec := &remote.Recorder{HostName: "prod", Respond: func(ctx context.Context, st remote.Step) (remote.Result, error) {
				if strings.Contains(st.Desc, "@@versions") {
					return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n1.0.0\n@@dirs\nv1.0.0\n"}, nil
				}
				if strings.Contains(st.Line, "/etc/caddy/conf.d/shop.caddy") && strings.Contains(st.Line, "grep -qF") && st.Root != "" {
					out, err := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(st.Root, "/etc/caddy/conf.d/shop.caddy", served)).Output()
					if err != nil {
						t.Fatalf("the site check failed: %v", err)
					}
					return remote.Result{Stdout: string(out)}, nil
				}
				return remote.DefaultAnswer(st), nil
			}}
			o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "maintenance", Flow: "maintenance", Hosts: cfg.Hosts,
				Events: &quietEvents{}, Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return rec, func() {}, nil }}
			_, err = engine.Run(context.Background(), o)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("maintenance failed: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("maintenance: err %v, want %q", err, tc.wantErr)
			}
			wrote := false
			for _, st := range rec.Steps {
				if strings.Contains(st.Line, "caddy validate") || strings.Contains(st.Path, "/etc/caddy") || strings.Contains(st.Line, "reload caddy") {
					t.Errorf("maintenance touched the Caddy site: %s", st.Line)
				}
				if st.Kind == "write" && st.Path == "/var/lib/raijin/shop.maintenance.html" {
					wrote = true
				}
			}
			if wrote != (tc.wantErr == "") {
				t.Errorf("page written: %v", wrote)
			}
		})
	}
}

// The report names the versions a run's prune deleted: env push with
// versions_to_keep = 1 prunes the version it replaced, which `raijin env
// push` then offers no rollback to.
func TestEnvPushReportsPruned(t *testing.T) {
	_, withFacts := factsHost("1.3\n1.2\n", "v1.2\nv1.3\n")
	cfg, err := config.Parse(t.TempDir()+"/raijin.toml", []byte("app = \"shop\"\nversion = \"1.0.0\"\ndistfile = \"dist/shop\"\nversions_to_keep = 1\n"+
		"[webserver]\nupstream = \"localhost:8000\"\n[processes]\nweb = \"shop serve\"\n"+
		"[[hosts]]\nname = \"prod\"\naddress = \"192.0.2.1\"\nuser = \"deploy\"\ndomain_name = \":8080\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "env_push", Flow: "env_push", Hosts: cfg.Hosts, Events: &quietEvents{}}
	withFacts(&o)
	rep, err := engine.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	h := rep.Hosts[0]
	if h.Version != "1.3+env1" || h.Previous != "1.3" || strings.Join(h.Pruned, ",") != "1.2,1.3" {
		t.Errorf("report: version %q previous %q pruned %q, want 1.3+env1 after 1.3, pruned 1.2,1.3", h.Version, h.Previous, h.Pruned)
	}
}
