package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// markLua is shared by the recipes below: each step appends a line to
// order.log in the app directory on the server.
const markLua = `local raijin = require("raijin")
local function mark(ctx, what)
  ctx.host:run("echo " .. raijin.quote(what) .. " >> order.log", { cwd = ctx.paths.app_dir })
end
`

// A project's deploy.lua overrides release (keeping the built-in step), adds
// an after("services") hook, and a hook file runs before release; on a real
// server they run in that order, around the built-in steps. --recipe loads
// another file instead, and raijin.phases replaces the flow.
func TestRecipeOverridesHooksAndFlows(t *testing.T) {
	h := host(t, 0)
	// [hooks] of raijin.toml keep working next to the recipe's hooks: each
	// appends to local.log in the project directory.
	p := NewProject(t, ProjectSpec{App: "recipe", Hosts: []*TestHost{h}, Extra: `[hooks]
pre_build = "echo pre_build $RAIJIN_VERSION >> local.log"
pre_deploy = "echo pre_deploy >> local.log"
post_deploy = "echo post_deploy >> local.log"
`})
	p.Write("deploy.lua", markLua+`
raijin.override("release", function(ctx, default)
  mark(ctx, "override release: start " .. ctx.version)
  default(ctx)
  local last = ctx.host:run("tail -n 1 " .. ctx.paths.state_dir .. "/migrations.log", { sudo = true }).stdout
  mark(ctx, "override release: after default: " .. last:gsub("\n", ""))
end)

raijin.after("services", function(ctx)
  local body = ctx.host:run("curl -fsS http://" .. ctx.config.webserver.upstream .. "/").stdout
  mark(ctx, "after services: " .. body:gsub("\n", ""))
end)
`, 0o644)
	p.Write(".raijin/hooks/before_release.lua", `local ctx = ...
ctx.host:run("echo 'before_release.lua (previous: " .. (ctx.previous or "none") .. ")' >> order.log", { cwd = ctx.paths.app_dir })
`, 0o644)
	hookOut := filepath.Join(p.Dir, "local.log")
	p.Write(".raijin/hooks/after_release", `#!/bin/sh
echo "after_release $RAIJIN_APP $RAIJIN_VERSION on $RAIJIN_HOST, previous '$RAIJIN_PREVIOUS_VERSION'" >> `+hookOut+"\n", 0o755)
	dir := p.AppDir(h)

	show := p.MustRaijin("recipe", "show")
	for _, want := range []string{"release        host   recipes/deploy.lua:", "before    .raijin/hooks/before_release.lua (hook file)", "override  deploy.lua:6", "after     .raijin/hooks/after_release (executable hook", "after     deploy.lua:13"} {
		if !strings.Contains(show.Stdout, want) {
			t.Errorf("recipe show lacks %q:\n%s", want, show.Stdout)
		}
	}

	p.MustRaijin("deploy")
	want := "before_release.lua (previous: none)\n" +
		"override release: start 1.0.0\n" +
		"override release: after default: migrated to 1.0.0\n" +
		"after services: goapp 1.0.0: hello from " + h.Name + "\n"
	if got := h.Run(t, "cat "+dir+"/order.log"); got != want {
		t.Errorf("order.log after the first deploy:\n%s\nwant\n%s", got, want)
	}
	if got := readFile(t, hookOut); got != "pre_build 1.0.0\npre_deploy\nafter_release "+p.App+" 1.0.0 on "+h.Name+", previous ''\npost_deploy\n" {
		t.Errorf("the executable hook wrote %q", got)
	}

	// --recipe: other.lua instead of deploy.lua (its override does not run).
	p.Write("other.lua", markLua+`
raijin.before("release", function(ctx) mark(ctx, "other.lua before release " .. ctx.version) end)
`, 0o644)
	h.Run(t, "rm "+dir+"/order.log")
	p.MustRaijin("deploy", "--recipe", "other.lua", "--set-version", "1.1.0")
	want = "other.lua before release 1.1.0\nbefore_release.lua (previous: 1.0.0)\n"
	if got := h.Run(t, "cat "+dir+"/order.log"); got != want {
		t.Errorf("order.log with --recipe other.lua:\n%s\nwant\n%s", got, want)
	}
	if got := readFile(t, hookOut); !strings.HasSuffix(got, "after_release "+p.App+" 1.1.0 on "+h.Name+", previous '1.0.0'\npost_deploy\n") {
		t.Errorf("the executable hook wrote %q", got)
	}
	if out := h.Run(t, "sudo tail -n 1 "+p.StateDir(h)+"/migrations.log"); !strings.Contains(out, "migrated to 1.1.0") {
		t.Errorf("the built-in release did not run with other.lua: %q", out)
	}

	// raijin.phases: a flow of its own, with a new phase and no release
	// (so no migration) and no proxy step.
	p.Write("flow.lua", markLua+`
raijin.phase("greet", function(ctx) mark(ctx, "greet " .. ctx.version) end)
raijin.phases { "secrets", "build", "user", "transfer", "install", "greet", "services", "record" }
`, 0o644)
	h.Run(t, "rm "+dir+"/order.log")
	r := p.MustRaijin("deploy", "--recipe", "flow.lua", "--set-version", "1.2.0")
	if strings.Contains(r.Stderr, " release ") || strings.Contains(r.Stderr, " proxy ") || !strings.Contains(r.Stderr, " greet ") {
		t.Errorf("the custom flow ran other phases:\n%s", r.Stderr)
	}
	if got := h.Run(t, "cat "+dir+"/order.log"); got != "greet 1.2.0\n" {
		t.Errorf("order.log with the custom flow = %q", got)
	}
	if out := p.Migrations(t, h); strings.Contains(out, "1.2.0") {
		t.Errorf("release ran in a flow without it: %q", out)
	}
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.2.0") {
		t.Errorf("after the custom flow GET / = %q, want 1.2.0", body)
	}
	if got := h.Run(t, "head -n 1 "+dir+"/.versions"); got != "1.2.0\n" {
		t.Errorf(".versions starts with %q", got)
	}
}

