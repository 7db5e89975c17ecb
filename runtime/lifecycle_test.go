package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
)

type quietEvents struct{ logs []string }

func (q *quietEvents) PhaseStart(string, string)                     {}
func (q *quietEvents) PhaseEnd(string, string, time.Duration, error) {}
func (q *quietEvents) Log(_, _, msg string)                          { q.logs = append(q.logs, msg) }
func (q *quietEvents) Command(string, string)                        {}
func (q *quietEvents) DryRun(string, string, string, string)         {}

// recordFlow runs flow of the built-in binary recipe against a recording
// host and returns the commands it ran.
func recordFlow(t *testing.T, flow string, tweak func(*Options)) []string {
	t.Helper()
	cfg, err := config.Parse(t.TempDir()+"/raijin.toml", []byte(`app = "shop"
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
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &builtins.RecordingHost{HostName: "prod", Redactor: &builtins.Redactor{}}
	o := Options{Config: cfg, Sources: SourcesFor(cfg, ""), Command: flow, Flow: flow, Hosts: cfg.Hosts, DryRun: true,
		Events: &quietEvents{}, Connect: func(context.Context, config.Host) (builtins.Host, func(), error) { return rec, func() {}, nil }}
	if tweak != nil {
		tweak(&o)
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, a := range rec.Actions {
		cmds = append(cmds, a.Command)
	}
	return cmds
}

// Down stops and removes the units (socket-free app: web and worker), the
// Caddy site and the app directory, in that order; Caddy stays without --full.
func TestDownFlow(t *testing.T) {
	var cmds []string
	for _, c := range recordFlow(t, "down", nil) {
		cmds = append(cmds, withValues(c))
	}
	all := strings.Join(cmds, "\n")
	order := []string{
		"for u in shop.service shop-worker.service; do",
		"systemctl disable --now $u; rm -f /etc/systemd/system/$u;", "systemctl daemon-reload",
		"rm -f /etc/caddy/conf.d/shop.caddy", "systemctl reload caddy",
		"rm -rf -- /home/deploy/.local/share/raijin/shop",
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
	full := strings.Join(recordFlow(t, "down", func(o *Options) { o.Full = true }), "\n")
	if !strings.Contains(full, "ls /etc/caddy/conf.d/*.caddy") || !strings.Contains(full, "apt-get purge -y -q caddy") {
		t.Errorf("down --full with no other site should purge Caddy:\n%s", full)
	}
}

// Prune alone is the prune step: one script that works out on the server
// what to delete, no switch, no restart.
func TestPruneFlow(t *testing.T) {
	cmds := recordFlow(t, "prune", func(o *Options) { o.Keep = 2 })
	if len(cmds) != 1 || !strings.Contains(cmds[0], "head -n 2 .versions") || !strings.Contains(cmds[0], `rm -rf -- "v$v"`) {
		t.Errorf("prune ran:\n%s", strings.Join(cmds, "\n"))
	}
}
