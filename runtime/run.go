package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/transport"
	"github.com/raijin-deploy/raijin/upload"
)

// Events is told what a run does, for the terminal, -v and --json.
type Events interface {
	PhaseStart(host, phase string)
	PhaseEnd(host, phase string, d time.Duration, err error)
	Log(host, phase, msg string)
	Command(host, cmd string)
	DryRun(host, kind, what, content string)
}

// Connector opens a connection to a host for a run: SSH, or a
// remote.Recorder in --dry-run and tests. Every run acts on it through a
// remote.Session.
type Connector func(ctx context.Context, h config.Host) (remote.Conn, func(), error)

// Options are everything a run needs, resolved by the command line.
type Options struct {
	Config        *config.Config
	Sources       Sources
	Command       string // deploy, redeploy, rollback, ...
	Flow          string // the recipe flow to run: deploy, rollback
	Hosts         []config.Host
	DryRun        bool
	Redeploy      bool
	TargetVersion string // rollback: the version to switch to ("" = previous)
	Keep          int    // prune: versions to keep (0 = versions_to_keep)
	Full          bool   // down: remove Caddy too when no other app uses it
	BatchSize     int    // hosts at a time; 0 = all
	ForceUnlock   bool
	// TakeOverStale, when set, is asked whether to take over a stale lock
	// (its holder's process is gone); without it, or on "no", the run stops.
	TakeOverStale func(question string) bool
	LockWait      time.Duration
	PhaseTimeout  time.Duration
	Events        Events
	Redactor      *secrets.Redactor
	Connect       Connector
	Secrets       secrets.SecretAdapter
	// Observer and Stats are told of the steps a host's batches carry.
	Observer remote.Observer
	Stats    *remote.Stats
	// AllOrNothing: when a host fails, the hosts that succeeded are rolled
	// back to their previous version too.
	AllOrNothing bool
	// NoLock runs the flow without the deploy lock: for flows that change
	// nothing of the app (bootstrap, export-config).
	NoLock bool
}

// HostResult is how one host's run ended.
type HostResult struct {
	Host     string
	Phase    string // where it failed
	Err      error
	Restored bool // a failure was undone
	Duration time.Duration
	Skipped  bool   // not run, because an earlier batch failed
	Version  string // the version the host was taken to
	Previous string // the version that was current before
	// RolledBack: it succeeded, then --all-or-nothing switched it back to
	// Previous (RollbackErr when that failed).
	RolledBack  bool
	RollbackErr error
}

// Report is the outcome of a run.
type Report struct {
	Hosts    []HostResult
	Duration time.Duration
}

// dialing is a connection opened while the local phases run.
type dialing struct {
	done  chan struct{}
	host  remote.Conn
	close func()
	err   error
	taken bool
}

// dialEarly opens every host's connection while the local phases (the
// build) run, so that the SSH handshakes' round trips do not wait for them.
// Only the connection is made: nothing runs on a host before its phases,
// and a failed build leaves the hosts untouched.
func (r *runner) dialEarly(ctx context.Context) {
	r.early = map[string]*dialing{}
	for _, h := range r.opts.Hosts {
		d := &dialing{done: make(chan struct{})}
		r.early[h.Name] = d
		go func(h config.Host) {
			defer close(d.done)
			d.host, d.close, d.err = r.opts.Connect(ctx, h)
		}(h)
	}
}

