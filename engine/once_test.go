package engine_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

// A recipe with a once phase between two others: prepare fails on the host
// named in FAIL_PREPARE, migrate on the one in FAIL_MIGRATE (both in the
// recipe's text), and each undo says so.
func onceRecipe(failPrepare, failMigrate string) string {
	return `local raijin = require('raijin')
raijin.phase('prepare', function(ctx)
  if ctx.host.name == '` + failPrepare + `' then ctx.host:run('fail') end
  ctx.host:run('prepare')
end)
raijin.undo('prepare', function(ctx) ctx.host:run('undo prepare') end)
raijin.phase('migrate', { once = true }, function(ctx)
  if ctx.host.name == '` + failMigrate + `' then ctx.host:run('fail') end
  ctx.host:run('migrate')
end)
raijin.phase('switch', function(ctx) ctx.host:run('switch') end)
raijin.phases { 'prepare', 'migrate', 'switch' }
`
}

func commandsOf(hosts map[string]*fakeHost) map[string]string {
	out := map[string]string{}
	for name, h := range hosts {
		var cmds []string
		for _, c := range h.commands() {
			if c != "fail" {
				cmds = append(cmds, c)
			}
		}
		out[name] = strings.Join(cmds, ", ")
	}
	return out
}

// A once phase runs on the first host only, after every host got there,
// and before any host goes on; in later batches it is skipped.
func TestOncePhaseRunsOnOneHost(t *testing.T) {
	for _, batch := range []int{0, 1} {
		cfg := project(t, map[string]string{"raijin.toml": threeHosts, "deploy.lua": onceRecipe("", "")})
		_, hosts, err := runOn(t, cfg, func(string) string { return "1.0.0\n" }, func(o *engine.Options) { o.BatchSize = batch })
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"web1": "prepare, migrate, switch", "web2": "prepare, switch", "web3": "prepare, switch"}
		if got := commandsOf(hosts); !reflect.DeepEqual(got, want) {
			t.Errorf("batch %d: ran %q, want %q", batch, got, want)
		}
	}
}

// The host with the role release runs it, and is in the first batch.
func TestOncePhaseOnTheReleaseHost(t *testing.T) {
	toml := strings.Replace(threeHosts, `name = "web3"`, `name = "web3"`+"\nroles = [\"web\", \"release\"]", 1)
	cfg := project(t, map[string]string{"raijin.toml": toml, "deploy.lua": onceRecipe("", "")})
	rep, hosts, err := runOn(t, cfg, func(string) string { return "1.0.0\n" }, func(o *engine.Options) { o.BatchSize = 1 })
	if err != nil {
		t.Fatal(err)
	}
	if got := commandsOf(hosts)["web3"]; got != "prepare, migrate, switch" {
		t.Errorf("web3 ran %q, want the migration", got)
	}
	if rep.Hosts[0].Host != "web3" {
		t.Errorf("the first host deployed is %s, want web3 (release)", rep.Hosts[0].Host)
	}
}

// When a host fails before the once phase, it runs nowhere, and every host
// undoes what it did: nothing is switched.
func TestOncePhaseBlockedByAFailure(t *testing.T) {
	cfg := project(t, map[string]string{"raijin.toml": threeHosts, "deploy.lua": onceRecipe("web3", "")})
	_, hosts, err := runOn(t, cfg, func(string) string { return "1.0.0\n" }, nil)
	if err == nil || !strings.Contains(err.Error(), "migrate did not run: web3 failed in phase prepare; nothing was switched") {
		t.Fatalf("error %v, want the migration blocked by web3", err)
	}
	want := map[string]string{"web1": "prepare, undo prepare", "web2": "prepare, undo prepare", "web3": "undo prepare"}
	if got := commandsOf(hosts); !reflect.DeepEqual(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// When the once phase fails, every host undoes: nothing is switched.
func TestOncePhaseFailureStopsEveryHost(t *testing.T) {
	cfg := project(t, map[string]string{"raijin.toml": threeHosts, "deploy.lua": onceRecipe("", "web1")})
	_, hosts, err := runOn(t, cfg, func(string) string { return "1.0.0\n" }, nil)
	if err == nil || !strings.Contains(err.Error(), "migrate failed on web1, where it runs once for every host") {
		t.Fatalf("error %v, want web1's migration failure named on the others", err)
	}
	want := map[string]string{"web1": "prepare, undo prepare", "web2": "prepare, undo prepare", "web3": "prepare, undo prepare"}
	if got := commandsOf(hosts); !reflect.DeepEqual(got, want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// Ctrl-C while the once phase runs on its runner: the hosts that waited
// for it say it was interrupted there, not that it failed.
func TestOncePhaseInterrupted(t *testing.T) {
	cfg := project(t, map[string]string{"raijin.toml": threeHosts,
		"deploy.lua": strings.Replace(onceRecipe("", ""), "ctx.host:run('migrate')", "ctx.host:run('block')", 1)})
	hosts := map[string]*fakeHost{}
	for _, h := range cfg.Hosts {
		hosts[h.Name] = &fakeHost{name: h.Name, versions: "1.0.0\n"}
	}
	hosts["web1"].blocking = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-hosts["web1"].blocking; cancel() }()
	_, err := engine.Run(ctx, engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts,
		Events: &events{}, PhaseTimeout: time.Minute,
		Connect: func(_ context.Context, h config.Host) (remote.Conn, func(), error) {
			return hosts[h.Name].conn(), func() {}, nil
		},
	})
	if err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	for _, h := range []string{"web2", "web3"} {
		want := "host " + h + ": phase migrate: migrate was interrupted (Ctrl-C or SIGTERM) on web1, where it runs once for every host: nothing was switched"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "migrate failed on web1") {
		t.Errorf("the interrupted phase is reported as failed:\n%v", err)
	}
}
