package engine

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/upload"
)

// hostRun is one host's run of the flow's host phases: what its steps share.
type hostRun struct {
	*runner
	h      config.Host
	phases []recipe.PhaseInfo
	start  time.Time
	res    HostResult

	// host is what the phases run on: the session of the connection, or of
	// a new connection after it dropped.
	host    *remote.Session
	closers []func() // the connections, closed when the run ends

	lock server.LockInfo
	// locked: the connect phase's step read the facts and took the lock (an
	// override may not run it); lockTried: it sent the script that takes it.
	locked, lockTried bool
	finishRan         bool // the finish phase's step ran (an override may not)
	stepErr           error
	facts             hostFacts
	audit             server.AuditEntry
	finished          bool // the audit line is written and the lock released

	st      *recipe.State
	started []recipe.PhaseInfo // the phases that started, for their undo
	gates   onceGates          // the batch's once phases (see gate)
}

// runHost runs the host phases on one host, with the deploy lock held.
func (r *runner) runHost(ctx context.Context, h config.Host, phases []recipe.PhaseInfo, shared any, gates onceGates) HostResult {
	hr := &hostRun{runner: r, h: h, phases: phases, start: time.Now(), res: HostResult{Host: h.Name}, gates: gates}
	defer hr.leaveGates()
	hr.run(ctx, shared)
	hr.res.Duration = time.Since(hr.start)
	return hr.res
}

// leaveGates tells the batch's gates that this host goes no further (see
// gate): when its run ends, whatever the outcome.
func (hr *hostRun) leaveGates() {
	failedIn := ""
	if hr.res.Err != nil {
		failedIn = hr.res.Phase
	}
	hr.leaveGatesFailed(failedIn)
}

// leaveGatesFailed is leaveGates as soon as the host fails in phase (""
// when it did not fail): a host that failed before a once phase keeps it
// from running, and the hosts waiting at the gate need not wait for its
// undo.
func (hr *hostRun) leaveGatesFailed(phase string) {
	for _, g := range hr.gates {
		g.leave(hr.h.Name, phase)
	}
}

// run connects, loads the recipe and runs the phases, the built-in connect
// (the facts, the deploy lock) first and finish (the audit line, the lock's
// release) last; when a phase fails, the phases that started are undone.
// Whatever the outcome, once the lock is taken the audit line is written as
// the lock is released.
func (hr *hostRun) run(ctx context.Context, shared any) {
	defer hr.closeConnections()
	if err := hr.dialHost(ctx); err != nil {
		hr.fail(recipe.ConnectPhase, err)
		return
	}
	if err := hr.loadRecipe(ctx, shared); err != nil {
		hr.fail("load", err)
		return
	}
	defer hr.st.Close()
	// A flow without the lock (bootstrap, export-config) changes nothing of
	// the app: no audit line either.
	if !hr.opts.DryRun && !hr.opts.NoLock {
		defer hr.finishUnlessDone()
	}
	for _, p := range hr.phases {
		if !hr.runOne(ctx, p) {
			return
		}
	}
}

// runOne runs phase p and handles its failure; it says whether the run goes
// on.
func (hr *hostRun) runOne(ctx context.Context, p recipe.PhaseInfo) bool {
	g := hr.gates[p.Name]
	if p.Once {
		if ran := hr.onceRan[p.Name]; ran != "" {
			hr.opts.Events.Log(hr.h.Name, p.Name, "ran once for every host, on "+ran+" (an earlier batch)")
			return true
		}
		if g != nil {
			run, err := g.arrive(hr.h.Name)
			if err != nil {
				hr.undoAfter(p.Name, err)
				return false
			}
			if !run {
				hr.opts.Events.Log(hr.h.Name, p.Name, "ran once for every host, on "+g.runner)
				return true
			}
		}
	}
	hr.host.Label(p.Name)
	err := hr.runPhase(ctx, hr.st, hr.h.Name, p.Name)
	if g != nil {
		g.done(err)
	}
	switch p.Name {
	case recipe.ConnectPhase:
		if err == nil && !hr.locked {
			err = errs.Usagef("call default(ctx) in the override of connect", "an override of the connect phase did not run raijin's own step, which reads the host's facts and takes the deploy lock")
		}
		if err != nil {
			hr.fail(p.Name, hr.stepError(err))
		}
		return err == nil
	case recipe.FinishPhase:
		if err == nil && !hr.finishRan {
			err = errs.Usagef("call default(ctx) in the override of finish", "an override of the finish phase did not run raijin's own step, which sends the deferred steps, writes the audit line and releases the deploy lock")
		}
		switch {
		case err == nil:
		case hr.finished:
			// The lock is released and the audit line says the run went
			// well: a hook after it failed, nothing to undo.
			hr.fail(p.Name, hr.stepError(err))
		default:
			// A step deferred by an earlier phase is named by its QueuedError.
			hr.undoAfter(p.Name, hr.stepError(err))
		}
		return err == nil
	}
	hr.started = append(hr.started, p)
	if err != nil {
		hr.undoAfter(p.Name, err)
		return false
	}
	return true
}

