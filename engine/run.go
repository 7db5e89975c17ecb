// Package engine runs a recipe's flow over hosts: it connects, reads each
// host's facts and takes the deploy lock, runs the phases batch by batch,
// undoes what failed, and writes the audit line as it releases the lock. The
// recipe package runs the phases themselves; the engine knows nothing of Lua.
package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
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
	Sources       recipe.Sources
	Command       string // deploy, redeploy, rollback, ...
	Flow          string // the recipe flow to run: deploy, rollback
	Hosts         []config.Host
	DryRun        bool
	Redeploy      bool
	TargetVersion string // rollback: the version to switch to ("" = previous)
	Keep          int    // prune: versions to keep (0 = versions_to_keep)
	Full          bool   // down: remove Caddy too when no other app uses it
	DeleteState   bool   // down: delete the app's state directory and user too
	Process       string // app start|stop|restart|scale: the one process ("" = all)
	Replicas      int    // app scale: the count
	Message       string // app maintenance: the text of the maintenance page
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
	// Balancer: a load balancer, which ran a flow of BalancerFlows.
	Balancer bool
	// Pruned: the version directories the run's prune deleted.
	Pruned []string
}

// Report is the outcome of a run.
type Report struct {
	Hosts    []HostResult
	Duration time.Duration
}

type runner struct {
	opts    Options
	envs    *envCache
	started time.Time
	earlyMu sync.Mutex
	early   map[string]*dialing
	// onceRan: the once phases that ran in an earlier batch, and where.
	onceRan map[string]string
	// rolling: the hosts that leave the load balancer while they deploy
	// (ctx.rolling, see markRolling).
	rolling map[string]bool
}

func newRunner(opts Options) *runner {
	return &runner{opts: opts, envs: &envCache{}, started: time.Now(), onceRan: map[string]string{}, rolling: map[string]bool{}}
}

// withDefaults fills in what the command line may leave out.
func withDefaults(opts Options) Options {
	if opts.Flow == "" {
		opts.Flow = "deploy"
	}
	if opts.PhaseTimeout == 0 {
		opts.PhaseTimeout = 10 * time.Minute
	}
	if opts.Redactor == nil {
		opts.Redactor = &secrets.Redactor{}
	}
	return opts
}

