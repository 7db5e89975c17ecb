package recipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/upload"
	lua "github.com/yuin/gopher-lua"
)

// localObject is what ctx.local holds: the deploying machine, in the
// project directory.
type localObject struct{ *hostState }

// localMethods are the methods of ctx.local.
var localMethods = map[string]lua.LGFunction{
	"run":    localRun,
	"exists": localExists,
	"read":   localRead,
	"write":  localWrite,
	"sha256": localSHA256,
}

// localValue makes ctx.local.
func (s *hostState) localValue(L *lua.LState) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = &localObject{s}
	mt := L.NewTypeMetatable("raijin.local")
	if mt.RawGetString("__index") == lua.LNil {
		mt.RawSetString("__index", L.SetFuncs(L.NewTable(), localMethods))
	}
	L.SetMetatable(ud, mt)
	return ud
}

// checkLocal is the ctx.local a method is called on.
func checkLocal(L *lua.LState) *localObject {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if l, ok := ud.Value.(*localObject); ok {
			return l
		}
	}
	L.ArgError(1, `ctx.local expected: call the method with a colon, ctx["local"]:name(...)`)
	return nil
}

// ctx.local:run(cmd, [opts]) runs cmd with sh -c; a non-zero exit is an error.
func localRun(L *lua.LState) int {
	l := checkLocal(L)
	cmdline := L.CheckString(2)
	o := l.runOpts(L, cmdline, optTable(L, 3))
	res, err := l.runLocal(l.ctx(L), cmdline, o)
	l.check(L, err)
	L.Push(resultTable(L, res))
	return 1
}

// ctx.local:exists(path) says whether a file of the project exists.
func localExists(L *lua.LState) int {
	l := checkLocal(L)
	_, err := os.Stat(l.cfg.Project.Path(L.CheckString(2)))
	L.Push(lua.LBool(err == nil))
	return 1
}

// ctx.local:read(path) is a file of the project.
func localRead(L *lua.LState) int {
	l := checkLocal(L)
	data, err := os.ReadFile(l.cfg.Project.Path(L.CheckString(2)))
	l.check(L, err)
	L.Push(lua.LString(data))
	return 1
}

// ctx.local:write(path, content) puts a file in the project (for `app
// export-config`): only inside the project directory; in --dry-run it is
// only recorded.
func localWrite(L *lua.LState) int {
	l := checkLocal(L)
	cfg := l.cfg.Project
	rel, content := L.CheckString(2), L.CheckString(3)
	p := cfg.Path(rel)
	if r, err := filepath.Rel(cfg.Dir, p); err != nil || strings.HasPrefix(r, "..") {
		L.RaiseError("ctx.local:write: %s is outside the project directory", rel)
	}
	if l.cfg.DryRun {
		l.cfg.Events.DryRun(l.name, "write", rel+" (on this machine)", content)
		return 0
	}
	l.check(L, os.MkdirAll(filepath.Dir(p), 0o755))
	l.check(L, os.WriteFile(p, []byte(content), 0o644))
	return 0
}

// ctx.local:sha256(path) is the SHA-256 of a file of the project.
func localSHA256(L *lua.LState) int {
	l := checkLocal(L)
	sum, err := upload.FileSHA256(l.cfg.Project.Path(L.CheckString(2)))
	l.check(L, err)
	L.Push(lua.LString(sum))
	return 1
}

// runLocal runs a command on the deploying machine with sh -c, in the
// project directory. In --dry-run it is only recorded.
func (s *hostState) runLocal(ctx context.Context, cmdline string, o remote.RunOpts) (remote.Result, error) {
	s.cfg.Events.Command("local", s.cfg.Redactor.Redact(cmdline))
	if s.cfg.DryRun {
		shown := remote.ShellCommand(cmdline, remote.RunOpts{Env: o.Env, Cwd: o.Cwd})
		s.cfg.Events.DryRun(s.name, "local", s.cfg.Redactor.Redact(shown), "")
		return remote.Result{}, nil
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
	// Its own process group, so that Ctrl-C or a timeout stops everything it
	// started, not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = s.cfg.Project.Dir
	if o.Cwd != "" {
		cmd.Dir = s.cfg.Project.Path(o.Cwd)
	}
	cmd.Env = os.Environ()
	for k, v := range o.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if o.Stdin != nil {
		cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	err := cmd.Run()
	res := remote.Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			res.Code = ee.ExitCode()
			return res, &remote.RemoteError{Host: "local", Cmd: cmdline, Res: res}
		}
		return res, fmt.Errorf("running `%s`: %w", cmdline, err)
	}
	return res, nil
}