// dialHost opens the connection (the early one, if the build phases made
// it) and the session the phases act on.
func (hr *hostRun) dialHost(ctx context.Context) error {
	conn, closeFn, err := hr.dial(ctx, hr.h)
	if err != nil {
		hr.opts.Events.PhaseStart(hr.h.Name, recipe.ConnectPhase)
		hr.opts.Events.PhaseEnd(hr.h.Name, recipe.ConnectPhase, 0, err)
		return err // exit 1, or 2 for an ssh_config the connection cannot honour
	}
	hr.closers = append(hr.closers, closeFn)
	hr.host = hr.newSession(conn)
	return nil
}

// connectStep is the built-in connect phase's step: it reads the host's
// facts and takes the deploy lock (see prepare), and chooses the version
// the flow takes the host to.
func (hr *hostRun) connectStep(ctx context.Context) (recipe.Facts, error) {
	hr.lock = server.NewLockInfo(hr.opts.Command, hr.lockVersion())
	hr.lockTried = true
	facts, err := hr.prepare(ctx, hr.host, hr.h, hr.lock, hr.recipePhases())
	if err != nil {
		return recipe.Facts{}, hr.stepFailed(err)
	}
	hr.facts, hr.locked = facts, true
	hr.audit = server.AuditEntry{Time: hr.lock.Since, App: hr.opts.Config.App, Command: hr.opts.Command,
		User: hr.lock.User, Machine: hr.lock.Machine, From: facts.current()}
	version, err := hr.chooseVersion()
	if err != nil {
		return recipe.Facts{}, hr.stepFailed(err)
	}
	hr.res.Version, hr.res.Previous = version, facts.current()
	return recipe.Facts{User: facts.user, Paths: Paths(hr.opts.Config, hr.h, facts.home, version),
		Versions: facts.versions, Dirs: hr.versionDirs(version), Version: version, Previous: facts.current(),
		Live: facts.live, LiveUnit: facts.liveUnit, OldWeb: facts.oldWeb}, nil
}

// finishStep is the built-in finish phase's step: the steps still
// deferred, then (if they all succeed) the audit line and the lock's
// release, in one round trip.
func (hr *hostRun) finishStep(ctx context.Context) error {
	hr.finishRan = true
	ok, err := hr.host.Finish(ctx, hr.finishScript())
	hr.finished = ok
	if err != nil {
		return hr.stepFailed(err)
	}
	if hr.st != nil {
		if pruned, ok := hr.st.Audit()["pruned"].([]any); ok {
			for _, v := range pruned {
				if s, ok := v.(string); ok {
					hr.res.Pruned = append(hr.res.Pruned, s)
				}
			}
		}
	}
	return nil
}

// recipePhases is how many of the flow's host phases are the recipe's (not
// connect and finish), for the oldest a live lock can be.
func (hr *hostRun) recipePhases() int {
	n := 0
	for _, p := range hr.phases {
		if p.Name != recipe.ConnectPhase && p.Name != recipe.FinishPhase {
			n++
		}
	}
	return n
}

// stepFailed keeps err, the failure of a built-in step, so that the phase's
// error is it (with its exit code: 3 for a held lock), not its text as Lua
// raised it.
func (hr *hostRun) stepFailed(err error) error {
	hr.stepErr = err
	return err
}

// stepError is the built-in step's own error when it made the phase fail,
// else err (a hook's).
func (hr *hostRun) stepError(err error) error {
	if hr.stepErr != nil {
		err, hr.stepErr = hr.stepErr, nil
	}
	return err
}

// newSession is what the phases run on over conn, in production, --dry-run
// and the tests alike: the steps the recipe defers ride along with the next
// remote command, and the last ones go with the audit line and the lock's
// release.
func (r *runner) newSession(conn remote.Conn) *remote.Session {
	s := remote.NewSession(conn, r.opts.Observer, r.opts.Redactor, r.opts.Stats)
	s.Plan = r.opts.DryRun
	if !r.opts.DryRun {
		s.Cache = upload.SharedCache()
	}
	return s
}