// connect is the host's early connection, else a new one.
func (r *runner) connect(ctx context.Context, h config.Host) (remote.Conn, func(), error) {
	r.earlyMu.Lock()
	d := r.early[h.Name]
	if d != nil {
		d.taken = true
	}
	r.earlyMu.Unlock()
	if d == nil {
		return r.opts.Connect(ctx, h)
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return d.host, d.close, d.err
}

// closeEarly closes the early connections no host run took (the build
// failed, or an earlier batch did).
func (r *runner) closeEarly() {
	r.earlyMu.Lock()
	defer r.earlyMu.Unlock()
	for _, d := range r.early {
		if d.taken {
			continue
		}
		d.taken = true
		go func(d *dialing) {
			<-d.done
			if d.err == nil {
				d.close()
			}
		}(d)
	}
}

type runner struct {
	earlyMu sync.Mutex
	early   map[string]*dialing
	opts    Options
	envMu   sync.Mutex
	envs    map[string]*secrets.Env
	started time.Time
}

// Plan loads the recipe once to check it (exit 2 on any error) and returns
// the phases of flow, for `raijin recipe show` and for validation.
func Plan(opts Options) ([]PhaseInfo, error) {
	return (&runner{opts: opts}).plan(context.Background())
}

func (r *runner) plan(ctx context.Context) ([]PhaseInfo, error) {
	opts := r.opts
	s := &hostState{r: r, name: "plan"}
	L, reg, err := r.load(ctx, s)
	if err != nil {
		return nil, err
	}
	defer L.Close()
	flow := opts.Flow
	if flow == "" {
		flow = "deploy"
	}
	var out []PhaseInfo
	names, ok := reg.flows[flow]
	if !ok {
		return nil, errs.Usagef("", "the recipe has no %q flow (raijin.flow)", flow)
	}
	for _, n := range names {
		p := reg.phases[n]
		pi := PhaseInfo{Name: n, Local: p.local, Source: p.base.src, FlowSource: reg.flowSrc[flow]}
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
		out = append(out, pi)
	}
	return out, nil
}

// PhaseInfo describes one phase of a flow and where its parts come from.
type PhaseInfo struct {
	Name      string   `json:"name"`
	Local     bool     `json:"local"`
	Source    string   `json:"source"`
	Overrides []string `json:"overrides,omitempty"`
	Before    []string `json:"before,omitempty"`
	After     []string `json:"after,omitempty"`
	Undo      string   `json:"undo,omitempty"`
	// FlowSource is where the flow's phase list was declared.
	FlowSource string `json:"flow_source"`
}

// loadTimeout bounds how long loading a recipe may take: loading only
// declares phases, so a recipe that takes longer loops at its top level.
var loadTimeout = 30 * time.Second

func (r *runner) load(ctx context.Context, s *hostState) (*lua.LState, *registry, error) {
	reg := newRegistry()
	L := newState(r.opts.Config.Dir, s.module(reg))
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	if err := r.opts.Sources.load(ctx, L, reg); err != nil {
		L.Close()
		return nil, nil, err
	}
	return L, reg, nil
}

// Run carries out a flow: its local phases once, then its host phases on
// each host (in parallel, in batches), then the local phases after them.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Flow == "" {
		opts.Flow = "deploy"
	}
	if opts.PhaseTimeout == 0 {
		opts.PhaseTimeout = 10 * time.Minute
	}
	if opts.Redactor == nil {
		opts.Redactor = &secrets.Redactor{}
	}
	r := &runner{opts: opts, envs: map[string]*secrets.Env{}, started: time.Now()}
	if _, err := r.plan(ctx); err != nil {
		return nil, err
	}
	report := &Report{}

	// The local phases before the first host phase.
	ls := &hostState{r: r, name: "local"}
	L, reg, err := r.load(ctx, ls)
	if err != nil {
		return nil, err
	}
	defer L.Close()
	flow := reg.flows[opts.Flow]
	var before, hostPhases, after []string
	for _, n := range flow {
		switch {
		case !reg.phases[n].local:
			hostPhases = append(hostPhases, n)
		case len(hostPhases) == 0:
			before = append(before, n)
		default:
			after = append(after, n)
		}
	}
	lctx := r.newCtx(L, ls, config.Host{}, nil, "")
	shared := L.NewTable()
	lctx.RawSetString("shared", shared)
	if !opts.DryRun && len(before) > 0 && len(hostPhases) > 0 {
		r.dialEarly(ctx)
		defer r.closeEarly()
	}
	for _, n := range before {
		if err := r.runPhase(ctx, L, ls, reg.phases[n], lctx); err != nil {
			he := r.hostError("local", n, err)
			if len(hostPhases) > 0 {
				he.State = "no host was touched: the version each host runs keeps serving"
			}
			return report, he
		}
	}
	sharedGo := goValue(shared)

	// The hosts, batch by batch.
	batch := opts.BatchSize
	if opts.DryRun {
		// One host after another, so the printout reads as a block per host.
		batch = 1
	}
	if batch <= 0 || batch > len(opts.Hosts) {
		batch = len(opts.Hosts)
	}
	if opts.DryRun {
		// One host after the other, so that what each would do reads as one
		// block per host.
		batch = 1
	}
	failed := false
	for i := 0; i < len(opts.Hosts); i += batch {
		end := min(i+batch, len(opts.Hosts))
		if failed {
			for _, h := range opts.Hosts[i:end] {
				report.Hosts = append(report.Hosts, HostResult{Host: h.Name, Skipped: true})
			}
			continue
		}
		results := make([]HostResult, end-i)
		var wg sync.WaitGroup
		for j, h := range opts.Hosts[i:end] {
			wg.Add(1)
			go func(j int, h config.Host) {
				defer wg.Done()
				results[j] = r.runHost(ctx, h, hostPhases, sharedGo)
			}(j, h)
		}
		wg.Wait()
		for _, res := range results {
			if res.Err != nil {
				failed = true
			}
		}
		report.Hosts = append(report.Hosts, results...)
	}
	if failed && opts.AllOrNothing {
		r.rollBackSucceeded(ctx, report)
	}
	report.Duration = time.Since(r.started)
	if failed {
		return report, summarize(report)
	}
	if len(after) > 0 {
		hosts := L.NewTable()
		for _, h := range opts.Hosts {
			t := L.NewTable()
			t.RawSetString("name", lua.LString(h.Name))
			t.RawSetString("url", lua.LString(h.URL()))
			hosts.Append(t)
		}
		lctx.RawSetString("hosts", hosts)
		for _, n := range after {
			if err := r.runPhase(ctx, L, ls, reg.phases[n], lctx); err != nil {
				return report, r.hostError("local", n, err)
			}
		}
	}
	report.Duration = time.Since(r.started)
	return report, nil
}

