package recipe_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ctx.host is the server: its facts are fields, its steps methods called
// with a colon; a recipe cannot change it.
func TestHostObject(t *testing.T) {
	for _, tc := range []struct{ code, want string }{
		{`assert(ctx.host.nope == nil and type(ctx.host.run) == "function")`, ""},
		{`ctx.host.name = "other"`, "ctx.host is read-only (cannot set name)"},
		{`ctx.host.run("true")`, "bad argument #1 to run (ctx.host expected: call the method with a colon"},
		{`ctx["local"].run("true")`, "bad argument #1 to run (ctx.local expected"},
		{`ctx.host:systemctl()`, "bad argument #2 to systemctl (string expected, got nil)"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  " + tc.code + "\nend)\nraijin.phases { 't' }\n"})
			h := &fakeHost{name: "web1"}
			err := runPhase(t, cfg, h, "t")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "deploy.lua:3: "+tc.want) {
				t.Errorf("error %v, want deploy.lua:3: %s", err, tc.want)
			}
		})
	}
	cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  ctx.host:run('echo ' .. ctx.host.name .. ' ' .. ctx.host.user .. ' ' .. ctx.host.url)\nend)\nraijin.phases { 't' }\n"})
	h := &fakeHost{name: "web1"}
	if err := runPhase(t, cfg, h, "t"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"echo web1 deploy http://192.0.2.1/"}; !reflect.DeepEqual(h.commands, want) {
		t.Errorf("commands %q, want %q", h.commands, want)
	}
}

// A batch (or deferred) function that fails runs once, its error is the
// phase's, and none of the steps it queued are sent.
func TestFailingBatchRunsOnce(t *testing.T) {
	for _, method := range []string{"batch", "defer"} {
		cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  ctx.host:" + method + "(function(...)\n    ctx.host:run('step ' .. select('#', ...)); ctx['local']:run('echo ran >> calls')\n    error('boom')\n  end)\nend)\nraijin.phases { 't' }\n"})
		h := &fakeHost{name: "web1"}
		err := runPhase(t, cfg, h, "t")
		if err == nil || !strings.Contains(err.Error(), "deploy.lua:5: boom") {
			t.Errorf("%s: error %v, want deploy.lua:5: boom", method, err)
		}
		if len(h.commands) != 0 {
			t.Errorf("%s: the failed function's steps were sent: %q", method, h.commands)
		}
		if calls, _ := os.ReadFile(filepath.Join(cfg.Dir, "calls")); string(calls) != "ran\n" {
			t.Errorf("%s: the function ran %q times, want once", method, calls)
		}
	}
}
