// Package engine runs a recipe's flow over hosts: it connects, reads each
// host's facts and takes the deploy lock, runs the phases batch by batch,
// undoes what failed, and writes the audit line as it releases the lock. The
// recipe package runs the phases themselves; the engine knows nothing of Lua.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
)

// Events is told what a run does, for the terminal, -v and --json.
type Events interface {
	PhaseStart(host, phase string)
	PhaseEnd(host, phase string, d time.Duration, err error)
	Log(host, phase, msg string)
	Command(host, cmd string)
	DryRun(host, kind, what, content string)
}

// Connector opens a host for a run: a real SSH connection, or a recording
// host in --dry-run.
type Connector func(ctx context.Context, h config.Host) (builtins.Host, func(), error)

// Options are everything a run needs, resolved by the command line.
type Options struct {
	Config        *config.Config
	Sources       recipe.Sources
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
	Redactor      *builtins.Redactor
	Connect       Connector
	Secrets       builtins.SecretAdapter
	// Observer and Stats are told of the steps a host's batches carry.
	Observer builtins.Observer
	Stats    *builtins.Stats
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
	host  builtins.Host
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
func (r *runner) connect(ctx context.Context, h config.Host) (builtins.Host, func(), error) {
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
	envs    map[string]*builtins.Env
	started time.Time
}

// Plan loads the recipe once to check it (exit 2 on any error) and returns
// the phases of flow, for `raijin recipe show` and for validation.
func Plan(opts Options) ([]recipe.PhaseInfo, error) {
	return (&runner{opts: opts}).plan(context.Background())
}

func (r *runner) plan(ctx context.Context) ([]recipe.PhaseInfo, error) {
	st, err := r.load(ctx, recipe.Target{Name: "plan"})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	flow := r.opts.Flow
	if flow == "" {
		flow = "deploy"
	}
	return st.Flow(flow)
}

// load loads the recipe in a new Lua state for t.
func (r *runner) load(ctx context.Context, t recipe.Target) (*recipe.State, error) {
	return recipe.Load(ctx, recipe.Config{
		Project: r.opts.Config, Sources: r.opts.Sources, Command: r.opts.Command,
		DryRun: r.opts.DryRun, Redeploy: r.opts.Redeploy, Full: r.opts.Full, Keep: r.opts.Keep,
		Events: r.opts.Events, Redactor: r.opts.Redactor, LoadEnv: r.loadEnv,
	}, t)
}

// runPhase runs one phase of st, within phase_timeout, and tells Events.
func (r *runner) runPhase(ctx context.Context, st *recipe.State, who, name string) (err error) {
	if r.opts.DryRun {
		r.opts.Events.DryRun(who, "phase", name, "")
	}
	r.opts.Events.PhaseStart(who, name)
	start := time.Now()
	defer func() { r.opts.Events.PhaseEnd(who, name, time.Since(start), err) }()
	pctx, cancel := context.WithTimeout(ctx, r.opts.PhaseTimeout)
	defer cancel()
	return st.RunPhase(pctx, name)
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
		opts.Redactor = &builtins.Redactor{}
	}
	r := &runner{opts: opts, envs: map[string]*builtins.Env{}, started: time.Now()}
	if _, err := r.plan(ctx); err != nil {
		return nil, err
	}
	report := &Report{}

	// The local phases before the first host phase.
	local, err := r.load(ctx, recipe.Target{Name: "local", Shared: map[string]any{}})
	if err != nil {
		return nil, err
	}
	defer local.Close()
	flow, err := local.Flow(opts.Flow)
	if err != nil {
		return nil, err
	}
	var before, hostPhases, after []string
	var onHosts []recipe.PhaseInfo
	for _, p := range flow {
		switch {
		case !p.Local:
			hostPhases = append(hostPhases, p.Name)
			onHosts = append(onHosts, p)
		case len(hostPhases) == 0:
			before = append(before, p.Name)
		default:
			after = append(after, p.Name)
		}
	}
	if !opts.DryRun && len(before) > 0 && len(hostPhases) > 0 {
		r.dialEarly(ctx)
		defer r.closeEarly()
	}
	for _, n := range before {
		if err := r.runPhase(ctx, local, "local", n); err != nil {
			he := r.hostError("local", n, err)
			if len(hostPhases) > 0 {
				he.State = "no host was touched: the version each host runs keeps serving"
			}
			return report, he
		}
	}
	sharedGo := local.Shared()

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
				results[j] = r.runHost(ctx, h, onHosts, sharedGo)
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
		local.SetHosts(opts.Hosts)
		for _, n := range after {
			if err := r.runPhase(ctx, local, "local", n); err != nil {
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
func hostPhases(o Options) ([]recipe.PhaseInfo, error) {
	infos, err := Plan(o)
	if err != nil {
		return nil, err
	}
	var out []recipe.PhaseInfo
	for _, p := range infos {
		if !p.Local {
			out = append(out, p)
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
	var le *recipe.Error
	if errors.As(err, &le) {
		he.Traceback = r.opts.Redactor.Redact(le.Traceback)
		he.Code = errs.CodeFailed
		if le.Cancelled != nil {
			at := ""
			if line := le.Line(); line != "" {
				at = " at " + line
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

// Unwrap gives errs.Code its exit code.
func (e *HostError) Unwrap() error { return &errs.Error{Code: e.Code, Msg: e.Msg, Hint: e.Hint} }

// loadEnv reads and resolves a host's env once per run.
func (r *runner) loadEnv(ctx context.Context, h config.Host) (*builtins.Env, error) {
	r.envMu.Lock()
	defer r.envMu.Unlock()
	if e, ok := r.envs[h.Name]; ok {
		return e, nil
	}
	var env *builtins.Env
	var err error
	switch {
	case h.Envfile != "":
		data, rerr := os.ReadFile(r.opts.Config.Path(h.Envfile))
		if rerr != nil {
			return nil, rerr
		}
		env, err = builtins.ParseEnv(h.Envfile, string(data))
	default:
		env, err = builtins.ParseEnv(r.opts.Config.File+" [hosts "+h.Name+"] env", h.Env)
	}
	if err != nil {
		return nil, errs.Usagef("", "%v", err)
	}
	adapter := r.opts.Secrets
	if adapter == nil {
		adapter, err = builtins.NewSecretAdapter(r.opts.Config.Secrets.Adapter, r.opts.Config.Secrets.PasswordEnv)
		if err != nil {
			return nil, err
		}
	}
	if err := builtins.ResolveSecrets(ctx, env, adapter); err != nil {
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
func (r *runner) runHost(ctx context.Context, h config.Host, phases []recipe.PhaseInfo, shared any) (res HostResult) {
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
	host, closeFn, err := r.connect(ctx, h)
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
	// (Only over SSH: a batch is a shell script, which stand-in hosts of
	// tests and --dry-run do not run; they get the steps one by one.)
	var batcher *builtins.Batcher
	if _, ok := host.(*builtins.RemoteHost); ok && !r.opts.DryRun {
		batcher = builtins.NewBatcher(host, r.opts.Observer, r.opts.Redactor, r.opts.Stats)
		batcher.Cache = builtins.SharedUploadCache()
		host = batcher
	}
	lockVersion := ""
	switch r.opts.Flow {
	case "deploy":
		lockVersion = r.opts.Config.Version
	case "rollback":
		lockVersion = r.opts.TargetVersion
	}
	lock := builtins.NewLockInfo(r.opts.Command, lockVersion)
	facts, err := r.prepare(ctx, host, h, lock, len(phases))
	r.opts.Events.PhaseEnd(h.Name, "connect", time.Since(cstart), err)
	if err != nil {
		return fail("connect", err)
	}
	var st *recipe.State

	version := r.opts.Config.Version
	previous := ""
	if len(facts.versions) > 0 {
		previous = facts.versions[0]
	}
	// The audit line and the lock's release go in one command, whatever the
	// outcome (an interrupted run included): with the last deferred steps
	// when the run succeeds, else on their own.
	audit := builtins.AuditEntry{Time: lock.Since, App: r.opts.Config.App, Command: r.opts.Command,
		User: lock.User, Machine: lock.Machine, From: previous}
	finishScript := func() string {
		audit.Duration = time.Since(start).Round(time.Millisecond).Seconds()
		audit.Result = "ok"
		if res.Err != nil {
			audit.Result, audit.Phase = "failed", res.Phase
			audit.Error = shortError(res.Err)
		}
		if st != nil {
			audit.Details = st.Audit()
		}
		if r.opts.NoLock {
			return "true" // no lock to release, and nothing of the app changed to audit
		}
		return builtins.FinishScript(facts.appDir, lock, audit)
	}
	finished := false
	// A flow without the lock (bootstrap, export-config) changes nothing of
	// the app: no audit line either.
	if !r.opts.DryRun && !r.opts.NoLock {
		defer func() {
			if finished {
				return
			}
			if batcher != nil {
				batcher.Discard()
			}
			// The connection may have dropped: then write the audit line and
			// release the lock over a fresh one, so the next deploy does not
			// find a stale lock.
			if h2 := r.revive(h, host, &closers); h2 != nil {
				host = h2
			}
			uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := builtins.Must(uctx, host, finishScript(), builtins.RunOpts{}); err != nil {
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
	st, err = r.load(ctx, recipe.Target{Name: h.Name, Host: host, Config: h, User: facts.user,
		Paths: Paths(r.opts.Config, h, facts.home, version), Versions: facts.versions, Dirs: append(facts.dirs, version),
		Version: version, Previous: previous, Shared: shared})
	if err != nil {
		return fail("load", err)
	}
	defer st.Close()
	res.Version, res.Previous = version, previous

	var startedPhases []recipe.PhaseInfo
	failed := func(n string, err error) HostResult {
		var qe *builtins.QueuedError
		if errors.As(err, &qe) {
			n = qe.Label
		}
		he := r.hostError(h.Name, n, err)
		if h2 := r.revive(h, host, &closers); h2 != nil {
			host = h2
			st.SetHost(h2)
		} else if batcher != nil && !errors.As(err, &qe) && batcher.Pending() > 0 {
			// Steps deferred by the phases that completed are done, as if
			// they had been sent at once; then the undo handlers run.
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if ferr := batcher.Flush(fctx); ferr != nil {
				r.opts.Events.Log(h.Name, n, r.opts.Redactor.Redact("the steps deferred before the failure failed too: "+ferr.Error()))
			}
			cancel()
		}
		if batcher != nil {
			batcher.Discard()
		}
		restored, state := r.undo(st, h.Name, startedPhases, err)
		res.Restored = restored
		he.State = state
		// Exit 4 means a previous version is serving again; after a first
		// deploy there was none to restore (exit 1).
		if st.HealthFailed() && restored && st.Previous() != "" {
			he.Code = errs.CodeHealth
		}
		return fail(n, he)
	}
	for _, p := range phases {
		startedPhases = append(startedPhases, p)
		if batcher != nil {
			batcher.Label(p.Name)
		}
		if err := r.runPhase(ctx, st, h.Name, p.Name); err != nil {
			return failed(p.Name, err)
		}
	}
	if batcher != nil && host == batcher {
		batcher.Label("")
		// The steps still deferred, then (if they all succeed) the audit
		// line and the lock's release: one round trip.
		ok, err := batcher.Finish(ctx, finishScript())
		finished = ok
		if err != nil {
			return failed(phases[len(phases)-1].Name, err)
		}
	}
	return res
}

// revive checks that host's connection still answers; when it dropped, it
// connects again (as the undo handlers and the unlock must still reach the
// server) and returns the new host, else nil.
func (r *runner) revive(h config.Host, host builtins.Host, closers *[]func()) builtins.Host {
	if r.opts.DryRun {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, ok := host.(interface{ Alive(context.Context) error })
	if !ok || a.Alive(pctx) == nil {
		return nil
	}
	r.opts.Events.Log(h.Name, "cleanup", "the connection dropped: connecting again to clean up")
	nh, closeFn, err := r.opts.Connect(pctx, h)
	if err != nil {
		r.opts.Events.Log(h.Name, "cleanup", "cannot connect again: "+r.opts.Redactor.Redact(err.Error()))
		return nil
	}
	*closers = append(*closers, closeFn)
	return nh
}

// undo runs the undo handlers of the phases that started, newest first, on a
// fresh context (the run's may be cancelled). It says what the host is left
// with.
func (r *runner) undo(st *recipe.State, who string, started []recipe.PhaseInfo, cause error) (bool, string) {
	uctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ran := false
	for i := len(started) - 1; i >= 0; i-- {
		p := started[i]
		if p.Undo == "" {
			continue
		}
		ran = true
		name := "undo " + p.Name
		if r.opts.DryRun {
			r.opts.Events.DryRun(who, "phase", name, "")
		}
		r.opts.Events.PhaseStart(who, name)
		t := time.Now()
		err := st.Undo(uctx, p.Name, r.opts.Redactor.Redact(cause.Error()))
		r.opts.Events.PhaseEnd(who, name, time.Since(t), err)
		if err != nil {
			return false, fmt.Sprintf("undoing %s failed too: %s; check the host with `raijin app status -H %s`", p.Name, r.opts.Redactor.Redact(err.Error()), who)
		}
	}
	if state := st.Outcome(); state != "" {
		return false, state
	}
	prev := st.Previous()
	// The recipes set ctx.switched when they start switching the current
	// version: a failure before that has changed nothing that serves.
	if ran && !st.Switched() {
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

// prepare learns the deploy user's home, takes the deploy lock and reads
// .versions, in one remote command.
func (r *runner) prepare(ctx context.Context, host builtins.Host, h config.Host, lock builtins.LockInfo, nphases int) (hostFacts, error) {
	c := r.opts.Config
	if r.opts.DryRun {
		user := h.User
		if user == "" {
			user = "deploy"
		}
		home := "/home/" + user
		if user == "root" {
			home = "/root"
		}
		return hostFacts{home: home, user: user, appDir: AppDir(c, h, home)}, nil
	}
	rel := path.Join(h.AppsDir, c.App)
	force := r.opts.ForceUnlock
	deadline := time.Now().Add(r.opts.LockWait)
	waited := false
	for {
		take := builtins.LockScript(rel, lock, force)
		if r.opts.NoLock {
			take = "echo locked"
		}
		// Shell built-ins only, where they do: every process started on a
		// small server is felt when many hosts deploy at once.
		script := "cd && printf '%s\\n' \"$PWD\" \"${USER:-$(id -un)}\" && " + take +
			"; echo '@@versions'; " + builtins.CatScript(rel+"/.versions") + "; echo '@@dirs'; " +
			"for d in " + builtins.Quote(rel) + "/v*/; do [ -d \"$d\" ] && d=${d%/} && printf '%s\\n' \"${d##*/}\"; done; true"
		res, err := builtins.Must(ctx, host, script, builtins.RunOpts{})
		if err != nil {
			return hostFacts{}, err
		}
		head, vers, _ := strings.Cut(res.Stdout, "@@versions")
		lines := strings.SplitN(strings.TrimSpace(head), "\n", 3)
		if len(lines) < 3 {
			return hostFacts{}, fmt.Errorf("unexpected answer from the server: %q", res.Stdout)
		}
		vers, dirs, _ := strings.Cut(vers, "@@dirs")
		f := hostFacts{home: lines[0], user: lines[1], versions: builtins.ParseVersions(vers)}
		for _, d := range builtins.ParseVersions(dirs) {
			if v, ok := strings.CutPrefix(d, "v"); ok && v != "" {
				f.dirs = append(f.dirs, v)
			}
		}
		f.appDir = AppDir(c, h, f.home)
		locked, holder := builtins.ParseLockOutput(lines[2])
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

// SSHConnector connects with builtins.Dial and wraps the client as a Host.
func SSHConnector(stats *builtins.Stats, obs builtins.Observer, red *builtins.Redactor, acceptNew bool) Connector {
	return func(ctx context.Context, h config.Host) (builtins.Host, func(), error) {
		cl, err := builtins.Dial(ctx, builtins.Target{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User,
			KeyFile: h.KeyFilename, AcceptNew: acceptNew}, stats)
		if err != nil {
			// runHost names the host and the phase (connect).
			return nil, nil, err
		}
		cl.Worker = true
		return &builtins.RemoteHost{HostName: h.Name, Client: cl, Observer: obs, Redactor: red}, func() { cl.Close() }, nil
	}
}

// LoadEnv reads host h's env and resolves its secrets (for printenv). Unless
// reveal, the values are only good for Redacted.
func LoadEnv(ctx context.Context, c *config.Config, h config.Host, reveal bool, adapter builtins.SecretAdapter) (*builtins.Env, error) {
	r := &runner{opts: Options{Config: c, Redactor: &builtins.Redactor{}, Secrets: adapter}, envs: map[string]*builtins.Env{}}
	return r.loadEnv(ctx, h)
}
