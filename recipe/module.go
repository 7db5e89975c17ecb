package recipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/recipes"
)

// hostState is the Go side of one Lua state: which host it serves (nil for
// the local state) and the phase being run, for logs and errors.
type hostState struct {
	cfg    Config
	name   string // host name, or "local"
	host   builtins.Host
	user   string
	paths  map[string]string
	phase  string
	health bool // a health check failed in this run
	// What the app directory holds, as this run left it: .versions and the
	// version directories (read when the lock was taken, then kept up to
	// date by record and prune), so that a deferred prune knows what to
	// delete without asking.
	versions, dirs []string
	sent           map[string]bool // remote path: its last direct upload sent bytes
}

func (s *hostState) ctx(L *lua.LState) context.Context {
	if c := L.Context(); c != nil {
		return c
	}
	return context.Background()
}

// module builds the `raijin` table for L.
func (s *hostState) module(reg *registry) func(L *lua.LState) *lua.LTable {
	return func(L *lua.LState) *lua.LTable {
		m := L.NewTable()
		reg.declare(L, m)
		L.SetField(m, "quote", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(builtins.Quote(L.CheckString(1))))
			return 1
		}))
		L.SetField(m, "basename", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(filepath.Base(L.CheckString(1))))
			return 1
		}))
		L.SetField(m, "log", L.NewFunction(func(L *lua.LState) int {
			var parts []string
			for i := 1; i <= L.GetTop(); i++ {
				parts = append(parts, L.ToStringMeta(L.Get(i)).String())
			}
			s.cfg.Events.Log(s.name, s.phase, s.cfg.Redactor.Redact(strings.Join(parts, " ")))
			return 0
		}))
		L.SetField(m, "template", L.NewFunction(func(L *lua.LState) int {
			name := L.CheckString(1)
			vars := map[string]any{}
			if t := L.OptTable(2, nil); t != nil {
				if m, ok := goValue(t).(map[string]any); ok {
					vars = m
				}
			}
			out, err := renderTemplate(name, vars)
			if err != nil {
				L.RaiseError("%v", err)
			}
			L.Push(lua.LString(out))
			return 1
		}))
		L.SetField(m, "path", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(s.cfg.Project.Path(L.CheckString(2))))
			return 1
		}))
		L.SetField(m, "distfile", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(s.cfg.Project.DistfilePath()))
			return 1
		}))
		L.SetField(m, "process_names", L.NewFunction(func(L *lua.LState) int {
			L.Push(luaValue(L, s.cfg.Project.ProcessNames()))
			return 1
		}))
		L.SetField(m, "unit_name", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(s.cfg.Project.UnitName(L.CheckString(2))))
			return 1
		}))
		L.SetField(m, "socket_path", L.NewFunction(func(L *lua.LState) int {
			if s.cfg.Project.SocketActivated() {
				L.Push(lua.LString(s.cfg.Project.SocketPath()))
			} else {
				L.Push(lua.LNil)
			}
			return 1
		}))
		env := L.NewTable()
		L.SetField(env, "load", L.NewFunction(s.envLoad))
		L.SetField(m, "env", env)
		versions := L.NewTable()
		L.SetField(versions, "list", L.NewFunction(func(L *lua.LState) int {
			h := s.needHost(L, "raijin.versions.list")
			v, err := builtins.ReadVersions(s.ctx(L), h, s.paths["app_dir"])
			s.check(L, err)
			L.Push(luaValue(L, v))
			return 1
		}))
		L.SetField(versions, "current", L.NewFunction(func(L *lua.LState) int {
			h := s.needHost(L, "raijin.versions.current")
			v, err := builtins.ReadVersions(s.ctx(L), h, s.paths["app_dir"])
			s.check(L, err)
			if len(v) == 0 {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LString(v[0]))
			}
			return 1
		}))
		L.SetField(versions, "record", L.NewFunction(func(L *lua.LState) int {
			h := s.needHost(L, "raijin.versions.record")
			v := L.CheckString(2)
			s.check(L, builtins.RecordVersion(s.ctx(L), h, s.paths["app_dir"], v))
			rest := []string{v}
			for _, x := range s.versions {
				if x != v {
					rest = append(rest, x)
				}
			}
			s.versions = rest
			return 0
		}))
		L.SetField(versions, "prune", L.NewFunction(func(L *lua.LState) int {
			h := s.needHost(L, "raijin.versions.prune")
			keep := L.CheckInt(2)
			protect := L.OptString(3, "")
			var removed []string
			var err error
			if b, ok := h.(*builtins.Batcher); ok && b.Queuing() {
				// Deferred: what to delete is known from the facts of this
				// run (the lock is held, nothing else changes them).
				cur := ""
				if len(s.versions) > 0 {
					cur = s.versions[0]
				}
				removed = builtins.PrunePlan(s.versions, s.dirs, keep, cur, protect)
				err = builtins.RemoveVersions(s.ctx(L), h, s.paths["app_dir"], removed)
			} else {
				removed, err = builtins.Prune(s.ctx(L), h, s.paths["app_dir"], keep, protect)
			}
			s.check(L, err)
			s.versions = without(s.versions, removed)
			s.dirs = without(s.dirs, removed)
			if len(removed) > 0 {
				s.cfg.Events.Log(s.name, s.phase, "pruned "+strings.Join(removed, ", "))
			}
			L.Push(luaValue(L, removed))
			return 1
		}))
		L.SetField(m, "versions", versions)
		return m
	}
}

