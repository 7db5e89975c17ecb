package engine_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

const threeHosts = `
[[hosts]]
name = "web2"
address = "192.0.2.2"
user = "deploy"

[[hosts]]
name = "web3"
address = "192.0.2.3"
user = "deploy"
`

// A recipe whose work phase fails on web2, and whose rollback flow says
// which version it switches back to.
const failOnWeb2 = `local raijin = require('raijin')
raijin.phase('work', function(ctx)
  if ctx.host.name == 'web2' then ctx.host:run('fail') end
  ctx.host:run('work ' .. ctx.version)
end)
raijin.phase('switch_back', function(ctx) ctx.host:run('back to ' .. ctx.version) end)
raijin.phases { 'work' }
raijin.flow('rollback', { 'switch_back' })
`

// runOn runs cfg's deploy flow with a fakeHost per host; versions is what
// each host's .versions holds when it is read.
func runOn(t *testing.T, cfg *config.Config, versions func(host string) string, mod func(*engine.Options)) (*engine.Report, map[string]*fakeHost, error) {
	t.Helper()
	hosts := map[string]*fakeHost{}
	for _, h := range cfg.Hosts {
		hosts[h.Name] = &fakeHost{name: h.Name}
	}
	o := engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts,
		Events: &events{}, PhaseTimeout: time.Minute,
		Connect: func(_ context.Context, h config.Host) (remote.Conn, func(), error) {
			f := hosts[h.Name]
			f.versions = versions(h.Name)
			return f.conn(), func() {}, nil
		},
	}
	if mod != nil {
		mod(&o)
	}
	rep, err := engine.Run(context.Background(), o)
	return rep, hosts, err
}

// Hosts run batch_size at a time; after a batch in which a host failed, the
// hosts left are skipped.
func TestBatchesStopAfterAFailure(t *testing.T) {
	cfg := project(t, map[string]string{"raijin.toml": threeHosts, "deploy.lua": failOnWeb2})
	rep, hosts, err := runOn(t, cfg, func(string) string { return "1.0.0\n" }, func(o *engine.Options) { o.BatchSize = 1 })
	if err == nil || !strings.HasPrefix(err.Error(), "host web2: phase work: ") {
		t.Fatalf("error %v, want web2's", err)
	}
	var got []string
	for _, h := range rep.Hosts {
		got = append(got, h.Host+" failed="+boolWord(h.Err != nil)+" skipped="+boolWord(h.Skipped))
	}
	want := []string{"web1 failed=no skipped=no", "web2 failed=yes skipped=no", "web3 failed=no skipped=yes"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report %q, want %q", got, want)
	}
	if n := len(hosts["web3"].log); n != 0 {
		t.Errorf("web3 was connected to: %q", hosts["web3"].log)
	}
}

// --all-or-nothing: when a host fails, the hosts that took the new version
// are switched back with the rollback flow.
func TestAllOrNothingRollsBackTheOthers(t *testing.T) {
	cfg := project(t, map[string]string{"raijin.toml": threeHosts, "deploy.lua": failOnWeb2})
	var mu sync.Mutex
	reads := map[string]int{}
	versions := func(host string) string {
		mu.Lock()
		defer mu.Unlock()
		reads[host]++
		if reads[host] > 1 { // the rollback's connect: the deploy recorded 2.0.0
			return "2.0.0\n1.0.0\n"
		}
		return "1.0.0\n"
	}
	rep, hosts, err := runOn(t, cfg, versions, func(o *engine.Options) { o.AllOrNothing = true })
	if err == nil || !strings.Contains(err.Error(), "host web2: phase work: ") {
		t.Fatalf("error %v, want web2's", err)
	}
	for _, h := range rep.Hosts {
		switch h.Host {
		case "web2":
			if h.RolledBack {
				t.Errorf("web2 failed, and was rolled back too")
			}
		default:
			if !h.RolledBack || h.RollbackErr != nil || h.Previous != "1.0.0" || h.Version != "2.0.0" {
				t.Errorf("%s: %+v, want rolled back from 2.0.0 to 1.0.0", h.Host, h)
			}
			if got := hosts[h.Host].commands(); !reflect.DeepEqual(got, []string{"work 2.0.0", "back to 1.0.0"}) {
				t.Errorf("%s ran %q", h.Host, got)
			}
		}
	}
}

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