// lockVersion is the version the lock says the run installs.
func (r *runner) lockVersion() string {
	switch r.opts.Flow {
	case "deploy":
		return r.opts.Config.Version
	case "rollback":
		return r.opts.TargetVersion
	}
	return ""
}

// chooseVersion is the version the flow takes the host to, as the audit
// line records it: the configured one for deploy, the target of a rollback,
// and the current one for the other flows (prune, down, a project's own).
func (hr *hostRun) chooseVersion() (string, error) {
	switch hr.opts.Flow {
	case "deploy":
		hr.audit.To = hr.opts.Config.Version
		return hr.opts.Config.Version, nil
	case "rollback":
		hr.audit.To = hr.opts.TargetVersion
		target, err := rollbackTarget(hr.facts.versions, hr.opts.TargetVersion)
		if err != nil {
			return "", err
		}
		hr.audit.To = target
		return target, nil
	case "env_push":
		cur := hr.facts.current()
		if cur == "" {
			return "", errs.Failedf("deploy first: `raijin deploy`", "no version recorded on this host: there is no code to give a new env")
		}
		target, err := server.EnvVersion(cur, append(hr.facts.versions, hr.facts.dirs...))
		if err != nil {
			return "", err
		}
		hr.audit.To = target
		return target, nil
	}
	if cur := hr.facts.current(); cur != "" {
		return cur, nil
	}
	return hr.opts.Config.Version, nil
}

// loadRecipe loads the recipe for this host; its connect phase gives it
// the facts.
func (hr *hostRun) loadRecipe(ctx context.Context, shared any) error {
	st, err := hr.load(ctx, recipe.Target{Name: hr.h.Name, Host: hr.host, Config: hr.h,
		Paths: map[string]string{}, Shared: shared, Connect: hr.connectStep, Finish: hr.finishStep})
	if err != nil {
		return err
	}
	hr.st = st
	return nil
}

// versionDirs are the version directories the run leaves: the deploy's
// transfer makes its version's, env push's new_env its own.
func (hr *hostRun) versionDirs(version string) []string {
	if hr.opts.Flow != "deploy" && hr.opts.Flow != "env_push" {
		return hr.facts.dirs
	}
	return append(hr.facts.dirs, version)
}

// fail records that the host's run failed in phase (or at connect, or while
// loading the recipe).
func (hr *hostRun) fail(phase string, err error) {
	hr.leaveGatesFailed(phase)
	hr.res.Phase = phase
	if _, ok := err.(*HostError); !ok {
		err = hr.hostError(hr.h.Name, phase, err)
	}
	hr.res.Err = err
}

// undoAfter handles the failure of a phase (or of steps it deferred): the
// steps deferred by the phases that completed are done, as if they had been
// sent at once; then the undo handlers of the phases that started run, and
// the failure is recorded with what the host is left with.
func (hr *hostRun) undoAfter(phase string, err error) {
	hr.leaveGatesFailed(phase)
	var qe *remote.QueuedError
	queued := errors.As(err, &qe)
	if q := hr.st.TakeQueued(); !queued && q != nil {
		// Raised in Lua: the error is text, the state knows its step.
		qe, queued = q, true
	}
	if queued {
		phase = qe.Label
	}
	he := hr.hostError(hr.h.Name, phase, err)
	if !hr.reconnectIfDropped() && !queued {
		hr.sendDeferred(phase)
	}
	hr.host.Discard()
	restored, state := hr.undo(err)
	hr.res.Restored = restored
	he.State = state
	// Exit 4 means a previous version is serving again; after a first
	// deploy there was none to restore (exit 1).
	if hr.st.HealthFailed() && restored && hr.st.Previous() != "" {
		he.Code = errs.CodeHealth
	}
	hr.fail(phase, he)
}

// sendDeferred sends the steps deferred before the failure of phase.
func (hr *hostRun) sendDeferred(phase string) {
	if hr.host.Pending() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hr.host.Flush(ctx); err != nil {
		hr.opts.Events.Log(hr.h.Name, phase, hr.opts.Redactor.Redact("the steps deferred before the failure failed too: "+err.Error()))
	}
}