// rollBackSucceeded is --all-or-nothing: the hosts that took the new version
// while another failed are switched back to the version they had, in
// parallel, with the recipe's rollback flow.
func (r *runner) rollBackSucceeded(ctx context.Context, report *Report) {
	byName := map[string]config.Host{}
	for _, h := range r.opts.Hosts {
		byName[h.Name] = h
	}
	var wg sync.WaitGroup
	for i := range report.Hosts {
		res := &report.Hosts[i]
		if res.Err != nil || res.Skipped {
			continue
		}
		if res.Previous == "" || res.Previous == res.Version {
			res.RollbackErr = fmt.Errorf("no previous version to switch back to")
			continue
		}
		wg.Add(1)
		go func(res *HostResult) {
			defer wg.Done()
			o := r.opts
			o.Flow, o.Command, o.TargetVersion, o.Redeploy = "rollback", "rollback", res.Previous, false
			rr := &runner{opts: o, envs: r.envs, started: r.started}
			rr.opts.Events.Log(res.Host, "rollback", "--all-or-nothing: switching back to "+res.Previous)
			phases, err := hostPhases(o)
			if err == nil {
				out := rr.runHost(ctx, byName[res.Host], phases, nil)
				err = out.Err
			}
			res.RolledBack = err == nil
			res.RollbackErr = err
		}(res)
	}
	wg.Wait()
}

