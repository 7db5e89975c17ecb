package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
)

// A phase runs as: raijin.before hooks (in the order declared), then
// before_<phase> hook files, then the newest override (each override's
// `default` is the one below it, down to the recipe's phase), then
// raijin.after hooks, then after_<phase> hook files.
func TestPhaseOrder(t *testing.T) {
	cfg := project(t, map[string]string{
		"deploy.lua": `local raijin = require("raijin")
raijin.phase("prep", function(ctx) ctx.host:run("prep") end)
raijin.override("release", function(ctx, default)
  ctx.host:run("inner override: start")
  default(ctx)
  ctx.host:run("inner override: end")
end)
raijin.override("release", function(ctx, default)
  ctx.host:run("outer override: start")
  default(ctx)
  ctx.host:run("outer override: end")
end)
raijin.before("release", function(ctx) ctx.host:run("before 1") end)
raijin.before("release", function(ctx) ctx.host:run("before 2") end)
raijin.after("release", function(ctx) ctx.host:run("after 1") end)
raijin.phases { "prep", "release" }
`,
		".raijin/hooks/before_release.lua": "local ctx = ...\nctx.host:run(\"before_release.lua on \" .. ctx.host.name)\n",
		".raijin/hooks/after_release.lua":  "local ctx = ...\nctx.host:run(\"after_release.lua\")\n",
	})
	h := &fakeHost{name: "web1"}
	if _, err := run(context.Background(), t, cfg, h, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"prep",
		"before 1", "before 2", "before_release.lua on web1",
		"outer override: start", "inner override: start",
		"sh /opt/raijin/shop/.apprun 'shop migrate'",
		"inner override: end", "outer override: end",
		"after 1", "after_release.lua",
	}
	if got := h.commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("commands, in order:\n got %q\nwant %q", got, want)
	}
}

// An override that does not call default replaces the step.
func TestOverrideWithoutDefault(t *testing.T) {
	cfg := project(t, map[string]string{
		"deploy.lua": `local raijin = require("raijin")
raijin.override("release", function(ctx, default) ctx.host:run("my own release") end)
raijin.phases { "release" }
`})
	h := &fakeHost{name: "web1"}
	if _, err := run(context.Background(), t, cfg, h, nil); err != nil {
		t.Fatal(err)
	}
	if got := h.commands(); !reflect.DeepEqual(got, []string{"my own release"}) {
		t.Errorf("commands = %q, want only the override's", got)
	}
}

// Executable hook files run on the deploying machine with the deploy's facts
// in their environment; what they print becomes log lines.
func TestExecutableHookEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env.txt")
	cfg := project(t, map[string]string{
		"deploy.lua":                  "require('raijin').phases { 'release' }\n",
		".raijin/hooks/after_release": "#!/bin/sh\nenv | grep '^RAIJIN_' | sort > " + out + "\necho notified chat\n",
	})
	h := &fakeHost{name: "web1", versions: "1.9.0\n1.8.0\n"}
	ev, err := run(context.Background(), t, cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	for _, want := range []string{"RAIJIN_APP=shop", "RAIJIN_VERSION=2.0.0", "RAIJIN_HOST=web1", "RAIJIN_PREVIOUS_VERSION=1.9.0", "RAIJIN_PHASE=release"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("hook environment lacks %s:\n%s", want, data)
		}
	}
	if !strings.Contains(strings.Join(ev.lines, "\n"), "log web1 release: notified chat") {
		t.Errorf("the hook's output is not logged: %q", ev.lines)
	}
}