func without(list, drop []string) []string {
	gone := map[string]bool{}
	for _, d := range drop {
		gone[d] = true
	}
	var out []string
	for _, x := range list {
		if !gone[x] {
			out = append(out, x)
		}
	}
	return out
}

func (s *hostState) needHost(L *lua.LState, what string) builtins.Host {
	if s.host == nil {
		L.RaiseError("%s needs a host: call it from a host phase, not a local one", what)
	}
	return s.host
}

// check raises err as a Lua error, secrets redacted.
func (s *hostState) check(L *lua.LState, err error) {
	var he *builtins.HealthError
	if errors.As(err, &he) {
		s.health = true
	}
	if err != nil {
		L.RaiseError("%s", s.cfg.Redactor.Redact(err.Error()))
	}
}

// envLoad reads a host's env file (or inline env) and resolves its secrets:
// raijin.env.load(host_config).
func (s *hostState) envLoad(L *lua.LState) int {
	name := ""
	switch v := L.Get(1).(type) {
	case lua.LString:
		name = string(v)
	case *lua.LUserData:
		switch h := v.Value.(type) {
		case config.Host:
			name = h.Name
		case *config.Host:
			name = h.Name
		}
	}
	h, ok := s.cfg.Project.HostByName(name)
	if !ok {
		L.ArgError(1, "expected a host of ctx.config.hosts or a host name")
	}
	env, err := s.cfg.LoadEnv(s.ctx(L), *h)
	s.check(L, err)
	L.Push(envValue(L, env))
	return 1
}

