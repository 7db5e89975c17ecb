package recipe

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/shell"
)

// Events is told what a recipe does, for the terminal, -v and --json.
type Events interface {
	Log(host, phase, msg string)
	Command(host, cmd string)
	DryRun(host, kind, what, content string)
}

// Config is what every Lua state of a run is given.
type Config struct {
	Project  *config.Config
	Sources  Sources
	Command  string // ctx.command: deploy, redeploy, rollback, ...
	DryRun   bool
	Redeploy bool
	Rolling  bool // ctx.rolling: the app's hosts deploy in batches
	Full     bool // ctx.full: down removes Caddy too
	// ctx.delete_state: down deletes the app's state directory and user too
	DeleteState bool
	Keep        int    // ctx.keep: versions prune keeps (0 = not set)
	Process     string // ctx.process: the process app start|stop|restart|scale acts on ("" = all)
	Replicas    int    // ctx.replicas: app scale's count (0 = not set)
	Message     string // ctx.message: the text of `app maintenance --message`
	Events      Events
	Redactor    *secrets.Redactor
	// LoadEnv reads a host's env and resolves its secrets (raijin.env.load).
	LoadEnv func(ctx context.Context, h config.Host) (*secrets.Env, error)
}

// Target is what a state works on: a host, or the deploying machine (Host
// nil), and what the engine learnt of it when it connected.
type Target struct {
	Name     string          // the host's name, "local" or "plan", for logs and errors
	Host     *remote.Session // nil in a local state: no ctx.host
	Config   config.Host
	User     string            // ctx.host.user
	Paths    map[string]string // ctx.paths
	Versions []string          // ctx.versions: .versions, newest first (nil: not read)
	Dirs     []string          // the versions that have a directory on the host
	Version  string            // ctx.version, when it is not the configured version
	Previous string            // ctx.previous: the version current before the run
	Shared   any               // ctx.shared: what the local phases left for the hosts
	// Connect and Finish are the steps of the built-in phases connect and
	// finish (nil in a local state): the engine reads the host's facts and
	// takes the deploy lock, then writes the audit line and releases the
	// lock. The facts Connect returns replace the Target's.
	Connect func(ctx context.Context) (Facts, error)
	Finish  func(ctx context.Context) error
}

// Facts are what the built-in connect phase learns of a host.
type Facts struct {
	User     string
	Paths    map[string]string
	Versions []string
	Dirs     []string
	Version  string // the version the flow takes the host to
	Previous string // the version current before the run
	Live     string // the web slot serving: "blue" or "green"
	LiveUnit bool   // the live slot has a unit file (it has run)
	OldWeb   bool   // the web unit of an older raijin ({app}.service) is installed
}

// The built-in phases of every flow that reaches the hosts: connect comes
// before the first host phase, finish after the last. A recipe hooks them
// like any phase (raijin.before, raijin.after, hook files, raijin.override
// whose default must run).
const (
	ConnectPhase = "connect"
	FinishPhase  = "finish"
)

// State is a loaded recipe in its own Lua state, serving one target. It is
// not safe for concurrent use: a run has one per host.
type State struct {
	vm  *lua.LState
	reg *registry
	s   *hostState
	ctx *lua.LTable
}

// loadTimeout bounds how long loading a recipe may take: loading only
// declares phases, so a recipe that takes longer loops at its top level.
var loadTimeout = 30 * time.Second

// Load runs the built-in recipe, the project's recipe and registers its hook
// files, in a new Lua state for t. Errors are configuration errors (exit 2).
func Load(ctx context.Context, c Config, t Target) (*State, error) {
	s := &hostState{cfg: c, name: t.Name, host: t.Host, hostCfg: t.Config, user: t.User, paths: t.Paths,
		versions: t.Versions, dirs: t.Dirs, connect: t.Connect, finish: t.Finish}
	reg := newRegistry()
	L := newState(c.Project.Dir, s.module(reg))
	s.declareBuiltins(L, reg)
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	if err := c.Sources.load(lctx, L, reg); err != nil {
		L.Close()
		return nil, err
	}
	return &State{vm: L, reg: reg, s: s, ctx: s.newCtx(L, t)}, nil
}

// Close releases the Lua state.
func (st *State) Close() { st.vm.Close() }

// PhaseInfo describes one phase of a flow and where its parts come from.
type PhaseInfo struct {
	Name  string `json:"name"`
	Local bool   `json:"local"`
	// Once: the phase runs on one host of a run (see the engine's gate).
	Once      bool     `json:"once,omitempty"`
	Source    string   `json:"source"`
	Overrides []string `json:"overrides,omitempty"`
	Before    []string `json:"before,omitempty"`
	After     []string `json:"after,omitempty"`
	Undo      string   `json:"undo,omitempty"`
	// FlowSource is where the flow's phase list was declared.
	FlowSource string `json:"flow_source"`
}