// Errors while a phase runs read "host H: phase P: file:line: message", with
// the line of the Lua code that called the failing builtin; the traceback is
// kept apart (printed with -v only).
func TestRunErrorsNameTheLuaLine(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"failing command", `ctx.host:run("fail now")`, `host web1: phase release: deploy.lua:4: `},
		{"error()", `error("release is not allowed today")`, `host web1: phase release: deploy.lua:4: release is not allowed today`},
		{"bad argument to a builtin", `ctx.host:systemctl()`, `host web1: phase release: deploy.lua:4: bad argument #2 to systemctl`},
		{"unknown template", `raijin.template("nope.tmpl", {})`, `host web1: phase release: deploy.lua:4: no template "nope.tmpl"`},
		{"upload option of the wrong type", `ctx.host:upload("raijin.toml", "/srv/x", { series = "yes" })`, `host web1: phase release: deploy.lua:4: bad argument #4 to upload (opts.series must be true or false, not string)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phases { 'release' }\nraijin.override('release', function(ctx, default)\n  " + tc.body + "\nend)\n"})
			_, err := run(context.Background(), t, cfg, &fakeHost{name: "web1"}, nil)
			he := hostErr(t, err)
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n %s\nwant it to start with\n %s", err, tc.want)
			}
			if !strings.Contains(he.Traceback, "stack traceback") || strings.Contains(err.Error(), "stack traceback") {
				t.Errorf("the traceback belongs in Traceback only:\nerror: %s\ntraceback: %s", err, he.Traceback)
			}
			if errs.Code(err) != errs.CodeFailed {
				t.Errorf("exit code %d, want 1", errs.Code(err))
			}
		})
	}
}

// phase_timeout stops Lua that never ends, and says where it was.
func TestPhaseTimeoutStopsLua(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('spin', function(ctx)\n  while true do end\nend)\nraijin.phases { 'spin' }\n"})
	start := time.Now()
	_, err := run(context.Background(), t, cfg, &fakeHost{name: "web1"}, func(o *engine.Options) { o.PhaseTimeout = 200 * time.Millisecond })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %s with a 200ms phase_timeout", d)
	}
	hostErr(t, err)
	want := "host web1: phase spin: interrupted at deploy.lua:3: the phase ran longer than phase_timeout (200ms)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %s\nwant\n %s", err, want)
	}
}

// Ctrl-C (the run's context) stops a remote command in flight, names the
// phase, and the undo handlers of the phases that started still run.
func TestInterruptStopsRemoteCommand(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('switch', function(ctx) ctx.host:run('switch') end)
raijin.undo('switch', function(ctx) ctx.host:run('switch back') end)
raijin.phase('slow', function(ctx)
  ctx.host:run('block')
end)
raijin.phases { 'switch', 'slow' }
`})
	h := &fakeHost{name: "web1", cancelled: make(chan error, 1), blocking: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-h.blocking
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := run(ctx, t, cfg, h, nil)
	select {
	case cerr := <-h.cancelled:
		if cerr != context.Canceled {
			t.Errorf("the remote command ended with %v", cerr)
		}
	default:
		t.Error("the remote command was not cancelled")
	}
	want := "host web1: phase slow: interrupted at deploy.lua:5 (Ctrl-C or SIGTERM)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %v\nwant\n %s", err, want)
	}
	if got := h.commands(); !reflect.DeepEqual(got, []string{"switch", "block", "switch back"}) {
		t.Errorf("commands = %q, want the undo of switch after the interrupt", got)
	}
}

// Ctrl-C stops a busy loop in a local phase too.
func TestInterruptStopsLocalLua(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('spin', { where = 'local' }, function(ctx)\n  while true do end\nend)\nraijin.phases { 'spin' }\n"})
	ctx, cancel := context.WithCancel(context.Background())
	ev := &events{started: make(chan string, 10)}
	go func() {
		for p := range ev.started {
			if p == "local spin" {
				time.Sleep(50 * time.Millisecond)
				cancel()
			}
		}
	}()
	_, err := run(ctx, t, cfg, &fakeHost{name: "web1"}, func(o *engine.Options) { o.Events = ev })
	want := "host local: phase spin: interrupted at deploy.lua:3"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %v\nwant\n %s", err, want)
	}
}

// A phase_timeout in an executable hook stops it and names the hook.
func TestPhaseTimeoutStopsExecutableHook(t *testing.T) {
	cfg := project(t, map[string]string{
		"deploy.lua":                   "require('raijin').phases { 'release' }\n",
		".raijin/hooks/before_release": "#!/bin/sh\nexec sleep 30\n",
	})
	start := time.Now()
	_, err := run(context.Background(), t, cfg, &fakeHost{name: "web1"}, func(o *engine.Options) { o.PhaseTimeout = 300 * time.Millisecond })
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the hook was not stopped: the run took %s", d)
	}
	want := "host web1: phase release: interrupted in .raijin/hooks/before_release: the phase ran longer than phase_timeout (300ms)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n %v\nwant\n %s", err, want)
	}
}

// A recipe cannot swallow the interruption with pcall.
func TestPhaseTimeoutThroughPcall(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('spin', function(ctx)\n  while true do pcall(function() while true do end end) end\nend)\nraijin.phases { 'spin' }\n"})
	done := make(chan error, 1)
	go func() {
		_, err := run(context.Background(), t, cfg, &fakeHost{name: "web1"}, func(o *engine.Options) { o.PhaseTimeout = 200 * time.Millisecond })
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "phase spin: interrupted at deploy.lua:3") {
			t.Errorf("error: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pcall kept the phase running past phase_timeout")
	}
}