// hostPhases are the host phases of o.Flow.
func hostPhases(o Options) ([]string, error) {
	infos, err := Plan(o)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range infos {
		if !p.Local {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// summarize makes the error of a run in which hosts failed. A single failed
// host keeps its own error (and exit code).
func summarize(rep *Report) error {
	var failed []HostResult
	for _, h := range rep.Hosts {
		if h.Err != nil {
			failed = append(failed, h)
		}
	}
	if len(failed) == 1 {
		return failed[0].Err
	}
	var msgs []string
	code := errs.CodeFailed
	for _, h := range failed {
		msgs = append(msgs, h.Err.Error())
		if c := errs.Code(h.Err); c != errs.CodeFailed {
			code = c
		}
	}
	return &errs.Error{Code: code, Msg: fmt.Sprintf("%d hosts failed:\n%s", len(failed), strings.Join(msgs, "\n"))}
}

// HostError is a failure on one host in one phase.
type HostError struct {
	Host      string
	Phase     string
	Msg       string
	Traceback string
	Code      int
	Hint      string // what to do about it, when the cause said
	State     string // what the host is left with
}

func (e *HostError) Error() string {
	s := fmt.Sprintf("host %s: phase %s: %s", e.Host, e.Phase, e.Msg)
	if e.State != "" {
		s += "\n" + e.State
	}
	return s
}

func (r *runner) hostError(host, phase string, err error) *HostError {
	he := &HostError{Host: host, Phase: phase, Msg: r.opts.Redactor.Redact(err.Error()), Code: errs.Code(err), Hint: errs.Hint(err)}
	var le *LuaError
	if errors.As(err, &le) {
		he.Traceback = r.opts.Redactor.Redact(le.Traceback)
		he.Code = errs.CodeFailed
		if le.Cancelled != nil {
			at := ""
			if m := luaWhereRE.FindStringSubmatch(le.Msg); m != nil {
				at = " at " + m[1]
			} else if le.Where != "" {
				at = " in " + le.Where
			}
			if errors.Is(le.Cancelled, context.DeadlineExceeded) {
				he.Msg = fmt.Sprintf("interrupted%s: the phase ran longer than phase_timeout (%s)", at, r.opts.PhaseTimeout)
			} else {
				he.Msg = fmt.Sprintf("interrupted%s (Ctrl-C or SIGTERM): the commands it started were stopped", at)
			}
		}
	}
	if he.Code == 0 {
		he.Code = errs.CodeFailed
	}
	return he
}

// luaWhereRE finds the "file.lua:LINE" an error message starts with.
var luaWhereRE = regexp.MustCompile(`^([^\s:]+\.lua:\d+):`)

// Unwrap gives errs.Code its exit code.
func (e *HostError) Unwrap() error { return &errs.Error{Code: e.Code, Msg: e.Msg, Hint: e.Hint} }

// newCtx builds the ctx table a phase receives.
func (r *runner) newCtx(L *lua.LState, s *hostState, h config.Host, versions []string, previous string) *lua.LTable {
	c := r.opts.Config
	t := L.NewTable()
	t.RawSetString("app", lua.LString(c.App))
	t.RawSetString("version", lua.LString(c.Version))
	t.RawSetString("command", lua.LString(r.opts.Command))
	t.RawSetString("dry_run", lua.LBool(r.opts.DryRun))
	t.RawSetString("redeploy", lua.LBool(r.opts.Redeploy))
	t.RawSetString("full", lua.LBool(r.opts.Full))
	if r.opts.Keep > 0 {
		t.RawSetString("keep", lua.LNumber(r.opts.Keep))
	}
	// Phases may add details to the command's audit line (ctx.audit.pruned).
	t.RawSetString("audit", L.NewTable())
	t.RawSetString("config", configValue(L, *c))
	t.RawSetString("local", s.localTable(L))
	if previous != "" {
		t.RawSetString("previous", lua.LString(previous))
	}
	if versions != nil {
		t.RawSetString("versions", luaValue(L, versions))
	}
	if s.host != nil {
		t.RawSetString("host", s.hostTable(L, h))
		t.RawSetString("paths", luaValue(L, s.paths))
	} else {
		t.RawSetString("paths", L.NewTable())
	}
	return t
}

// runPhase runs one phase: before hooks, the phase (its newest override,
// which may call the ones below it through `default`), after hooks.
func (r *runner) runPhase(ctx context.Context, L *lua.LState, s *hostState, p *phase, lctx *lua.LTable) (err error) {
	s.phase = p.name
	if r.opts.DryRun {
		r.opts.Events.DryRun(s.name, "phase", p.name, "")
	}
	r.opts.Events.PhaseStart(s.name, p.name)
	start := time.Now()
	defer func() { r.opts.Events.PhaseEnd(s.name, p.name, time.Since(start), err) }()
	pctx, cancel := context.WithTimeout(ctx, r.opts.PhaseTimeout)
	defer cancel()
	for _, hk := range p.before {
		if err := r.callRef(pctx, L, s, hk, lctx); err != nil {
			return err
		}
	}
	impl := r.chain(L, p, len(p.overrides)-1)
	if err := pcall(pctx, L, impl, lctx); err != nil {
		return err
	}
	for _, hk := range p.after {
		if err := r.callRef(pctx, L, s, hk, lctx); err != nil {
			return err
		}
	}
	return nil
}

// chain returns the phase function at override level i: level -1 is the
// recipe's own phase; each override gets (ctx, default) with default the level
// below.
func (r *runner) chain(L *lua.LState, p *phase, i int) *lua.LFunction {
	if i < 0 {
		return p.base.fn
	}
	below := r.chain(L, p, i-1)
	over := p.overrides[i].fn
	return L.NewFunction(func(L *lua.LState) int {
		ctxT := L.CheckTable(1)
		L.Push(over)
		L.Push(ctxT)
		L.Push(below)
		L.Call(2, 0)
		return 0
	})
}

func (r *runner) callRef(ctx context.Context, L *lua.LState, s *hostState, ref fnRef, lctx *lua.LTable) error {
	if ref.exec == "" {
		return pcall(ctx, L, ref.fn, lctx)
	}
	version := r.opts.Config.Version
	if v, ok := lctx.RawGetString("version").(lua.LString); ok {
		version = string(v) // a rollback's target
	}
	env := map[string]string{
		"RAIJIN_APP":              r.opts.Config.App,
		"RAIJIN_VERSION":          version,
		"RAIJIN_PHASE":            s.phase,
		"RAIJIN_COMMAND":          r.opts.Command,
		"RAIJIN_HOST":             "",
		"RAIJIN_PREVIOUS_VERSION": "",
	}
	if s.host != nil {
		env["RAIJIN_HOST"] = s.name
	}
	if prev, ok := lctx.RawGetString("previous").(lua.LString); ok {
		env["RAIJIN_PREVIOUS_VERSION"] = string(prev)
	}
	res, err := r.localRun(ctx, s.name, shell.Quote(ref.exec), remote.RunOpts{Env: env})
	if err != nil {
		le := &LuaError{Msg: fmt.Sprintf("%s: %v", ref.src, err), Where: ref.src}
		if ctx.Err() != nil {
			le.Cancelled = ctx.Err()
		}
		return le
	}
	// What the hook prints is for the user: show it as log lines.
	for _, line := range strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n") {
		if line != "" {
			r.opts.Events.Log(s.name, s.phase, r.opts.Redactor.Redact(line))
		}
	}
	return nil
}

// loadEnv reads and resolves a host's env once per run.
func (r *runner) loadEnv(ctx context.Context, h config.Host) (*secrets.Env, error) {
	r.envMu.Lock()
	defer r.envMu.Unlock()
	if e, ok := r.envs[h.Name]; ok {
		return e, nil
	}
	var env *secrets.Env
	var err error
	switch {
	case h.Envfile != "":
		data, rerr := os.ReadFile(r.opts.Config.Path(h.Envfile))
		if rerr != nil {
			return nil, rerr
		}
		env, err = secrets.ParseEnv(h.Envfile, string(data))
	default:
		env, err = secrets.ParseEnv(r.opts.Config.File+" [hosts "+h.Name+"] env", h.Env)
	}
	if err != nil {
		return nil, errs.Usagef("", "%v", err)
	}
	adapter := r.opts.Secrets
	if adapter == nil {
		adapter, err = secrets.NewSecretAdapter(r.opts.Config.Secrets.Adapter, r.opts.Config.Secrets.PasswordEnv)
		if err != nil {
			return nil, err
		}
	}
	if err := secrets.ResolveSecrets(ctx, env, adapter); err != nil {
		return nil, err
	}
	r.opts.Redactor.Add(env.SecretValues()...)
	r.envs[h.Name] = env
	return env, nil
}

// AppDir is the app directory for host h as the server will see it, given
// the deploy user's home.
func AppDir(c *config.Config, h config.Host, home string) string {
	d := h.AppsDir
	if !strings.HasPrefix(d, "/") {
		d = path.Join(home, d)
	}
	return path.Join(d, c.App)
}

// Paths are the server paths a recipe works with.
func Paths(c *config.Config, h config.Host, home, version string) map[string]string {
	app := AppDir(c, h, home)
	return map[string]string{
		"home":        home,
		"apps_dir":    path.Dir(app),
		"app_dir":     app,
		"version_dir": path.Join(app, "v"+version),
		"env":         path.Join(app, ".env"),
		"appenv":      path.Join(app, ".appenv"),
		"versions":    path.Join(app, ".versions"),
		"lock":        path.Join(app, ".lock"),
		"audit":       path.Join(app, ".audit.jsonl"),
		"venv":        path.Join(app, ".venv"),
		"unit_dir":    "/etc/systemd/system",
		"caddy_site":  "/etc/caddy/conf.d/" + c.App + ".caddy",
	}
}

// runHost runs the host phases on one host, with the deploy lock held.
func (r *runner) runHost(ctx context.Context, h config.Host, phases []string, shared any) (res HostResult) {
	start := time.Now()
	res.Host = h.Name
	defer func() { res.Duration = time.Since(start) }()
	fail := func(phase string, err error) HostResult {
		res.Phase = phase
		if _, ok := err.(*HostError); !ok {
			err = r.hostError(h.Name, phase, err)
		}
		res.Err = err
		return res
	}
	r.opts.Events.PhaseStart(h.Name, "connect")
	cstart := time.Now()
	conn, closeFn, err := r.connect(ctx, h)
	if err != nil {
		r.opts.Events.PhaseEnd(h.Name, "connect", time.Since(cstart), err)
		return fail("connect", errs.WithCode(errs.CodeFailed, err, ""))
	}
	closers := []func(){closeFn}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	// Steps the recipe defers ride along with the next remote command; the
	// last ones go with the audit line and the lock's release.
	batcher := r.newSession(conn)
	host := batcher
	lockVersion := ""
	switch r.opts.Flow {
	case "deploy":
		lockVersion = r.opts.Config.Version
	case "rollback":
		lockVersion = r.opts.TargetVersion
	}
	lock := server.NewLockInfo(r.opts.Command, lockVersion)
	if r.opts.DryRun {
		r.opts.Events.DryRun(h.Name, "phase", "connect", "")
	}
	facts, err := r.prepare(ctx, host, h, lock, len(phases))
	r.opts.Events.PhaseEnd(h.Name, "connect", time.Since(cstart), err)
	if err != nil {
		return fail("connect", err)
	}
	var s *hostState

	version := r.opts.Config.Version
	previous := ""
	if len(facts.versions) > 0 {
		previous = facts.versions[0]
	}
	// The audit line and the lock's release go in one command, whatever the
	// outcome (an interrupted run included): with the last deferred steps
	// when the run succeeds, else on their own.
	audit := server.AuditEntry{Time: lock.Since, App: r.opts.Config.App, Command: r.opts.Command,
		User: lock.User, Machine: lock.Machine, From: previous}
	var lctx *lua.LTable
	finishScript := func() string {
		audit.Duration = time.Since(start).Round(time.Millisecond).Seconds()
		audit.Result = "ok"
		if res.Err != nil {
			audit.Result, audit.Phase = "failed", res.Phase
			audit.Error = shortError(res.Err)
		}
		if lctx != nil {
			if m, ok := goValue(lctx.RawGetString("audit")).(map[string]any); ok && len(m) > 0 {
				audit.Details = m
			}
		}
		if r.opts.NoLock {
			return "true" // no lock to release, and nothing of the app changed to audit
		}
		return server.FinishScript(facts.appDir, lock, audit)
	}
	finished := false
	// A flow without the lock (bootstrap, export-config) changes nothing of
	// the app: no audit line either.
	if !r.opts.DryRun && !r.opts.NoLock {
		defer func() {
			if finished {
				return
			}
			batcher.Discard()
			if s != nil {
				host = s.host
			}
			// The connection may have dropped: then write the audit line and
			// release the lock over a fresh one, so the next deploy does not
			// find a stale lock.
			if h2 := r.revive(h, host, &closers); h2 != nil {
				host = h2
			}
			uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := remote.Must(uctx, host, finishScript(), remote.RunOpts{}); err != nil {
				r.opts.Events.Log(h.Name, "finish", "could not write the audit line or release the deploy lock: "+
					r.opts.Redactor.Redact(err.Error())+"; check with `raijin lock status`")
			}
		}()
	}
	switch r.opts.Flow {
	case "deploy":
		audit.To = version
	case "rollback":
		audit.To = r.opts.TargetVersion
		target, err := rollbackTarget(facts.versions, r.opts.TargetVersion)
		if err != nil {
			return fail("connect", err)
		}
		version = target
		audit.To = version
	default:
		// prune, down and a project's own flows act on the current version.
		if previous != "" {
			version = previous
		}
	}
	s = &hostState{r: r, name: h.Name, host: host, user: facts.user, paths: Paths(r.opts.Config, h, facts.home, version),
		versions: facts.versions, dirs: facts.dirs}
	if r.opts.Flow == "deploy" {
		s.dirs = append(s.dirs, version) // the transfer makes its directory
	}
	L, reg, err := r.load(ctx, s)
	if err != nil {
		return fail("load", err)
	}
	defer L.Close()
	res.Version, res.Previous = version, previous
	lctx = r.newCtx(L, s, h, facts.versions, previous)
	lctx.RawSetString("version", lua.LString(version))
	lctx.RawSetString("shared", luaValue(L, shared))

	var startedPhases []*phase
	failed := func(n string, err error) HostResult {
		var qe *remote.QueuedError
		if errors.As(err, &qe) {
			n = qe.Label
		}
		he := r.hostError(h.Name, n, err)
		if h2 := r.revive(h, s.host, &closers); h2 != nil {
			s.host = h2
		} else if !errors.As(err, &qe) && batcher.Pending() > 0 {
			// Steps deferred by the phases that completed are done, as if
			// they had been sent at once; then the undo handlers run.
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if ferr := batcher.Flush(fctx); ferr != nil {
				r.opts.Events.Log(h.Name, n, r.opts.Redactor.Redact("the steps deferred before the failure failed too: "+ferr.Error()))
			}
			cancel()
		}
		batcher.Discard()
		restored, state := r.undo(L, s, startedPhases, lctx, err)
		res.Restored = restored
		he.State = state
		// Exit 4 means a previous version is serving again; after a first
		// deploy there was none to restore (exit 1).
		if prev, _ := lctx.RawGetString("previous").(lua.LString); s.health && restored && prev != "" {
			he.Code = errs.CodeHealth
		}
		return fail(n, he)
	}
	for _, n := range phases {
		p := reg.phases[n]
		startedPhases = append(startedPhases, p)
		batcher.Label(n)
		if err := r.runPhase(ctx, L, s, p, lctx); err != nil {
			return failed(n, err)
		}
	}
	if s.host == batcher {
		batcher.Label("")
		if r.opts.DryRun {
			r.opts.Events.DryRun(h.Name, "phase", "finish", "")
		}
		// The steps still deferred, then (if they all succeed) the audit
		// line and the lock's release: one round trip.
		ok, err := batcher.Finish(ctx, finishScript())
		finished = ok
		if err != nil {
			return failed(phases[len(phases)-1], err)
		}
	}
	return res
}

// revive checks that host's connection still answers; when it dropped, it
// connects again (as the undo handlers and the unlock must still reach the
// server) and returns the new host, else nil.
func (r *runner) revive(h config.Host, host *remote.Session, closers *[]func()) *remote.Session {
	if r.opts.DryRun {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if host.Alive(pctx) == nil {
		return nil
	}
	r.opts.Events.Log(h.Name, "cleanup", "the connection dropped: connecting again to clean up")
	conn, closeFn, err := r.opts.Connect(pctx, h)
	if err != nil {
		r.opts.Events.Log(h.Name, "cleanup", "cannot connect again: "+r.opts.Redactor.Redact(err.Error()))
		return nil
	}
	*closers = append(*closers, closeFn)
	return r.newSession(conn)
}

// undo runs the undo handlers of the phases that started, newest first, on a
// fresh context (the run's may be cancelled). It says what the host is left
// with.
func (r *runner) undo(L *lua.LState, s *hostState, started []*phase, lctx *lua.LTable, cause error) (bool, string) {
	uctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ran := false
	for i := len(started) - 1; i >= 0; i-- {
		p := started[i]
		if p.undo == nil {
			continue
		}
		ran = true
		name := "undo " + p.name
		s.phase = name
		if r.opts.DryRun {
			r.opts.Events.DryRun(s.name, "phase", name, "")
		}
		r.opts.Events.PhaseStart(s.name, name)
		t := time.Now()
		err := pcall(uctx, L, p.undo.fn, lctx, lua.LString(r.opts.Redactor.Redact(cause.Error())))
		r.opts.Events.PhaseEnd(s.name, name, time.Since(t), err)
		if err != nil {
			return false, fmt.Sprintf("undoing %s failed too: %s; check the host with `raijin app status -H %s`", p.name, r.opts.Redactor.Redact(err.Error()), s.name)
		}
	}
	if state, ok := lctx.RawGetString("state").(lua.LString); ok && state != "" {
		return false, string(state)
	}
	prev, _ := lctx.RawGetString("previous").(lua.LString)
	// The recipes set ctx.switched when they start switching the current
	// version: a failure before that has changed nothing that serves.
	if ran && lctx.RawGetString("switched") == lua.LNil {
		ran = false
	}
	switch {
	case ran && prev != "":
		return true, fmt.Sprintf("the previous version %s was restored and is serving", prev)
	case ran:
		return true, "this was the first deploy: there is no previous version to restore"
	case prev != "":
		return false, fmt.Sprintf("nothing was switched: version %s is still serving", prev)
	}
	return false, ""
}

// shortError is the first line of err, bounded, for the audit log.
func shortError(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 300 {
		msg = msg[:297] + "..."
	}
	return msg
}

func rollbackTarget(versions []string, want string) (string, error) {
	if len(versions) == 0 {
		return "", errs.Failedf("deploy first", "no versions recorded on this host")
	}
	if want == "" {
		if len(versions) < 2 {
			return "", errs.Failedf("`raijin releases` lists the versions on each host", "no previous version to roll back to: only %s is recorded", versions[0])
		}
		return versions[1], nil
	}
	for _, v := range versions {
		if v == want {
			if v == versions[0] {
				return "", errs.Failedf("", "version %s is already the current one", want)
			}
			return v, nil
		}
	}
	return "", errs.Failedf("`raijin releases` lists the versions on each host", "version %s is not on this host (recorded: %s)", want, strings.Join(versions, ", "))
}

type hostFacts struct {
	home, user, appDir string
	versions           []string
	dirs               []string // the versions with a v{version} directory
}

// factsScript learns the deploy user's home, takes the deploy lock and
// reads .versions and the version directories, in one remote command.
// Shell built-ins only, where they do: every process started on a small
// server is felt when many hosts deploy at once.
func (r *runner) factsScript(rel string, lock server.LockInfo, force bool) string {
	take := server.LockScript(rel, lock, force)
	if r.opts.NoLock {
		take = "echo locked"
	}
	return "cd && printf '%s\\n' \"$PWD\" \"${USER:-$(id -un)}\" && " + take +
		"; echo '@@versions'; " + server.CatScript(rel+"/.versions") + "; echo '@@dirs'; " +
		"for d in " + shell.Quote(rel) + "/v*/; do [ -d \"$d\" ] && d=${d%/} && printf '%s\\n' \"${d##*/}\"; done; true"
}

// dryRunFacts stand in for a server's in --dry-run: the deploy user's home,
// no versions yet.
func dryRunFacts(c *config.Config, h config.Host) hostFacts {
	user := h.User
	if user == "" {
		user = "deploy"
	}
	home := "/home/" + user
	if user == "root" {
		home = "/root"
	}
	return hostFacts{home: home, user: user, appDir: AppDir(c, h, home)}
}

// prepare learns the deploy user's home, takes the deploy lock and reads
// .versions, in one remote command (factsScript), waiting for the lock.
func (r *runner) prepare(ctx context.Context, host *remote.Session, h config.Host, lock server.LockInfo, nphases int) (hostFacts, error) {
	c := r.opts.Config
	rel := path.Join(h.AppsDir, c.App)
	force := r.opts.ForceUnlock
	if r.opts.DryRun {
		// The script is shown as it would run; its answer is made up.
		if _, err := host.Run(ctx, r.factsScript(rel, lock, force), remote.RunOpts{}); err != nil {
			return hostFacts{}, err
		}
		return dryRunFacts(c, h), nil
	}
	deadline := time.Now().Add(r.opts.LockWait)
	waited := false
	for {
		res, err := remote.Must(ctx, host, r.factsScript(rel, lock, force), remote.RunOpts{})
		if err != nil {
			return hostFacts{}, err
		}
		head, vers, _ := strings.Cut(res.Stdout, "@@versions")
		lines := strings.SplitN(strings.TrimSpace(head), "\n", 3)
		if len(lines) < 3 {
			return hostFacts{}, fmt.Errorf("unexpected answer from the server: %q", res.Stdout)
		}
		vers, dirs, _ := strings.Cut(vers, "@@dirs")
		f := hostFacts{home: lines[0], user: lines[1], versions: server.ParseVersions(vers)}
		for _, d := range server.ParseVersions(dirs) {
			if v, ok := strings.CutPrefix(d, "v"); ok && v != "" {
				f.dirs = append(f.dirs, v)
			}
		}
		f.appDir = AppDir(c, h, f.home)
		locked, holder := server.ParseLockOutput(lines[2])
		if locked {
			return f, nil
		}
		if time.Now().Before(deadline) {
			if !waited {
				r.opts.Events.Log(h.Name, "connect", "waiting up to "+r.opts.LockWait.String()+" for the deploy lock, held by "+holder.Describe())
				waited = true
			}
			select {
			case <-ctx.Done():
				return f, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		msg := "the deploy lock " + f.appDir + "/.lock is held by " + holder.Describe()
		hint := "wait for it (--lock-wait 5m), or if that deploy is dead: raijin lock release"
		// No run holds the lock longer than its phases' timeouts plus the undo
		// (2 minutes) and the release: an older lock was left by a dead run,
		// wherever that ran.
		maxHold := time.Duration(nphases)*r.opts.PhaseTimeout + 5*time.Minute
		stale := holder.Stale()
		if stale {
			msg += "; that process is gone, so the lock is stale"
		} else if !holder.Since.IsZero() && time.Since(holder.Since) > maxHold {
			stale = true
			msg += fmt.Sprintf("; no run holds it that long (%d phase(s) × phase_timeout %s), so the lock is stale", nphases, r.opts.PhaseTimeout)
		}
		if stale {
			hint = "take it over with --force-unlock (or raijin lock release)"
			if !force && r.opts.TakeOverStale != nil && r.opts.TakeOverStale(fmt.Sprintf("host %s: %s. Take it over?", h.Name, msg)) {
				r.opts.Events.Log(h.Name, "connect", "taking over the stale lock of "+holder.Describe())
				force = true
				continue
			}
		}
		return f, &errs.Error{Code: errs.CodeLocked, Msg: msg, Hint: hint}
	}
}

// newSession is how a run acts on a connection: every host, in production,
// --dry-run and the tests alike.
func (r *runner) newSession(conn remote.Conn) *remote.Session {
	s := remote.NewSession(conn, r.opts.Observer, r.opts.Redactor, r.opts.Stats)
	s.Plan = r.opts.DryRun
	if !r.opts.DryRun {
		s.Cache = upload.SharedCache()
	}
	return s
}

// SSHConnector connects with transport.Dial; commands go through the
// remote worker.
func SSHConnector(stats *remote.Stats, acceptNew bool) Connector {
	return func(ctx context.Context, h config.Host) (remote.Conn, func(), error) {
		cl, err := transport.Dial(ctx, transport.Target{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User,
			KeyFile: h.KeyFilename, AcceptNew: acceptNew}, stats)
		if err != nil {
			// runHost names the host and the phase (connect).
			return nil, nil, err
		}
		cl.Worker = true
		return remote.NewShellConn(h.Name, cl.Addr, cl), func() { cl.Close() }, nil
	}
}

// LoadEnv reads host h's env and resolves its secrets (for printenv). Unless
// reveal, the values are only good for Redacted.
func LoadEnv(ctx context.Context, c *config.Config, h config.Host, reveal bool, adapter secrets.SecretAdapter) (*secrets.Env, error) {
	r := &runner{opts: Options{Config: c, Redactor: &secrets.Redactor{}, Secrets: adapter}, envs: map[string]*secrets.Env{}}
	return r.loadEnv(ctx, h)
}