// Flow lists the phases of flow in order.
func (st *State) Flow(flow string) ([]PhaseInfo, error) {
	names, ok := st.reg.flows[flow]
	if !ok {
		return nil, errs.Usagef("", "the recipe has no %q flow (raijin.flow)", flow)
	}
	var out []PhaseInfo
	for _, n := range withBuiltins(names, st.reg) {
		out = append(out, st.reg.phases[n].info(st.reg.flowSrc[flow]))
	}
	return out, nil
}

// withBuiltins puts connect before the first host phase of a flow and
// finish after its last (where the flow names them, they move there).
func withBuiltins(names []string, reg *registry) []string {
	first, last := -1, -1
	var out []string
	for _, n := range names {
		if n == ConnectPhase || n == FinishPhase {
			continue
		}
		if !reg.phases[n].local {
			if first < 0 {
				first = len(out)
			}
			last = len(out)
		}
		out = append(out, n)
	}
	if first < 0 {
		return out
	}
	res := append([]string{}, out[:first]...)
	res = append(res, ConnectPhase)
	res = append(res, out[first:last+1]...)
	res = append(res, FinishPhase)
	return append(res, out[last+1:]...)
}

func (p *phase) info(flowSrc string) PhaseInfo {
	pi := PhaseInfo{Name: p.name, Local: p.local, Once: p.once, Source: p.base.src, FlowSource: flowSrc}
	for _, o := range p.overrides {
		pi.Overrides = append(pi.Overrides, o.src)
	}
	for _, b := range p.before {
		pi.Before = append(pi.Before, b.src)
	}
	for _, a := range p.after {
		pi.After = append(pi.After, a.src)
	}
	if p.undo != nil {
		pi.Undo = p.undo.src
	}
	return pi
}

// RunPhase runs one phase: before hooks, the phase (its newest override,
// which may call the ones below it through `default`), after hooks. ctx
// bounds it: when ctx ends, the Lua code and the commands it started stop.
func (st *State) RunPhase(ctx context.Context, name string) error {
	p, ok := st.reg.phases[name]
	if !ok {
		return fmt.Errorf("no phase %q; the phases are: %s", name, st.reg.knownPhases())
	}
	st.s.phase, st.s.queued = p.name, nil
	for _, hk := range p.before {
		if err := st.callRef(ctx, hk); err != nil {
			return err
		}
	}
	if err := pcall(ctx, st.vm, st.chain(p, len(p.overrides)-1), st.ctx); err != nil {
		return err
	}
	for _, hk := range p.after {
		if err := st.callRef(ctx, hk); err != nil {
			return err
		}
	}
	return nil
}

// chain returns the phase function at override level i: level -1 is the
// recipe's own phase; each override gets (ctx, default) with default the level
// below.
func (st *State) chain(p *phase, i int) *lua.LFunction {
	if i < 0 {
		return p.base.fn
	}
	below := st.chain(p, i-1)
	over := p.overrides[i].fn
	return st.vm.NewFunction(func(L *lua.LState) int {
		ctxT := L.CheckTable(1)
		L.Push(over)
		L.Push(ctxT)
		L.Push(below)
		L.Call(2, 0)
		return 0
	})
}

// callRef calls a hook: a Lua function, or an executable hook file run on
// the deploying machine with the deploy's facts in its environment.
func (st *State) callRef(ctx context.Context, ref fnRef) error {
	if ref.exec == "" {
		return pcall(ctx, st.vm, ref.fn, st.ctx)
	}
	s := st.s
	res, err := s.runLocal(ctx, shell.Quote(ref.exec), remote.RunOpts{Env: st.hookEnv()})
	if err != nil {
		le := &Error{Msg: fmt.Sprintf("%s: %v", ref.src, err), Where: ref.src, Err: err}
		if ctx.Err() != nil {
			le.Cancelled = ctx.Err()
		}
		return le
	}
	// What the hook prints is for the user: show it as log lines.
	for _, line := range strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n") {
		if line != "" {
			s.cfg.Events.Log(s.name, s.phase, s.cfg.Redactor.Redact(line))
		}
	}
	return nil
}

// hookEnv is the environment of an executable hook: the deploy's facts.
func (st *State) hookEnv() map[string]string {
	s := st.s
	version := s.cfg.Project.Version
	if v, ok := st.ctx.RawGetString("version").(lua.LString); ok {
		version = string(v) // a rollback's target
	}
	env := map[string]string{
		"RAIJIN_APP":              s.cfg.Project.App,
		"RAIJIN_VERSION":          version,
		"RAIJIN_PHASE":            s.phase,
		"RAIJIN_COMMAND":          s.cfg.Command,
		"RAIJIN_HOST":             "",
		"RAIJIN_PREVIOUS_VERSION": st.Previous(),
	}
	if s.host != nil {
		env["RAIJIN_HOST"] = s.name
	}
	return env
}