// Plan loads the recipe once to check it (exit 2 on any error) and returns
// the phases of flow, for `raijin recipe show` and for validation.
func Plan(opts Options) ([]recipe.PhaseInfo, error) {
	return newRunner(opts).plan(context.Background())
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
		DryRun: r.opts.DryRun, Redeploy: r.opts.Redeploy, Rolling: r.rolling[t.Name], Full: r.opts.Full, DeleteState: r.opts.DeleteState, Keep: r.opts.Keep, Process: r.opts.Process, Replicas: r.opts.Replicas, Message: r.opts.Message,
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
	timeout := r.opts.PhaseTimeout
	if name == recipe.ConnectPhase {
		timeout += r.opts.LockWait // --lock-wait may be longer than phase_timeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return st.RunPhase(pctx, name)
}

// Run carries out a flow: its local phases once, then its host phases on
// each host (in parallel, in batches), then the local phases after them.
func Run(ctx context.Context, opts Options) (*Report, error) {
	r := newRunner(withDefaults(opts))
	if _, err := r.plan(ctx); err != nil {
		return nil, err
	}
	all := r.opts.Hosts
	balancers := r.splitBalancers()
	local, err := r.load(ctx, recipe.Target{Name: "local", Shared: map[string]any{}})
	if err != nil {
		return nil, err
	}
	defer local.Close()
	flow, err := local.Flow(r.opts.Flow)
	if err != nil {
		return nil, err
	}
	before, onHosts, after := splitFlow(flow)
	report := &Report{}
	if !r.opts.DryRun && len(before) > 0 && len(onHosts) > 0 {
		r.dialEarly(ctx)
		defer r.closeEarly()
	}
	if he := r.runLocal(ctx, local, before); he != nil {
		if len(onHosts) > 0 {
			he.State = "no host was touched: the version each host runs keeps serving"
		}
		return report, he
	}
	if !r.opts.DryRun && len(onHosts) > 0 && r.opts.Config != nil && hasPhase(before, "build") {
		// The distfile is hashed, and its patch against the last one sent
		// started, while the hosts' first phases run.
		upload.Prepare(ctx, upload.SharedCache(), r.opts.Config.DistfilePath())
	}
	failed := r.runBatches(ctx, report, onHosts, local.Shared())
	if failed && r.opts.AllOrNothing {
		r.rollBackSucceeded(ctx, report)
	}
	switch {
	case len(onHosts) == 0:
	case failed:
		// The balancers keep their site: it sends to the web hosts that
		// pass its health check.
		for _, h := range balancers {
			report.Hosts = append(report.Hosts, HostResult{Host: h.Name, Skipped: true, Balancer: true})
		}
	case len(balancers) > 0:
		failed = r.runBalancers(ctx, report, balancers, local.Shared())
	}
	report.Duration = time.Since(r.started)
	if failed {
		return report, summarize(report)
	}
	if len(after) > 0 {
		local.SetHosts(all)
		if he := r.runLocal(ctx, local, after); he != nil {
			return report, he
		}
	}
	report.Duration = time.Since(r.started)
	return report, nil
}

func hasPhase(phases []recipe.PhaseInfo, name string) bool {
	for _, p := range phases {
		if p.Name == name {
			return true
		}
	}
	return false
}

// splitFlow parts a flow into the local phases before the first host phase
// (the build), the host phases, and the local phases after them.
func splitFlow(flow []recipe.PhaseInfo) (before, onHosts, after []recipe.PhaseInfo) {
	for _, p := range flow {
		switch {
		case !p.Local:
			onHosts = append(onHosts, p)
		case len(onHosts) == 0:
			before = append(before, p)
		default:
			after = append(after, p)
		}
	}
	return before, onHosts, after
}

// runLocal runs local phases on the deploying machine, in order.
func (r *runner) runLocal(ctx context.Context, local *recipe.State, phases []recipe.PhaseInfo) *HostError {
	for _, p := range phases {
		if err := r.runPhase(ctx, local, "local", p.Name); err != nil {
			return r.hostError("local", p.Name, err)
		}
	}
	return nil
}

// runBatches runs the host phases on every host, a batch of hosts at a
// time; after a batch in which a host failed, the other hosts are skipped.
// It says whether a host failed.
func (r *runner) runBatches(ctx context.Context, report *Report, phases []recipe.PhaseInfo, shared any) (failed bool) {
	hosts := orderForOnce(r.opts.Hosts, phases)
	r.markRolling(hosts)
	size := r.batchSize()
	for i := 0; i < len(hosts); i += size {
		batch := hosts[i:min(i+size, len(hosts))]
		if failed {
			for _, h := range batch {
				report.Hosts = append(report.Hosts, HostResult{Host: h.Name, Skipped: true})
			}
			continue
		}
		gates := r.newGates(batch, phases)
		results := r.runBatch(ctx, batch, phases, shared, gates)
		for name, g := range gates {
			if g.ran && g.err == nil {
				r.onceRan[name] = g.runner
			}
		}
		for _, res := range results {
			if res.Err != nil {
				failed = true
			}
		}
		report.Hosts = append(report.Hosts, results...)
	}
	return failed
}

// batchSize is how many hosts run at once: batch_size, else all.
func (r *runner) batchSize() int {
	if r.opts.DryRun {
		// One host after the other, so that what each would do reads as one
		// block per host.
		return 1
	}
	n := r.opts.BatchSize
	if n <= 0 || n > len(r.opts.Hosts) {
		n = len(r.opts.Hosts)
	}
	return n
}

// runBatch runs the host phases on hosts in parallel.
func (r *runner) runBatch(ctx context.Context, hosts []config.Host, phases []recipe.PhaseInfo, shared any, gates onceGates) []HostResult {
	results := make([]HostResult, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func(i int, h config.Host) {
			defer wg.Done()
			results[i] = r.runHost(ctx, h, phases, shared, gates)
		}(i, h)
	}
	wg.Wait()
	return results
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
			res.RollbackErr = errors.New("no previous version to switch back to")
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
				out := rr.runHost(ctx, byName[res.Host], phases, nil, nil)
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
	return hostPhasesOf(infos), nil
}

// hostPhasesOf keeps the host phases of a flow.
func hostPhasesOf(infos []recipe.PhaseInfo) []recipe.PhaseInfo {
	var out []recipe.PhaseInfo
	for _, p := range infos {
		if !p.Local {
			out = append(out, p)
		}
	}
	return out
}