// Values passed in env = {...} reach a remote script exported and quoted by
// the one Quote helper, with or without sudo: the script reads them back
// exactly, whatever they hold. This is how the built-in recipes pass values
// to their fixed scripts.
func TestRunEnvReachesTheScriptQuoted(t *testing.T) {
	values := map[string]string{
		"A": `it's $(echo pwned) ` + "`echo pwned`" + ` "q" \ *`,
		"B": "two\nlines",
		"C": "",
	}
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('t', function(ctx)
  local env = { A = [=[` + values["A"] + `]=], B = "two\nlines", C = "" }
  ctx.host:run([[printf '%s|' "$A" "$B" "$C"]], { env = env })
  ctx.host:run([[printf '%s|' "$A" "$B" "$C"]], { env = env, sudo = true, cwd = "/" })
end)
raijin.phases { 't' }
`})
	h := &fakeHost{name: "web1"}
	if _, err := run(context.Background(), t, cfg, h, nil); err != nil {
		t.Fatal(err)
	}
	cmds := h.commands()
	if len(cmds) != 2 || !strings.HasPrefix(cmds[0], `export A='it'\''s $(echo pwned)`) || !strings.HasPrefix(cmds[1], "sudo -n sh -c ") {
		t.Fatalf("commands:\n%s", strings.Join(cmds, "\n"))
	}
	want := values["A"] + "|" + values["B"] + "|" + values["C"] + "|"
	for _, line := range []string{cmds[0], strings.TrimPrefix(cmds[1], "sudo -n ")} {
		out, err := exec.Command("sh", "-c", line).Output()
		if err != nil || string(out) != want {
			t.Errorf("%s\nprinted %q (%v), want %q", line, out, err, want)
		}
	}

	bad := project(t, map[string]string{"deploy.lua": "local raijin = require('raijin')\nraijin.phase('t', function(ctx)\n  ctx.host:run('true', { env = { ['A B'] = 'x' } })\nend)\nraijin.phases { 't' }\n"})
	_, err := run(context.Background(), t, bad, &fakeHost{name: "web1"}, nil)
	if err == nil || !strings.Contains(err.Error(), `deploy.lua:3: env name "A B"`) {
		t.Errorf("an invalid env name: %v", err)
	}
}

// connect and finish are phases like the others: their hooks run around
// raijin's own steps. Before connect the facts are not known yet; after it
// ctx has the paths and the versions; finish writes the audit line and
// releases the lock, and its after hooks run once that is done.
func TestConnectAndFinishAreHookable(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.phases { 'work' }
raijin.before('connect', function(ctx) ctx.host:run('before connect: ' .. tostring(ctx.paths.app_dir)) end)
raijin.after('connect', function(ctx) ctx.host:run('after connect: ' .. ctx.paths.app_dir .. ' ' .. ctx.previous .. ' ' .. ctx.host.user) end)
raijin.after('finish', function(ctx) ctx.host:run('after finish') end)
`})
	h := &fakeHost{name: "web1", versions: "0.9.0\n"}
	if _, err := run(context.Background(), t, cfg, h, nil); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	log := strings.Join(h.log, "\n")
	h.mu.Unlock()
	for _, want := range []string{"before connect: nil\ncd && printf", "after connect: /opt/raijin/shop 0.9.0 deploy\nwork",
		"rm -rf /opt/raijin/shop/.lock; }; true; [ -n \"$ok\" ]\nafter finish"} {
		if !strings.Contains(log, want) {
			t.Errorf("the host's log lacks %q:\n%s", want, log)
		}
	}

	// An override of connect that does not run raijin's step stops the run.
	cfg = project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.phases { 'work' }
raijin.override('connect', function(ctx, default) end)
`})
	h = &fakeHost{name: "web1"}
	_, err := run(context.Background(), t, cfg, h, nil)
	if err == nil || !strings.Contains(err.Error(), "phase connect: an override of the connect phase did not run raijin's own step") {
		t.Fatalf("want the connect override's error, got %v", err)
	}
	if strings.Contains(strings.Join(h.commands(), "\n"), "work") {
		t.Errorf("the run went on without the lock: %q", h.commands())
	}
}

// A finish override must run raijin's step; a hook that fails after the
// lock's release fails the run without undoing anything.
func TestFinishOverrideAndLateFailure(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.undo('work', function(ctx) ctx.host:run('undo work') end)
raijin.phases { 'work' }
raijin.override('finish', function(ctx, default) end)
`})
	h := &fakeHost{name: "web1"}
	_, err := run(context.Background(), t, cfg, h, nil)
	if err == nil || !strings.Contains(err.Error(), "phase finish: an override of the finish phase did not run raijin's own step") {
		t.Fatalf("want the finish override's error, got %v", err)
	}
	h.mu.Lock()
	log := strings.Join(h.log, "\n")
	h.mu.Unlock()
	if !strings.Contains(log, "undo work") || !strings.Contains(log, "rm -rf /opt/raijin/shop/.lock") {
		t.Errorf("the run should be undone and the lock released:\n%s", log)
	}

	cfg = project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.undo('work', function(ctx) ctx.host:run('undo work') end)
raijin.phases { 'work' }
raijin.after('finish', function(ctx) error('notify failed') end)
`})
	h = &fakeHost{name: "web1"}
	_, err = run(context.Background(), t, cfg, h, nil)
	if err == nil || !strings.Contains(err.Error(), "phase finish: ") || !strings.Contains(err.Error(), "notify failed") {
		t.Fatalf("want the after-finish hook's error, got %v", err)
	}
	h.mu.Lock()
	log = strings.Join(h.log, "\n")
	h.mu.Unlock()
	if strings.Contains(log, "undo work") || strings.Count(log, `"result":`) != 1 {
		t.Errorf("after the lock's release nothing is undone and one audit line is written:\n%s", log)
	}
}