// undo runs the undo handlers of the phases that started, newest first, on a
// fresh context (the run's may be cancelled). It says whether a previous
// state was restored, and what the host is left with.
func (hr *hostRun) undo(cause error) (restored bool, state string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ran := false
	for i := len(hr.started) - 1; i >= 0; i-- {
		p := hr.started[i]
		if p.Undo == "" {
			continue
		}
		ran = true
		if err := hr.runUndo(ctx, p.Name, cause); err != nil {
			return false, fmt.Sprintf("undoing %s failed too: %s; check the host with `raijin app status -H %s`", p.Name, hr.opts.Redactor.Redact(err.Error()), hr.h.Name)
		}
	}
	if state := hr.st.Outcome(); state != "" {
		return false, state
	}
	prev := hr.st.Previous()
	// The recipes set ctx.switched when they start switching the current
	// version: a failure before that has changed nothing that serves.
	if ran && !hr.st.Switched() {
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

// runUndo runs the undo handler of phase as the step "undo <phase>".
func (hr *hostRun) runUndo(ctx context.Context, phase string, cause error) error {
	name := "undo " + phase
	if hr.opts.DryRun {
		hr.opts.Events.DryRun(hr.h.Name, "phase", name, "")
	}
	hr.opts.Events.PhaseStart(hr.h.Name, name)
	start := time.Now()
	err := hr.st.Undo(ctx, phase, hr.opts.Redactor.Redact(cause.Error()))
	hr.opts.Events.PhaseEnd(hr.h.Name, name, time.Since(start), err)
	return err
}

// reconnectIfDropped checks that the connection still answers; when it
// dropped, it connects again, as the undo handlers and the unlock must still
// reach the server. It says whether it did.
func (hr *hostRun) reconnectIfDropped() bool {
	if hr.opts.DryRun {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if hr.host.Alive(ctx) == nil {
		return false
	}
	hr.opts.Events.Log(hr.h.Name, "cleanup", "the connection dropped: connecting again to clean up")
	conn, closeFn, err := hr.opts.Connect(ctx, hr.h)
	if err != nil {
		hr.opts.Events.Log(hr.h.Name, "cleanup", "cannot connect again: "+hr.opts.Redactor.Redact(err.Error()))
		return false
	}
	hr.closers = append(hr.closers, closeFn)
	hr.host = hr.newSession(conn)
	if hr.st != nil {
		hr.st.SetHost(hr.host)
	}
	return true
}

// finishUnlessDone writes the audit line and releases the lock, when the
// last deferred steps did not carry them: after a failure or an
// interruption, over a new connection if the old one dropped, so that the
// next deploy does not find a stale lock.
func (hr *hostRun) finishUnlessDone() {
	if hr.finished {
		return
	}
	if !hr.locked {
		hr.releaseIfTaken()
		return
	}
	hr.host.Discard()
	hr.reconnectIfDropped()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := remote.Must(ctx, hr.host, hr.finishScript(), remote.RunOpts{}); err != nil {
		hr.opts.Events.Log(hr.h.Name, "finish", "could not write the audit line or release the deploy lock: "+
			hr.opts.Redactor.Redact(err.Error())+"; check with `raijin lock status`")
	}
}

// releaseIfTaken releases the lock when the connect round trip may have
// taken it though its answer never came (the connection dropped, Ctrl-C):
// the lock's token says whether it is this run's, so another run's lock
// stays.
func (hr *hostRun) releaseIfTaken() {
	if !hr.lockTried || errs.Code(hr.res.Err) == errs.CodeLocked {
		return
	}
	hr.host.Discard()
	hr.reconnectIfDropped()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rel := path.Join(hr.h.AppsDir, hr.opts.Config.App)
	if _, err := remote.Must(ctx, hr.host, "cd && "+server.UnlockScript(rel, hr.lock), remote.RunOpts{}); err != nil {
		hr.opts.Events.Log(hr.h.Name, "finish", "could not make sure the deploy lock is released: "+
			hr.opts.Redactor.Redact(err.Error())+"; check with `raijin lock status`")
	}
}

// finishScript writes the audit line, with the run's outcome so far, and
// releases the lock.
func (hr *hostRun) finishScript() string {
	if hr.opts.NoLock {
		return "true" // no lock to release, and nothing of the app changed to audit
	}
	a := hr.audit
	a.Duration = time.Since(hr.start).Round(time.Millisecond).Seconds()
	a.Result = "ok"
	if hr.res.Err != nil {
		a.Result, a.Phase = "failed", hr.res.Phase
		a.Error = shortError(hr.res.Err)
	}
	if hr.st != nil {
		a.Details = hr.st.Audit()
	}
	// The audit line is written on the server: no secret in it, whatever a
	// phase put in ctx.audit.
	return hr.opts.Redactor.Redact(server.FinishScript(hr.facts.appDir, hr.lock, a))
}

func (hr *hostRun) closeConnections() {
	for _, c := range hr.closers {
		c()
	}
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
