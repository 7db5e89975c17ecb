package engine_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

const balancedTOML = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"
[webserver]
upstream = "localhost:8000"
health_check = "/up"
[processes]
web = "shop serve"
[[hosts]]
name = "lb"
address = "192.0.2.1"
user = "deploy"
domain_name = "shop.example.com"
roles = ["loadbalancer"]
[[hosts]]
name = "web1"
address = "10.0.0.11"
user = "deploy"
domain_name = ":8080"
roles = ["web"]
[[hosts]]
name = "web2"
address = "10.0.0.12"
user = "deploy"
roles = ["web"]
`

// recordBalanced runs a dry-run deploy over the balanced project and
// returns what each host was sent (commands, and the text they read on
// stdin), and the report.
func recordBalanced(t *testing.T, tweak func(*engine.Options)) (map[string]string, *engine.Report) {
	t.Helper()
	cfg, err := config.Parse(t.TempDir()+"/raijin.toml", []byte(balancedTOML))
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]*remote.Recorder{}
	for _, h := range cfg.Hosts {
		recs[h.Name] = &remote.Recorder{HostName: h.Name}
	}
	o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, DryRun: true,
		Events: &quietEvents{}, PhaseTimeout: time.Minute,
		Connect: func(_ context.Context, h config.Host) (remote.Conn, func(), error) {
			return recs[h.Name], func() {}, nil
		}}
	if tweak != nil {
		tweak(&o)
	}
	rep, err := engine.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, rec := range recs {
		var b strings.Builder
		for _, st := range rec.Steps {
			b.WriteString(withValues(st.Line) + "\n")
			if st.Input != nil {
				in, _ := io.ReadAll(st.Input)
				b.Write(in)
			}
			b.Write(st.Content)
		}
		out[name] = b.String()
	}
	return out, rep
}

// The load balancer gets its Caddy site in front of every web host, and
// nothing of the app: no user, no units, no lock, no upload.
func TestBalancerGetsItsSiteOnly(t *testing.T) {
	sent, rep := recordBalanced(t, nil)
	lb := sent["lb"]
	for _, want := range []string{
		"shop.example.com {\n\treverse_proxy 10.0.0.11:8080 10.0.0.12:80 {",
		"lb_policy round_robin", "lb_try_duration 5s", "fail_duration 10s",
		"health_uri /up", "health_interval 1s", "header_up Host {upstream_hostport}",
		"caddy validate",
	} {
		if !strings.Contains(lb, want) {
			t.Errorf("the balancer's steps lack %q:\n%s", want, lb)
		}
	}
	for _, not := range []string{"useradd", "systemctl enable", ".lock/", "/opt/raijin/shop/v1.0.0", "/var/lib/raijin/shop.out"} {
		if strings.Contains(lb, not) {
			t.Errorf("the balancer was sent %q:\n%s", not, lb)
		}
	}
	// The web hosts' sites answer 503 on the health check while the out
	// marker exists; without batches nobody is taken out.
	for _, web := range []string{"web1", "web2"} {
		if !strings.Contains(sent[web], "@shop_out {\n\t\tpath /up") {
			t.Errorf("%s's site has no out route:\n%s", web, sent[web])
		}
		if strings.Contains(sent[web], "touch /var/lib/raijin/shop.out") {
			t.Errorf("%s was taken out of the balancer without batches", web)
		}
	}
	last := rep.Hosts[len(rep.Hosts)-1]
	if last.Host != "lb" || !last.Balancer || last.Err != nil {
		t.Errorf("the last host result %+v, want the balancer's, ok", last)
	}
}

// With batches, each web host leaves the balancer before it installs the
// new version and joins it again with its last round trip.
func TestRollingDeployTakesWebHostsOut(t *testing.T) {
	sent, _ := recordBalanced(t, func(o *engine.Options) { o.BatchSize = 1 })
	for _, web := range []string{"web1", "web2"} {
		s := sent[web]
		leave := strings.Index(s, "touch /var/lib/raijin/shop.out && sleep 3")
		install := strings.Index(s, ".slot-")
		join := strings.Index(s, "rm -f /var/lib/raijin/shop.out && sleep 2")
		if leave < 0 || join < 0 || !(leave < join) {
			t.Errorf("%s: leave at %d, join at %d:\n%s", web, leave, join, s)
		}
		if install >= 0 && install < leave {
			t.Errorf("%s: the new version was installed before the host left the balancer:\n%s", web, s)
		}
	}
}

// The other flows of the app leave the balancer alone.
func TestPruneSkipsTheBalancer(t *testing.T) {
	sent, rep := recordBalanced(t, func(o *engine.Options) { o.Flow, o.Command = "prune", "prune" })
	if sent["lb"] != "" {
		t.Errorf("a prune sent the balancer:\n%s", sent["lb"])
	}
	for _, h := range rep.Hosts {
		if h.Host == "lb" {
			t.Errorf("a prune ran on the balancer: %+v", h)
		}
	}
}

// A down removes the balancer's site, and nothing else there.
func TestDownRemovesTheBalancersSite(t *testing.T) {
	sent, _ := recordBalanced(t, func(o *engine.Options) { o.Flow, o.Command = "down", "down" })
	lb := sent["lb"]
	if !strings.Contains(lb, "/etc/caddy/conf.d/shop.caddy") || strings.Contains(lb, "rm -rf -- /opt/raijin/shop") {
		t.Errorf("down on the balancer:\n%s", lb)
	}
}

// A batch that holds every web host does not take them out: nobody would
// be left to serve; blue/green keeps each serving instead.
func TestBatchOfEveryWebHostStaysIn(t *testing.T) {
	sent, _ := recordBalanced(t, func(o *engine.Options) { o.BatchSize = 2 })
	for _, web := range []string{"web1", "web2"} {
		if strings.Contains(sent[web], "touch /var/lib/raijin/shop.out") {
			t.Errorf("%s left the balancer in a batch with every web host:\n%s", web, sent[web])
		}
	}
}
