package recipe

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/shell"
)

// hostObject is what ctx.host holds: the server a state deploys to. Lua
// sees its facts as fields and hostMethods as methods.
type hostObject struct {
	*hostState
	fields map[string]lua.LValue
}

// hostMethods are the methods of ctx.host.
var hostMethods = map[string]lua.LGFunction{
	"run":          hostRun,
	"test":         hostTest,
	"exists":       hostExists,
	"read":         hostRead,
	"upload":       hostUpload,
	"write":        hostWrite,
	"systemctl":    hostSystemctl,
	"caddy_reload": hostCaddyReload,
	"caddy_import": hostCaddyImport,
	"caddy_admin":  hostCaddyAdmin,
	"batch":        hostBatch,
	"sent":         hostSent,
	"defer":        hostDefer,
	"wait_healthy": hostWaitHealthy,
}

// hostValue makes ctx.host for the host h.
func (s *hostState) hostValue(L *lua.LState, h config.Host) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = &hostObject{hostState: s, fields: map[string]lua.LValue{
		"name":         lua.LString(s.name),
		"address":      lua.LString(h.Address),
		"site_address": lua.LString(h.SiteAddress()),
		"url":          lua.LString(h.URL()),
		"domain_name":  lua.LString(h.DomainName),
		"roles":        luaValue(L, h.Roles),
	}}
	mt := L.NewTypeMetatable("raijin.host")
	if mt.RawGetString("__index") == lua.LNil {
		mt.RawSetString("__index", L.NewClosure(hostIndex, L.SetFuncs(L.NewTable(), hostMethods)))
		mt.RawSetString("__newindex", L.NewFunction(hostNewIndex))
	}
	L.SetMetatable(ud, mt)
	return ud
}

// hostIndex finds a field of ctx.host, else a method (upvalue 1 holds them).
func hostIndex(L *lua.LState) int {
	h := checkHost(L)
	if k, ok := L.Get(2).(lua.LString); ok {
		if k == "user" { // learnt at connect
			L.Push(lua.LString(h.user))
			return 1
		}
		if v, ok := h.fields[string(k)]; ok {
			L.Push(v)
			return 1
		}
	}
	L.Push(L.GetTable(L.Get(lua.UpvalueIndex(1)), L.Get(2)))
	return 1
}

func hostNewIndex(L *lua.LState) int {
	L.RaiseError("ctx.host is read-only (cannot set %s): keep your own values in a local variable or in ctx", L.ToStringMeta(L.Get(2)).String())
	return 0
}

// checkHost is the ctx.host a method is called on.
func checkHost(L *lua.LState) *hostObject {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if h, ok := ud.Value.(*hostObject); ok {
			return h
		}
	}
	L.ArgError(1, "ctx.host expected: call the method with a colon, ctx.host:name(...)")
	return nil
}

// ctx.host:run(cmd, [opts]) runs cmd; a non-zero exit is an error.
func hostRun(L *lua.LState) int {
	h := checkHost(L)
	cmd := L.CheckString(2)
	res, err := remote.Must(h.ctx(L), h.host, cmd, h.runOpts(L, cmd, optTable(L, 3)))
	h.check(L, err)
	L.Push(resultTable(L, res))
	return 1
}

// ctx.host:test(cmd, [opts]) says whether cmd exits 0.
func hostTest(L *lua.LState) int {
	h := checkHost(L)
	cmd := L.CheckString(2)
	res, err := h.host.Run(h.ctx(L), cmd, h.runOpts(L, cmd, optTable(L, 3)))
	if err != nil && h.ctx(L).Err() != nil {
		h.check(L, err)
	}
	L.Push(lua.LBool(err == nil && res.Code == 0))
	return 1
}

// ctx.host:exists(path) says whether path exists.
func hostExists(L *lua.LState) int {
	h := checkHost(L)
	res, err := h.host.Run(h.ctx(L), "test -e "+shell.Quote(L.CheckString(2)), remote.RunOpts{})
	if err != nil {
		h.check(L, err)
	}
	L.Push(lua.LBool(res.Code == 0))
	return 1
}

// ctx.host:read(path, [opts]) is the file's content, nil if it cannot be read.
func hostRead(L *lua.LState) int {
	h := checkHost(L)
	res, err := h.host.Run(h.ctx(L), "cat "+shell.Quote(L.CheckString(2))+" 2>/dev/null", remote.RunOpts{Sudo: lua.LVAsBool(optTable(L, 3).RawGetString("sudo"))})
	h.check(L, err)
	if res.Code != 0 {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(res.Stdout))
	}
	return 1
}

