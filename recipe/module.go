package recipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/recipes"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/shell"
)

// hostState is the Go side of one Lua state: which host it serves (nil for
// the local state) and the phase being run, for logs and errors.
type hostState struct {
	cfg  Config
	name string // host name, or "local"
	host *remote.Session
	// hostCfg is the host's [[hosts]] entry (zero in a local state).
	hostCfg config.Host
	// connect and finish: the engine's steps of the built-in phases.
	connect func(ctx context.Context) (Facts, error)
	finish  func(ctx context.Context) error
	user    string
	paths   map[string]string
	phase   string
	health  bool // a health check failed in this run
	// queued: the step that failed last was deferred by an earlier phase
	// (its error reached the engine through Lua, as text).
	queued *remote.QueuedError
	// What the app directory holds, as this run left it: .versions and the
	// version directories (read when the lock was taken, then kept up to
	// date by record and prune), so that a deferred prune knows what to
	// delete without asking.
	versions, dirs []string
}

func (s *hostState) ctx(L *lua.LState) context.Context {
	if c := L.Context(); c != nil {
		return c
	}
	return context.Background()
}

// moduleFuncs are the functions of the raijin module that are not
// declarations (those are declareFuncs). Their upvalue is the hostState.
var moduleFuncs = map[string]lua.LGFunction{
	"quote":         raijinQuote,
	"basename":      raijinBasename,
	"duration":      raijinDuration,
	"log":           raijinLog,
	"template":      raijinTemplate,
	"path":          raijinPath,
	"distfile":      raijinDistfile,
	"process_names": raijinProcessNames,
	"unit_name":     raijinUnitName,
	"socket_path":   raijinSocketPath,
	"slot":          raijinSlot,
	"balancer":      raijinBalancer,
}

// envFuncs are raijin.env's functions.
var envFuncs = map[string]lua.LGFunction{
	"load": envLoad,
}

// versionsFuncs are raijin.versions' functions: the versions recorded on
// the host.
var versionsFuncs = map[string]lua.LGFunction{
	"list":    versionsList,
	"current": versionsCurrent,
	"record":  versionsRecord,
	"prune":   versionsPrune,
}

// module builds the `raijin` table for L.
func (s *hostState) module(reg *registry) func(L *lua.LState) *lua.LTable {
	return func(L *lua.LState) *lua.LTable {
		self := L.NewUserData()
		self.Value = s
		m := L.NewTable()
		reg.declare(L, m)
		L.SetFuncs(m, moduleFuncs, self)
		L.SetField(m, "env", L.SetFuncs(L.NewTable(), envFuncs, self))
		L.SetField(m, "versions", L.SetFuncs(L.NewTable(), versionsFuncs, self))
		// raijin.config: the project's configuration (ctx.config), for what
		// a recipe declares from it.
		if s.cfg.Project != nil {
			L.SetField(m, "config", configValue(L, *s.cfg.Project))
		}
		return m
	}
}

// stateOf is the hostState a raijin function was registered with.
func stateOf(L *lua.LState) *hostState {
	return L.CheckUserData(lua.UpvalueIndex(1)).Value.(*hostState)
}

// raijin.quote(s) quotes s for a remote shell.
func raijinQuote(L *lua.LState) int {
	L.Push(lua.LString(shell.Quote(L.CheckString(1))))
	return 1
}

// raijin.basename(path) is the last element of path.
func raijinBasename(L *lua.LState) int {
	L.Push(lua.LString(filepath.Base(L.CheckString(1))))
	return 1
}

// raijin.duration(s) is the duration s ("30s", "1m30s", "500ms") in
// seconds.
func raijinDuration(L *lua.LState) int {
	s := L.CheckString(1)
	d, err := time.ParseDuration(s)
	if err != nil {
		L.ArgError(1, fmt.Sprintf("%q is not a duration: write it as 30s, 500ms or 1m30s", s))
	}
	L.Push(lua.LNumber(d.Seconds()))
	return 1
}

