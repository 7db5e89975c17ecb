package recipe_test

import (
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

// A batch (or deferred) function that fails runs once, and its error is
// the phase's.
func TestFailingBatchRunsOnce(t *testing.T) {
	for _, method := range []string{"batch", "defer"} {
		cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  ctx.host:" + method + "(function(...)\n    ctx.host:run('step ' .. select('#', ...))\n    error('boom')\n  end)\nend)\nraijin.phases { 't' }\n"})
		h := &fakeHost{name: "web1"}
		err := runPhase(t, cfg, h, "t")
		if err == nil || !strings.Contains(err.Error(), "deploy.lua:5: boom") {
			t.Errorf("%s: error %v, want deploy.lua:5: boom", method, err)
		}
		if want := []string{"step 0"}; !reflect.DeepEqual(h.commands, want) {
			t.Errorf("%s: commands %q, want %q", method, h.commands, want)
		}
	}
}