// ctx.host:upload(local, remote, [opts]) copies a file of the project and
// says whether bytes were sent.
func hostUpload(L *lua.LState) int {
	h := checkHost(L)
	local, dst := L.CheckString(2), L.CheckString(3)
	o := optTable(L, 4)
	mode, err := parseMode(o.RawGetString("mode"), 0o644)
	h.check(L, err)
	basis := ""
	if v, ok := o.RawGetString("basis").(lua.LString); ok {
		basis = string(v)
	}
	series := false
	switch v := o.RawGetString("series").(type) {
	case lua.LBool:
		series = bool(v)
	case *lua.LNilType:
	default:
		L.ArgError(4, fmt.Sprintf("opts.series must be true or false, not %s", v.Type()))
	}
	sent, err := h.host.UploadWith(h.ctx(L), h.cfg.Project.Path(local), dst, mode, remote.UploadOpts{Basis: basis, Series: series})
	h.check(L, err)
	h.pushUnlessQueued(L, lua.LBool(sent))
	return 1
}

// ctx.host:write(remote, content, [opts]) writes a string or an env and
// says whether the file changed.
func hostWrite(L *lua.LState) int {
	h := checkHost(L)
	dst := L.CheckString(2)
	var data []byte
	switch v := L.Get(3).(type) {
	case lua.LString:
		data = []byte(v)
	case *lua.LUserData:
		e, ok := v.Value.(*secrets.Env)
		if !ok {
			L.ArgError(3, "expected a string or an env")
		}
		data = []byte(e.Render())
	default:
		L.ArgError(3, "expected a string or an env")
	}
	o := optTable(L, 4)
	mode, err := parseMode(o.RawGetString("mode"), 0o644)
	h.check(L, err)
	wo := remote.WriteOpts{Mode: mode, Sudo: lua.LVAsBool(o.RawGetString("sudo"))}
	if v, ok := o.RawGetString("flag").(lua.LString); ok {
		wo.Flag = string(v)
		h.check(L, remote.CheckFlag(wo.Flag))
	}
	changed, err := h.host.Write(h.ctx(L), dst, data, wo)
	h.check(L, err)
	h.pushUnlessQueued(L, lua.LBool(changed))
	return 1
}

// ctx.host:systemctl(action, unit..., [opts]).
func hostSystemctl(L *lua.LState) int {
	h := checkHost(L)
	action := L.CheckString(2)
	var units []string
	top := L.GetTop()
	var o remote.RunOpts
	if t, ok := L.Get(top).(*lua.LTable); ok && top > 2 {
		o = h.runOpts(L, "systemctl "+action, t)
		top--
	}
	for i := 3; i <= top; i++ {
		units = append(units, L.CheckString(i))
	}
	res, err := server.SystemctlWhen(h.ctx(L), h.host, o.When, action, units...)
	h.check(L, err)
	h.pushUnlessQueued(L, resultTable(L, res))
	return 1
}

// ctx.host:caddy_import() makes the conf.d directory for the apps' sites and
// has the main Caddyfile import conf.d/*.caddy (server.CaddyImportScript,
// also run before every site is installed). It returns whether it made the
// directory and whether it added the import.
func hostCaddyImport(L *lua.LState) int {
	h := checkHost(L)
	made, imported, err := server.CaddyImport(h.ctx(L), h.host)
	h.check(L, err)
	return pushBools(L, made, imported)
}

// pushBools pushes what a step changed, one boolean for each part.
func pushBools(L *lua.LState, bs ...bool) int {
	for _, b := range bs {
		L.Push(lua.LBool(b))
	}
	return len(bs)
}

// ctx.host:caddy_admin() has Caddy's admin endpoint listen on a unix socket
// only root can reach (server.CaddyAdminScript, also run before every site
// is installed). It returns whether it wrote the caddy.service drop-in and
// whether it set the admin endpoint in the main Caddyfile.
func hostCaddyAdmin(L *lua.LState) int {
	h := checkHost(L)
	unit, socket, err := server.CaddyAdmin(h.ctx(L), h.host)
	h.check(L, err)
	return pushBools(L, unit, socket)
}

// ctx.host:caddy_reload(site_path, [content]) installs the site (when
// content is given) and reloads Caddy; it says whether the site changed.
func hostCaddyReload(L *lua.LState) int {
	h := checkHost(L)
	site := L.CheckString(2)
	content := L.OptString(3, "")
	if content == "" {
		_, err := remote.Must(h.ctx(L), h.host, "caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 && systemctl reload caddy", remote.RunOpts{Sudo: true})
		h.check(L, err)
		L.Push(lua.LTrue)
		return 1
	}
	changed, err := server.CaddySite(h.ctx(L), h.host, site, []byte(content))
	h.check(L, err)
	L.Push(lua.LBool(changed))
	return 1
}

// ctx.host:batch(fn): the remote steps fn takes are sent together, as one
// script, when fn returns; ctx.host:defer(fn): they wait and ride along with
// the next remote command (at the latest the deploy's last one). Inside,
// run/write/upload return nil: use write's flag and run's when for steps
// that depend on a change.
func hostBatch(L *lua.LState) int {
	h := checkHost(L)
	if b := h.queue(L, L.CheckFunction(2)); !b.Queuing() {
		h.check(L, b.Flush(h.ctx(L)))
	}
	return 0
}