// raijin.log(...) prints a line, secrets redacted.
func raijinLog(L *lua.LState) int {
	s := stateOf(L)
	var parts []string
	for i := 1; i <= L.GetTop(); i++ {
		parts = append(parts, L.ToStringMeta(L.Get(i)).String())
	}
	s.cfg.Events.Log(s.name, s.phase, s.cfg.Redactor.Redact(strings.Join(parts, " ")))
	return 0
}

// raijin.template(name, [vars]) renders one of raijin's templates.
func raijinTemplate(L *lua.LState) int {
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
}

// raijin.path(ctx, rel) is a path of the project directory.
func raijinPath(L *lua.LState) int {
	L.Push(lua.LString(stateOf(L).cfg.Project.Path(L.CheckString(2))))
	return 1
}

// raijin.distfile(ctx) is the distfile of the configured version.
func raijinDistfile(L *lua.LState) int {
	L.Push(lua.LString(stateOf(L).cfg.Project.DistfilePath()))
	return 1
}

// raijin.process_names(ctx, [all]) are the names of the processes this
// host runs (its roles; every process in a local state, or with all =
// true), web first.
func raijinProcessNames(L *lua.LState) int {
	s := stateOf(L)
	names := s.cfg.Project.ProcessNames()
	if s.host != nil && s.hostCfg.Roles != nil && !L.OptBool(2, false) {
		names = s.cfg.Project.HostProcesses(s.hostCfg)
	}
	L.Push(luaValue(L, names))
	return 1
}

// raijin.balancer(ctx) is what a load balancer of the app needs: its
// upstreams (every web host's site, host:port) and the health check path.
func raijinBalancer(L *lua.LState) int {
	c := stateOf(L).cfg.Project
	t := L.NewTable()
	t.RawSetString("upstreams", luaValue(L, c.BalancerUpstreams()))
	t.RawSetString("health_uri", lua.LString(c.Webserver.HealthCheck))
	t.RawSetString("balanced", lua.LBool(c.Balanced()))
	L.Push(t)
	return 1
}

// raijin.unit_name(ctx, process) is the systemd unit of a process.
func raijinUnitName(L *lua.LState) int {
	L.Push(lua.LString(stateOf(L).cfg.Project.UnitName(L.CheckString(2))))
	return 1
}

// raijin.socket_path(ctx) is the web process's socket, nil without one.
func raijinSocketPath(L *lua.LState) int {
	c := stateOf(L).cfg.Project
	if c.SocketActivated() {
		L.Push(lua.LString(c.SocketPath()))
	} else {
		L.Push(lua.LNil)
	}
	return 1
}

// raijin.slot(ctx, name) is the web slot "blue" or "green": {name, unit,
// upstream (HOST:PORT or unix//PATH), port (TCP), socket_unit and
// socket_path (unix socket)}.
func raijinSlot(L *lua.LState) int {
	c := stateOf(L).cfg.Project
	name := L.CheckString(2)
	if name != "blue" && name != "green" {
		L.ArgError(2, fmt.Sprintf("a slot is blue or green, not %q", name))
	}
	t := L.NewTable()
	t.RawSetString("name", lua.LString(name))
	t.RawSetString("unit", lua.LString(c.SlotUnit(name)))
	t.RawSetString("upstream", lua.LString(c.SlotUpstream(name)))
	if c.SocketActivated() {
		t.RawSetString("socket_unit", lua.LString(c.SlotSocketUnit(name)))
		t.RawSetString("socket_path", lua.LString(strings.TrimPrefix(c.SlotUpstream(name), "unix/")))
	} else {
		t.RawSetString("port", lua.LNumber(c.SlotPort(name)))
	}
	L.Push(t)
	return 1
}

// raijin.versions.list(ctx) are the versions recorded on the host, newest
// first.
func versionsList(L *lua.LState) int {
	s := stateOf(L)
	h := s.needHost(L, "raijin.versions.list")
	v, err := server.ReadVersions(s.ctx(L), h, s.paths["app_dir"])
	s.check(L, err)
	L.Push(luaValue(L, v))
	return 1
}

