package recipe_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
)

// Mistakes in a recipe are configuration errors (exit 2) found when it loads,
// before anything runs, and they name the file and line.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"override of an unknown phase", map[string]string{"deploy.lua": "local raijin = require('raijin')\n\nraijin.override('relase', function(ctx, default) end)\n"},
			[]string{`deploy.lua:3: raijin.override: no phase "relase"; the phases are: apps_dir, balancer, build, `, `, release, `}},
		{"after hook of an unknown phase", map[string]string{"deploy.lua": "require('raijin').after('deploy', function() end)\n"},
			[]string{`deploy.lua:1: raijin.after: no phase "deploy"`}},
		{"syntax error", map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.before('release', function(ctx)\n  local x = = 1\nend)\n"},
			[]string{"deploy.lua:3: syntax error near '='"}},
		{"unterminated string", map[string]string{"deploy.lua": "local s = \"abc\n"},
			[]string{"deploy.lua:1: unterminated string near 'abc'"}},
		{"unterminated string on a middle line", map[string]string{"deploy.lua": "local a = 1\nlocal s = 'abc\nlocal b = 2\n"},
			[]string{"deploy.lua:2: unterminated string near 'abc'"}},
		{"unterminated string over an escaped newline", map[string]string{"deploy.lua": "local a = 1\nlocal s = \"abc\\\ndef\nlocal b = 2\n"},
			[]string{"deploy.lua:2: unterminated string near 'abc\ndef'"}},
		{"unterminated string at the end of the file", map[string]string{"deploy.lua": "local a = 1\nlocal s = 'abc"},
			[]string{"deploy.lua:2: unterminated string at the end of the file"}},
		{"redefining a phase of raijin's own", map[string]string{"deploy.lua": "require('raijin').phase('connect', function() end)\n"},
			[]string{"deploy.lua:1: raijin.phase: connect is raijin's own phase", "raijin.override, whose default must run"}},
		{"module that requires itself", map[string]string{"deploy.lua": "require('lib.a')\n", "lib/a.lua": "require('lib.b')\n", "lib/b.lua": "\nrequire('lib.a')\n"},
			[]string{`lib/b.lua:2: module "lib.a" requires itself (through the modules it requires)`}},
		{"runtime error while loading", map[string]string{"deploy.lua": "\n\nlocal x = nil + 1\n"},
			[]string{"deploy.lua:3: "}},
		{"syntax error in a required module", map[string]string{"deploy.lua": "require('lib.steps')\n", "lib/steps.lua": "return {\n"},
			[]string{"deploy.lua:1: lib/steps.lua:1: syntax error at the end of the file"}},
		{"syntax error in a hook file", map[string]string{".raijin/hooks/after_release.lua": "local ctx = ...\nctx.host:run(\n"},
			[]string{".raijin/hooks/after_release.lua:2: syntax error at the end of the file"}},
		{"hook file of an unknown phase", map[string]string{".raijin/hooks/before_relase.lua": "local ctx = ...\n"},
			[]string{`hook file .raijin/hooks/before_relase.lua: no phase "relase"`}},
		{"hook file not executable", map[string]string{".raijin/hooks/before_release": "echo hi\n"},
			[]string{"hook file .raijin/hooks/before_release is not executable"}},
		{"flow of an unknown phase", map[string]string{"deploy.lua": "require('raijin').phases { 'build', 'launch' }\n"},
			[]string{`deploy.lua:1: flow deploy names phase "launch", which no recipe defines`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(project(t, tc.files), recipe.Target{Name: "plan"})
			if err == nil {
				t.Fatal("the recipe loaded")
			}
			if code := errs.Code(err); code != errs.CodeUsage {
				t.Errorf("exit code %d, want %d", code, errs.CodeUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The Lua state has no way to the network or the filesystem but the raijin module.
func TestSandbox(t *testing.T) {
	for _, tc := range []struct{ code, want string }{
		{`io.open("/etc/passwd")`, "io"},
		{`os.execute("true")`, "execute"},
		{`os.remove("x")`, "remove"},
		{`os.getenv("HOME")`, "getenv"},
		{`dofile("deploy.lua")`, "dofile"},
		{`loadfile("deploy.lua")`, "loadfile"},
		{`load("return 1")`, "load"},
		{`loadstring("return 1")`, "loadstring"},
		{`require("io")`, `module "io" not found`},
		{`require("os")`, `module "os" not found`},
		{`require("raijin.binary")`, `module "raijin.binary" not found: raijin's own modules are raijin, raijin.deploy, `},
		{`require("raijin.common")`, `raijin.steps.build, `},
		{`require("raijin.steps")`, `module "raijin.steps" not found`},
		{`require("..secret")`, `module "..secret" not found`},
		{`require("/etc/passwd")`, `not found`},
		{`debug.getinfo(1)`, "debug"},
		{`package.loadlib("x", "y")`, "package"},
		{`ctx.config.app = "other"`, "ctx.config is read-only"},
		{`ctx.config.processes.web = "evil"`, "ctx.config is read-only"},
		{`ctx.config.webserver.upstream = "x"`, "ctx.config is read-only"},
		{`ctx.config.hosts[1] = nil`, "ctx.config is read-only"},
		{`ctx.config.hooks.pre_build = "rm -rf /"`, "ctx.config is read-only"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  " + tc.code + "\nend)\nraijin.phases { 't' }\n"})
			err := runPhase(t, cfg, &fakeHost{name: "web1"}, "t")
			if err == nil {
				t.Fatalf("%s ran in the sandbox", tc.code)
			}
			if !strings.Contains(err.Error(), "deploy.lua:3:") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want deploy.lua:3 and %q", err, tc.want)
			}
		})
	}
	// What the sandbox does allow: raijin, the built-in step modules, project
	// modules, and reading (not writing) the configuration.
	cfg := project(t, map[string]string{
		"deploy.lua": `local raijin = require("raijin")
local release = require("raijin.steps.release")
local steps = require("lib.steps")
raijin.phase("t", function(ctx)
  assert(type(release.run) == "function")
  assert(require("raijin") == raijin)
  steps.hello(ctx, ctx.config.app .. " " .. ctx.config.processes.web .. " " .. ctx.config.hosts[1].name)
end)
raijin.phases { "t" }
`,
		"lib/steps.lua": "local M = {}\nfunction M.hello(ctx, s) ctx.host:run('echo ' .. require('raijin').quote(s)) end\nreturn M\n",
	})
	h := &fakeHost{name: "web1"}
	if err := runPhase(t, cfg, h, "t"); err != nil {
		t.Fatal(err)
	}
	if got := h.commands; !reflect.DeepEqual(got, []string{"echo 'shop shop serve web1'"}) {
		t.Errorf("commands = %q", got)
	}
	if cfg.App != "shop" || cfg.Processes["web"] != "shop serve" {
		t.Errorf("the configuration changed: %+v", cfg)
	}
}

// Plan says where each phase, override and hook comes from.
func TestPlanSources(t *testing.T) {
	cfg := project(t, map[string]string{
		"deploy.lua": `local raijin = require("raijin")
raijin.override("release", function(ctx, default) default(ctx) end)
raijin.after("services", function(ctx) end)
raijin.before("connect", function(ctx) end)
`,
		".raijin/hooks/before_release.lua": "local ctx = ...\n",
		".raijin/hooks/after_finish.lua":   "local ctx = ...\n",
		".raijin/hooks/after_release":      "#!/bin/sh\n",
	})
	st, err := load(cfg, recipe.Target{Name: "plan"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	phases, err := st.Flow("deploy")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]recipe.PhaseInfo{}
	var names []string
	for _, p := range phases {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	// connect and finish, raijin's own, come around the host phases and are
	// hooked like any other.
	if want := []string{"secrets", "build", "connect", "user", "transfer", "leave_balancer", "install", "release", "services", "proxy", "record", "prune", "join_balancer", "finish", "done"}; !reflect.DeepEqual(names, want) {
		t.Errorf("phases %q, want %q", names, want)
	}
	if c, f := byName["connect"], byName["finish"]; c.Source != "raijin (built in)" || c.Local || !reflect.DeepEqual(c.Before, []string{"deploy.lua:4"}) ||
		f.Source != "raijin (built in)" || !reflect.DeepEqual(f.After, []string{".raijin/hooks/after_finish.lua"}) {
		t.Errorf("connect %+v, finish %+v", c, f)
	}
	rel := byName["release"]
	if !strings.HasPrefix(rel.Source, "recipes/deploy.lua:") || !reflect.DeepEqual(rel.Overrides, []string{"deploy.lua:2"}) ||
		!reflect.DeepEqual(rel.Before, []string{".raijin/hooks/before_release.lua"}) || !reflect.DeepEqual(rel.After, []string{".raijin/hooks/after_release"}) {
		t.Errorf("release: %+v", rel)
	}
	if got := byName["services"].After; !reflect.DeepEqual(got, []string{"deploy.lua:3"}) {
		t.Errorf("services after = %q", got)
	}
	if !strings.HasPrefix(rel.FlowSource, "recipes/deploy.lua:") {
		t.Errorf("flow source %q", rel.FlowSource)
	}
}

// A recipe that loops while it loads is stopped, and told what to do.
func TestLoadLoopIsStopped(t *testing.T) {
	defer recipe.SetLoadTimeout(200 * time.Millisecond)()
	cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\n\nwhile true do end\n"})
	_, err := load(cfg, recipe.Target{Name: "plan"})
	if err == nil || errs.Code(err) != errs.CodeUsage || !strings.Contains(err.Error(), "loading deploy.lua took longer than 200ms: deploy.lua:3:") {
		t.Errorf("error: %v", err)
	}
}
