package engine_test

import (
	"context"
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
	var rec *remote.Recorder
	recordFlow(t, "prune", func(o *engine.Options) {
		o.Keep, o.DryRun = 2, false
		o.Connect = func(context.Context, config.Host) (remote.Conn, func(), error) {
			rec = &remote.Recorder{HostName: "prod", Respond: func(_ context.Context, st remote.Step) (remote.Result, error) {
				if strings.Contains(st.Desc, "@@versions") {
					return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n1.3\n1.2\n1.1\n@@dirs\nv1.1\nv1.2\nv1.3\nvstray\n"}, nil
				}
				return remote.DefaultAnswer(st), nil
			}}
			return rec, func() {}, nil
		}
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