// raijin.versions.current(ctx) is the current version, nil before the
// first deploy.
func versionsCurrent(L *lua.LState) int {
	s := stateOf(L)
	h := s.needHost(L, "raijin.versions.current")
	v, err := server.ReadVersions(s.ctx(L), h, s.paths["app_dir"])
	s.check(L, err)
	if len(v) == 0 {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(v[0]))
	}
	return 1
}

// raijin.versions.record(ctx, version) makes version the current one.
func versionsRecord(L *lua.LState) int {
	s := stateOf(L)
	h := s.needHost(L, "raijin.versions.record")
	v := L.CheckString(2)
	s.check(L, server.RecordVersion(s.ctx(L), h, s.paths["app_dir"], v))
	rest := []string{v}
	for _, x := range s.versions {
		if x != v {
			rest = append(rest, x)
		}
	}
	s.versions = rest
	return 0
}

// raijin.versions.prune(ctx, keep, [protect]) deletes the versions beyond
// the newest keep (never protect) and returns them.
func versionsPrune(L *lua.LState) int {
	s := stateOf(L)
	h := s.needHost(L, "raijin.versions.prune")
	keep := L.CheckInt(2)
	protect := L.OptString(3, "")
	var removed []string
	var err error
	if h.Queuing() {
		// Deferred: what to delete is known from the facts of this
		// run (the lock is held, nothing else changes them).
		cur := ""
		if len(s.versions) > 0 {
			cur = s.versions[0]
		}
		removed = server.PrunePlan(s.versions, s.dirs, keep, cur, protect)
		err = server.RemoveVersions(s.ctx(L), h, s.paths["app_dir"], removed)
	} else {
		removed, err = server.Prune(s.ctx(L), h, s.paths["app_dir"], keep, protect)
	}
	s.check(L, err)
	s.versions = without(s.versions, removed)
	s.dirs = without(s.dirs, removed)
	if len(removed) > 0 {
		s.cfg.Events.Log(s.name, s.phase, "pruned "+strings.Join(removed, ", "))
	}
	L.Push(luaValue(L, removed))
	return 1
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

func (s *hostState) needHost(L *lua.LState, what string) *remote.Session {
	if s.host == nil {
		L.RaiseError("%s needs a host: call it from a host phase, not a local one", what)
	}
	return s.host
}

// check raises err as a Lua error, secrets redacted.
func (s *hostState) check(L *lua.LState, err error) {
	var he *server.HealthError
	if errors.As(err, &he) {
		s.health = true
	}
	var qe *remote.QueuedError
	if errors.As(err, &qe) {
		s.queued = qe
	}
	if err != nil {
		L.RaiseError("%s", s.cfg.Redactor.Redact(err.Error()))
	}
}

// raijin.env.load(host) reads a host's env file (or inline env) and resolves
// its secrets; host is a host of ctx.config.hosts or a host name.
func envLoad(L *lua.LState) int {
	s := stateOf(L)
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
	"quote": shell.Quote,
	// systemd_arg quotes one argument of an ExecStart= or Environment= line:
	// systemd reads C escapes inside double quotes and expands $ and %.
	// unit_escape writes a value of a unit file setting that systemd reads
	// with specifiers (a path): % becomes %%.
	"unit_escape": func(s string) string { return strings.ReplaceAll(s, "%", "%%") },
	"systemd_arg": func(s string) string { return `"` + systemdArgEscaper.Replace(s) + `"` },
	// systemd_arg_part escapes s as systemd_arg does, without the quotes:
	// a piece of an argument whose other pieces are specifiers (%i).
	"systemd_arg_part": systemdArgEscaper.Replace,
}

var systemdArgEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`, "\n", `\n`, "\r", `\r`)

func renderTemplate(name string, vars map[string]any) (string, error) {
	src, err := fs.ReadFile(recipes.FS, path.Join("templates", name))
	if err != nil {
		return "", fmt.Errorf("no template %q in raijin (templates: process.service, process.timer, web.socket, sandbox.conf, site.caddy, balancer.caddy, appenv.sh, apprun.sh)", name)
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=zero").Parse(string(src))
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	return b.String(), nil
}