// A phase that runs too long is interrupted: the error names the phase and
// the Lua line, the remote command is stopped, and the previous version keeps
// serving (the undo of install switches back).
func TestRecipePhaseTimeoutStopsRemoteCommand(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "rcptimeout", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	p.Write("raijin.toml", "phase_timeout = \"3s\"\n"+readFile(t, filepath.Join(p.Dir, "raijin.toml")), 0o644)
	marker := "raijin-e2e-sleep-" + p.App
	p.Write("deploy.lua", `local raijin = require("raijin")
raijin.before("release", function(ctx)
  ctx.host:run("echo started; sleep 120; echo `+marker+` > /tmp/`+marker+`")
end)
`, 0o644)
	start := time.Now()
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "host "+h.Name+": phase release: interrupted at deploy.lua:3: the phase ran longer than phase_timeout (3s)") {
		t.Fatalf("want exit 1 naming the interrupted phase and line: %s", r)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("the deploy took %s", d)
	}
	if !strings.Contains(r.Stderr, "1.0.0 was restored") {
		t.Errorf("the error does not say the previous version was restored:\n%s", r.Stderr)
	}
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the interrupted deploy GET / = %q, want 1.0.0", body)
	}
	if out, _ := h.Try("pgrep -afx 'sleep 120'; echo rc=$?"); !strings.Contains(out, "rc=1") {
		t.Errorf("the remote command is still running on the server:\n%s", out)
	}
}

// Ctrl-C (SIGINT) during a phase stops the deploy and says which phase.
func TestRecipeInterrupt(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "rcpint", Hosts: []*TestHost{h}})
	p.Write("deploy.lua", `local raijin = require("raijin")
raijin.before("services", function(ctx)
  while true do end
end)
`, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- p.RaijinInterrupt(ctx, "services", "deploy") }()
	r := <-done
	if r.Code != 1 || !strings.Contains(r.Stderr, "host "+h.Name+": phase services: interrupted at deploy.lua:3 (Ctrl-C") {
		t.Fatalf("want exit 1 naming the interrupted phase: %s", r)
	}
	if out := h.Run(t, "ls -a "+p.AppDir(h)); strings.Contains(out, ".lock") {
		t.Errorf("the deploy lock was left behind:\n%s", out)
	}
}

// RaijinInterrupt runs raijin ARGS and sends it SIGINT, as Ctrl-C does, once
// phase `during` has started (the phase before it reported done).
func (p *Project) RaijinInterrupt(ctx context.Context, during string, args ...string) Result {
	p.t.Helper()
	cmd := exec.CommandContext(ctx, raijinBin, append([]string{"-v"}, args...)...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "HOME="+p.Home, "SSH_AUTH_SOCK=", "NO_COLOR=1")
	cmd.Env = append(cmd.Env, goEnv...)
	cmd.Env = append(cmd.Env, p.Env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	must(p.t, err)
	must(p.t, cmd.Start())
	var errb strings.Builder
	sc := bufio.NewScanner(stderr)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		errb.WriteString(line + "\n")
		if !sent && strings.HasPrefix(line, "…") && strings.HasSuffix(line, " "+during) {
			time.Sleep(500 * time.Millisecond)
			cmd.Process.Signal(os.Interrupt)
			sent = true
		}
	}
	err = cmd.Wait()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	}
	if !sent {
		p.t.Errorf("phase %s never started", during)
	}
	return res
}