// ctx.host:defer(fn): see hostBatch.
func hostDefer(L *lua.LState) int {
	h := checkHost(L)
	h.queue(L, L.CheckFunction(2))
	return 0
}

// ctx.host:sent(remote): whether the last upload to remote sent bytes (after
// a batch, whose uploads return nil).
func hostSent(L *lua.LState) int {
	h := checkHost(L)
	L.Push(lua.LBool(h.host.Sent(L.CheckString(2))))
	return 1
}

// ctx.host:wait_healthy(units, [opts]) waits for the units to be active and
// the app to answer: health_check answering 2xx or, without one, any HTTP
// answer on the upstream. opts: upstream = the address to check (a web
// slot's: see raijin.slot); http = false skips the HTTP check (workers:
// active after the settle time is all they can show); settle = seconds;
// settle_units = units (workers) that must stay active for the settle time,
// checked alongside the HTTP check of units.
func hostWaitHealthy(L *lua.LState) int {
	h := checkHost(L)
	var units []string
	if ut, ok := L.Get(2).(*lua.LTable); ok {
		ut.ForEach(func(_, v lua.LValue) { units = append(units, v.String()) })
	}
	o := optTable(L, 3)
	w := h.cfg.Project.Webserver
	timeout, _ := time.ParseDuration(w.HealthCheckTimeout)
	hc := server.HealthCheck{Units: units, Path: w.HealthCheck, Upstream: w.Upstream, Timeout: timeout}
	if v, ok := o.RawGetString("upstream").(lua.LString); ok && v != "" {
		hc.Upstream = string(v)
	}
	if o.RawGetString("http") == lua.LFalse {
		hc.Path = ""
	} else {
		hc.Ready = true // without health_check: up once it answers HTTP
	}
	if ut, ok := o.RawGetString("settle_units").(*lua.LTable); ok {
		ut.ForEach(func(_, v lua.LValue) { hc.SettleUnits = append(hc.SettleUnits, v.String()) })
	}
	if v, ok := o.RawGetString("settle").(lua.LNumber); ok {
		hc.Settle = time.Duration(float64(v) * float64(time.Second))
	}
	err := server.WaitHealthy(h.ctx(L), h.host, hc)
	if err != nil {
		h.health = true
	}
	h.check(L, err)
	return 0
}

// queue calls f with the host's remote steps queued instead of sent. A Lua
// error in f drops what f queued and is raised again.
func (s *hostState) queue(L *lua.LState, f *lua.LFunction) *remote.Session {
	b := s.host
	mark := b.Mark()
	b.Begin()
	L.Push(f)
	err := L.PCall(0, 0, nil)
	b.End()
	if err != nil {
		b.DiscardFrom(mark)
		L.Error(err.(*lua.ApiError).Object, 0)
	}
	return b
}

// pushUnlessQueued pushes v, or nil while steps are being queued (their
// results are not known yet).
func (s *hostState) pushUnlessQueued(L *lua.LState, v lua.LValue) {
	if s.host.Queuing() {
		L.Push(lua.LNil)
		return
	}
	L.Push(v)
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

// runOpts reads {cwd=, appenv=, app=, sudo=, log=, when=, env=, timeout=}
// for the command cmd.
func (s *hostState) runOpts(L *lua.LState, cmd string, t *lua.LTable) remote.RunOpts {
	var o remote.RunOpts
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
	if lua.LVAsBool(t.RawGetString("app")) {
		if o.Sudo || o.Appenv != "" {
			L.RaiseError("run: app = true runs the command as the app's user in its sandbox: it takes neither sudo nor appenv")
		}
		o.App = s.paths["apprun"]
	}
	if lua.LVAsBool(t.RawGetString("log")) {
		o.Check = s.logLines(cmd, o.Env)
	}
	if v, ok := t.RawGetString("when").(lua.LString); ok {
		o.When = string(v)
		s.check(L, remote.CheckFlag(o.When))
	}
	if e, ok := t.RawGetString("env").(*lua.LTable); ok {
		o.Env = map[string]string{}
		e.ForEach(func(k, v lua.LValue) {
			if !secrets.ValidEnvName(k.String()) {
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

// logLines is the check of a step run with {log = true}: each line it
// prints is logged under the phase that queued it, when its result comes
// (for a queued step, with a later round trip).
func (s *hostState) logLines(cmd string, env map[string]string) func(remote.Result) error {
	phase := s.phase
	return func(r remote.Result) error {
		if r.Code != 0 {
			return &remote.RemoteError{Host: s.name, Cmd: cmd, Env: env, Res: r}
		}
		for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			if l != "" {
				s.cfg.Events.Log(s.name, phase, s.cfg.Redactor.Redact(l))
			}
		}
		return nil
	}
}

func resultTable(L *lua.LState, r remote.Result) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("stdout", lua.LString(r.Stdout))
	t.RawSetString("stderr", lua.LString(r.Stderr))
	t.RawSetString("code", lua.LNumber(r.Code))
	return t
}