var templateFuncs = template.FuncMap{
	"quote": builtins.Quote,
	// systemd_arg quotes one argument of an ExecStart= or Environment= line:
	// systemd reads C escapes inside double quotes and expands $ and %.
	"systemd_arg": func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`, "\n", `\n`, "\r", `\r`)
		return `"` + r.Replace(s) + `"`
	},
}

func renderTemplate(name string, vars map[string]any) (string, error) {
	src, err := fs.ReadFile(recipes.FS, path.Join("templates", name))
	if err != nil {
		return "", fmt.Errorf("no template %q in raijin (templates: process.service, web.socket, site.caddy, appenv.sh)", name)
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=zero").Parse(string(src))
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("template %s: %v", name, err)
	}
	return b.String(), nil
}

// parseMode reads "0755" style modes.
func parseMode(v lua.LValue, def os.FileMode) (os.FileMode, error) {
	switch x := v.(type) {
	case lua.LString:
		m, err := strconv.ParseUint(string(x), 8, 32)
		if err != nil {
			return 0, fmt.Errorf("mode %q: use an octal string such as \"0644\"", string(x))
		}
		return os.FileMode(m), nil
	case lua.LNumber:
		return os.FileMode(int(x)), nil
	}
	return def, nil
}

func optTable(L *lua.LState, n int) *lua.LTable {
	if t, ok := L.Get(n).(*lua.LTable); ok {
		return t
	}
	return L.NewTable()
}

// runOpts reads {cwd=, appenv=, sudo=, env=, timeout=}.
func (s *hostState) runOpts(L *lua.LState, t *lua.LTable) builtins.RunOpts {
	var o builtins.RunOpts
	if v, ok := t.RawGetString("cwd").(lua.LString); ok {
		o.Cwd = string(v)
	}
	switch v := t.RawGetString("appenv").(type) {
	case lua.LBool:
		if v {
			o.Appenv = s.paths["appenv"]
		}
	case lua.LString:
		o.Appenv = string(v)
	}
	o.Sudo = lua.LVAsBool(t.RawGetString("sudo"))
	if v, ok := t.RawGetString("when").(lua.LString); ok {
		o.When = string(v)
		s.check(L, builtins.CheckFlag(o.When))
	}
	if e, ok := t.RawGetString("env").(*lua.LTable); ok {
		o.Env = map[string]string{}
		e.ForEach(func(k, v lua.LValue) {
			if !builtins.ValidEnvName(k.String()) {
				L.RaiseError("env name %q: use letters, digits and _, not starting with a digit", k.String())
			}
			o.Env[k.String()] = v.String()
		})
	}
	switch v := t.RawGetString("timeout").(type) {
	case lua.LNumber:
		o.Timeout = time.Duration(float64(v) * float64(time.Second))
	case lua.LString:
		d, err := time.ParseDuration(string(v))
		if err != nil {
			L.RaiseError("timeout %q: use seconds or a duration such as \"30s\"", string(v))
		}
		o.Timeout = d
	}
	return o
}

func resultTable(L *lua.LState, r builtins.Result) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("stdout", lua.LString(r.Stdout))
	t.RawSetString("stderr", lua.LString(r.Stderr))
	t.RawSetString("code", lua.LNumber(r.Code))
	return t
}

// pushUnlessQueued pushes v, or nil while steps are being queued (their
// results are not known yet).
func (s *hostState) pushUnlessQueued(L *lua.LState, v lua.LValue) {
	if b, ok := s.host.(*builtins.Batcher); ok && b.Queuing() {
		L.Push(lua.LNil)
		return
	}
	L.Push(v)
}

// hostTable is ctx.host: the host's facts and its methods.
func (s *hostState) hostTable(L *lua.LState, h config.Host) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("name", lua.LString(s.name))
	t.RawSetString("user", lua.LString(s.user))
	t.RawSetString("address", lua.LString(h.Address))
	t.RawSetString("site_address", lua.LString(h.SiteAddress()))
	t.RawSetString("url", lua.LString(h.URL()))
	t.RawSetString("domain_name", lua.LString(h.DomainName))
	fn := func(name string, f lua.LGFunction) { t.RawSetString(name, L.NewFunction(f)) }
	fn("run", func(L *lua.LState) int {
		cmd := L.CheckString(2)
		res, err := builtins.Must(s.ctx(L), s.host, cmd, s.runOpts(L, optTable(L, 3)))
		s.check(L, err)
		L.Push(resultTable(L, res))
		return 1
	})
	fn("test", func(L *lua.LState) int {
		res, err := s.host.Run(s.ctx(L), L.CheckString(2), s.runOpts(L, optTable(L, 3)))
		if err != nil && s.ctx(L).Err() != nil {
			s.check(L, err)
		}
		L.Push(lua.LBool(err == nil && res.Code == 0))
		return 1
	})
	fn("exists", func(L *lua.LState) int {
		res, err := s.host.Run(s.ctx(L), "test -e "+builtins.Quote(L.CheckString(2)), builtins.RunOpts{})
		if err != nil {
			s.check(L, err)
		}
		L.Push(lua.LBool(res.Code == 0))
		return 1
	})
	fn("read", func(L *lua.LState) int {
		res, err := s.host.Run(s.ctx(L), "cat "+builtins.Quote(L.CheckString(2))+" 2>/dev/null", builtins.RunOpts{Sudo: lua.LVAsBool(optTable(L, 3).RawGetString("sudo"))})
		s.check(L, err)
		if res.Code != 0 {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(res.Stdout))
		}
		return 1
	})
	fn("upload", func(L *lua.LState) int {
		local, remote := L.CheckString(2), L.CheckString(3)
		o := optTable(L, 4)
		mode, err := parseMode(o.RawGetString("mode"), 0o644)
		s.check(L, err)
		basis := ""
		if v, ok := o.RawGetString("basis").(lua.LString); ok {
			basis = string(v)
		}
		var sent bool
		if b, ok := s.host.(*builtins.Batcher); ok {
			sent, err = b.UploadFrom(s.ctx(L), s.cfg.Project.Path(local), remote, mode, basis)
		} else {
			sent, err = s.host.Upload(s.ctx(L), s.cfg.Project.Path(local), remote, mode)
		}
		s.check(L, err)
		if s.sent == nil {
			s.sent = map[string]bool{}
		}
		s.sent[remote] = sent
		s.pushUnlessQueued(L, lua.LBool(sent))
		return 1
	})
	fn("write", func(L *lua.LState) int {
		remote := L.CheckString(2)
		var data []byte
		switch v := L.Get(3).(type) {
		case lua.LString:
			data = []byte(v)
		case *lua.LUserData:
			e, ok := v.Value.(*builtins.Env)
			if !ok {
				L.ArgError(3, "expected a string or an env")
			}
			data = []byte(e.Render())
		default:
			L.ArgError(3, "expected a string or an env")
		}
		o := optTable(L, 4)
		mode, err := parseMode(o.RawGetString("mode"), 0o644)
		s.check(L, err)
		wo := builtins.WriteOpts{Mode: mode, Sudo: lua.LVAsBool(o.RawGetString("sudo"))}
		if v, ok := o.RawGetString("flag").(lua.LString); ok {
			wo.Flag = string(v)
			s.check(L, builtins.CheckFlag(wo.Flag))
		}
		changed, err := s.host.Write(s.ctx(L), remote, data, wo)
		s.check(L, err)
		s.pushUnlessQueued(L, lua.LBool(changed))
		return 1
	})
	fn("systemctl", func(L *lua.LState) int {
		action := L.CheckString(2)
		var units []string
		top := L.GetTop()
		var o builtins.RunOpts
		if t, ok := L.Get(top).(*lua.LTable); ok && top > 2 {
			o = s.runOpts(L, t)
			top--
		}
		for i := 3; i <= top; i++ {
			units = append(units, L.CheckString(i))
		}
		res, err := builtins.SystemctlWhen(s.ctx(L), s.host, o.When, action, units...)
		s.check(L, err)
		s.pushUnlessQueued(L, resultTable(L, res))
		return 1
	})
	fn("caddy_reload", func(L *lua.LState) int {
		site := L.CheckString(2)
		content := L.OptString(3, "")
		if content == "" {
			_, err := builtins.Must(s.ctx(L), s.host, "caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 && systemctl reload caddy", builtins.RunOpts{Sudo: true})
			s.check(L, err)
			L.Push(lua.LTrue)
			return 1
		}
		changed, err := builtins.CaddySite(s.ctx(L), s.host, site, []byte(content))
		s.check(L, err)
		L.Push(lua.LBool(changed))
		return 1
	})
	// batch(fn): the remote steps fn takes are sent together, as one
	// script, when fn returns; defer(fn): they wait and ride along with the
	// next remote command (at the latest the deploy's last one). Inside,
	// run/write/upload return nil: use write's flag and run's when for steps
	// that depend on a change.
	fn("batch", func(L *lua.LState) int {
		if b := s.queue(L, L.CheckFunction(2)); b != nil && !b.Queuing() {
			s.check(L, b.Flush(s.ctx(L)))
		}
		return 0
	})
	// sent(remote): whether the last upload to remote sent bytes (after a
	// batch, whose uploads return nil).
	fn("sent", func(L *lua.LState) int {
		remote := L.CheckString(2)
		if b, ok := s.host.(*builtins.Batcher); ok {
			L.Push(lua.LBool(b.Sent(remote)))
		} else {
			L.Push(lua.LBool(s.sent[remote]))
		}
		return 1
	})
	fn("defer", func(L *lua.LState) int {
		s.queue(L, L.CheckFunction(2))
		return 0
	})
	fn("wait_healthy", func(L *lua.LState) int {
		var units []string
		if ut, ok := L.Get(2).(*lua.LTable); ok {
			ut.ForEach(func(_, v lua.LValue) { units = append(units, v.String()) })
		}
		// opts: http = false skips the HTTP check (workers: active after the
		// settle time is all they can show); settle = seconds.
		o := optTable(L, 3)
		w := s.cfg.Project.Webserver
		timeout, _ := time.ParseDuration(w.HealthCheckTimeout)
		hc := builtins.HealthCheck{Units: units, Path: w.HealthCheck, Upstream: w.Upstream, Timeout: timeout}
		if o.RawGetString("http") == lua.LFalse {
			hc.Path = ""
		}
		if v, ok := o.RawGetString("settle").(lua.LNumber); ok {
			hc.Settle = time.Duration(float64(v) * float64(time.Second))
		}
		err := builtins.WaitHealthy(s.ctx(L), s.host, hc)
		if err != nil {
			s.health = true
		}
		s.check(L, err)
		return 0
	})
	return t
}

// queue calls f with the host's remote steps queued instead of sent (over
// SSH; elsewhere they run one by one). A Lua error in f drops what f queued and
// is raised again. It returns the batcher, nil when the host has none.
func (s *hostState) queue(L *lua.LState, f *lua.LFunction) *builtins.Batcher {
	b, ok := s.host.(*builtins.Batcher)
	mark := 0
	if ok {
		mark = b.Mark()
		b.Begin()
	}
	err := L.PCall(0, 0, f)
	if ok {
		b.End()
		if err != nil {
			b.DiscardFrom(mark)
		}
	}
	if err != nil {
		L.Error(err.(*lua.ApiError).Object, 0)
	}
	if !ok {
		return nil
	}
	return b
}

// localTable is ctx.local: commands and files on the deploying machine.
func (s *hostState) localTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	fn := func(name string, f lua.LGFunction) { t.RawSetString(name, L.NewFunction(f)) }
	cfg := s.cfg.Project
	fn("run", func(L *lua.LState) int {
		cmdline := L.CheckString(2)
		o := s.runOpts(L, optTable(L, 3))
		res, err := s.localRun(s.ctx(L), cmdline, o)
		s.check(L, err)
		L.Push(resultTable(L, res))
		return 1
	})
	fn("exists", func(L *lua.LState) int {
		_, err := os.Stat(cfg.Path(L.CheckString(2)))
		L.Push(lua.LBool(err == nil))
		return 1
	})
	fn("read", func(L *lua.LState) int {
		data, err := os.ReadFile(cfg.Path(L.CheckString(2)))
		s.check(L, err)
		L.Push(lua.LString(data))
		return 1
	})
	// write puts a file in the project (for `app export-config`): only inside
	// the project directory; in --dry-run it is only recorded.
	fn("write", func(L *lua.LState) int {
		rel, content := L.CheckString(2), L.CheckString(3)
		p := cfg.Path(rel)
		if r, err := filepath.Rel(cfg.Dir, p); err != nil || strings.HasPrefix(r, "..") {
			L.RaiseError("ctx.local:write: %s is outside the project directory", rel)
		}
		if s.cfg.DryRun {
			s.cfg.Events.DryRun(s.name, "write", rel+" (on this machine)", content)
			return 0
		}
		s.check(L, os.MkdirAll(filepath.Dir(p), 0o755))
		s.check(L, os.WriteFile(p, []byte(content), 0o644))
		return 0
	})
	fn("sha256", func(L *lua.LState) int {
		sum, err := builtins.FileSHA256(cfg.Path(L.CheckString(2)))
		s.check(L, err)
		L.Push(lua.LString(sum))
		return 1
	})
	return t
}

// localRun runs a command on the deploying machine with sh -c, in the
// project directory. In --dry-run it is only recorded.
func (s *hostState) localRun(ctx context.Context, cmdline string, o builtins.RunOpts) (builtins.Result, error) {
	s.cfg.Events.Command("local", s.cfg.Redactor.Redact(cmdline))
	if s.cfg.DryRun {
		shown := builtins.ShellCommand(cmdline, builtins.RunOpts{Env: o.Env, Cwd: o.Cwd})
		s.cfg.Events.DryRun(s.name, "local", s.cfg.Redactor.Redact(shown), "")
		return builtins.Result{}, nil
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
	res := builtins.Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			res.Code = ee.ExitCode()
			return res, &builtins.RemoteError{Host: "local", Cmd: cmdline, Res: res}
		}
		return res, fmt.Errorf("running `%s`: %v", cmdline, err)
	}
	return res, nil
}

var _ = luar.New