// Undo runs the undo handler of phase (if the recipe has one: PhaseInfo.Undo)
// with ctx and the message of the failure that made it necessary.
func (st *State) Undo(ctx context.Context, phase, cause string) error {
	p, ok := st.reg.phases[phase]
	if !ok || p.undo == nil {
		return nil
	}
	st.s.phase = "undo " + p.name
	return pcall(ctx, st.vm, p.undo.fn, st.ctx, lua.LString(cause))
}

// SetHost replaces the host the state works on: the engine connects again
// when the connection dropped, so that the undo handlers still reach it.
func (st *State) SetHost(h *remote.Session) { st.s.host = h }

// SetHosts gives the local phases after the hosts ctx.hosts: every host's
// name, URL, roles and whether it runs web.
func (st *State) SetHosts(hosts []config.Host) {
	t := st.vm.NewTable()
	for _, h := range hosts {
		e := st.vm.NewTable()
		e.RawSetString("name", lua.LString(h.Name))
		e.RawSetString("url", lua.LString(h.URL()))
		e.RawSetString("roles", luaValue(st.vm, h.Roles))
		e.RawSetString("web", lua.LBool(slices.Contains(st.s.cfg.Project.HostProcesses(h), "web")))
		t.Append(e)
	}
	st.ctx.RawSetString("hosts", t)
}

// Shared is what the phases left in ctx.shared, out of the Lua state.
func (st *State) Shared() any { return goValue(st.ctx.RawGetString("shared")) }

// Audit is what the phases added to the audit line (ctx.audit), or nil.
func (st *State) Audit() map[string]any {
	if m, ok := goValue(st.ctx.RawGetString("audit")).(map[string]any); ok && len(m) > 0 {
		return m
	}
	return nil
}

// Previous is ctx.previous: the version current before the run, or "".
func (st *State) Previous() string {
	prev, _ := st.ctx.RawGetString("previous").(lua.LString)
	return string(prev)
}

// Switched says whether the recipe set ctx.switched: it started switching
// the current version, so a failure may have changed what serves.
func (st *State) Switched() bool { return st.ctx.RawGetString("switched") != lua.LNil }

// Outcome is ctx.state: what the recipe says the host is left with after a
// failure, or "" to let the engine say it.
func (st *State) Outcome() string {
	state, _ := st.ctx.RawGetString("state").(lua.LString)
	return string(state)
}

// TakeQueued is the failed step that an earlier phase deferred, when the
// last failure was one (nil otherwise); it is forgotten once taken.
func (st *State) TakeQueued() *remote.QueuedError {
	q := st.s.queued
	st.s.queued = nil
	return q
}

// HealthFailed says whether a health check failed in this state.
func (st *State) HealthFailed() bool { return st.s.health }

// newCtx builds the ctx table the phases receive.
func (s *hostState) newCtx(L *lua.LState, t Target) *lua.LTable {
	c := s.cfg.Project
	ctx := L.NewTable()
	ctx.RawSetString("app", lua.LString(c.App))
	ctx.RawSetString("version", lua.LString(c.Version))
	if t.Version != "" {
		ctx.RawSetString("version", lua.LString(t.Version))
	}
	ctx.RawSetString("command", lua.LString(s.cfg.Command))
	ctx.RawSetString("dry_run", lua.LBool(s.cfg.DryRun))
	ctx.RawSetString("redeploy", lua.LBool(s.cfg.Redeploy))
	ctx.RawSetString("rolling", lua.LBool(s.cfg.Rolling))
	ctx.RawSetString("full", lua.LBool(s.cfg.Full))
	ctx.RawSetString("delete_state", lua.LBool(s.cfg.DeleteState))
	if s.cfg.Keep > 0 {
		ctx.RawSetString("keep", lua.LNumber(s.cfg.Keep))
	}
	if s.cfg.Process != "" {
		ctx.RawSetString("process", lua.LString(s.cfg.Process))
	}
	if s.cfg.Replicas > 0 {
		ctx.RawSetString("replicas", lua.LNumber(s.cfg.Replicas))
	}
	if s.cfg.Message != "" {
		ctx.RawSetString("message", lua.LString(s.cfg.Message))
	}
	// Phases may add details to the command's audit line (ctx.audit.pruned).
	ctx.RawSetString("audit", L.NewTable())
	ctx.RawSetString("config", configValue(L, *c))
	ctx.RawSetString("local", s.localValue(L))
	if t.Previous != "" {
		ctx.RawSetString("previous", lua.LString(t.Previous))
	}
	if t.Versions != nil {
		ctx.RawSetString("versions", luaValue(L, t.Versions))
	}
	if s.host != nil {
		ctx.RawSetString("host", s.hostValue(L, t.Config))
		ctx.RawSetString("paths", luaValue(L, s.paths))
	} else {
		ctx.RawSetString("paths", L.NewTable())
	}
	ctx.RawSetString("shared", luaValue(L, t.Shared))
	return ctx
}
