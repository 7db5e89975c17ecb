package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/recipe"
)

// A phase declared with once = true (the built-in release, unless
// release_on_all_hosts) runs on one host of a run: the runner, the first
// host with the role release, else the first host. It is a barrier: it
// starts when every host of the first batch has reached it, and the others
// go on only once it has succeeded. When a host fails before it, it does
// not run and every host of the batch stops there (and undoes what it
// did); when it fails, so do they. Later batches skip it.
type gate struct {
	phase  string
	runner string // the host that runs the phase

	mu      sync.Mutex
	changed *sync.Cond
	waiting map[string]bool // hosts of the batch not yet at the gate
	blocked string          // why the phase will not run ("" if it may)
	arrived bool            // the runner reached the gate
	ran     bool            // the runner finished the phase
	err     error           // how it failed
}

// onceGates are the gates of a batch, by phase.
type onceGates map[string]*gate

// newGates makes the gates for the once phases of phases that have not run
// in an earlier batch (done), for the hosts of batch.
func (r *runner) newGates(batch []config.Host, phases []recipe.PhaseInfo) onceGates {
	gs := onceGates{}
	for _, p := range phases {
		if !p.Once || r.onceRan[p.Name] != "" {
			continue
		}
		g := &gate{phase: p.Name, runner: config.ReleaseHost(batch), waiting: map[string]bool{}}
		g.changed = sync.NewCond(&g.mu)
		for _, h := range batch {
			g.waiting[h.Name] = true
		}
		gs[p.Name] = g
	}
	return gs
}

// orderForOnce puts the host that runs the once phases (the first with the
// role release) first, so that it is in the first batch.
func orderForOnce(hosts []config.Host, phases []recipe.PhaseInfo) []config.Host {
	if !slices.ContainsFunc(phases, func(p recipe.PhaseInfo) bool { return p.Once }) {
		return hosts
	}
	name := config.ReleaseHost(hosts)
	i := slices.IndexFunc(hosts, func(h config.Host) bool { return h.Name == name })
	if i <= 0 {
		return hosts
	}
	out := append([]config.Host{hosts[i]}, hosts[:i]...)
	return append(out, hosts[i+1:]...)
}

// arrive is host at the gate: it waits until every host of the batch is
// there (or one of them failed). It says whether host runs the phase; err
// is why host must stop instead.
func (g *gate) arrive(host string) (run bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.waiting, host)
	g.changed.Broadcast()
	for len(g.waiting) > 0 && g.blocked == "" {
		g.changed.Wait()
	}
	if g.blocked != "" {
		return false, fmt.Errorf("%s did not run: %s; nothing was switched to the new version", g.phase, g.blocked)
	}
	if host == g.runner {
		g.arrived = true
		return true, nil
	}
	for !g.ran {
		g.changed.Wait()
	}
	if g.err != nil {
		return false, fmt.Errorf("%s %s on %s, where it runs once for every host: nothing was switched to the new version", g.phase, howEnded(g.err), g.runner)
	}
	return false, nil
}

// howEnded says how the once phase ended on its runner: interrupted (Ctrl-C
// or SIGTERM, which the hosts waiting for it got too), out of time, or
// failed.
func howEnded(err error) string {
	var le *recipe.Error
	switch {
	case !errors.As(err, &le) || le.Cancelled == nil:
		return "failed"
	case le.TimedOut():
		return "ran longer than phase_timeout"
	default:
		return "was interrupted (Ctrl-C or SIGTERM)"
	}
}

// done is the runner's phase finished with err.
func (g *gate) done(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ran, g.err = true, err
	g.changed.Broadcast()
}

// leave is host's run ended (it failed, or it has no such phase): if it
// had not reached the gate, the phase will not run.
func (g *gate) leave(host string, failedIn string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if host == g.runner && g.arrived && !g.ran {
		g.ran, g.err = true, fmt.Errorf("%s stopped in it", host)
		g.changed.Broadcast()
	}
	if !g.waiting[host] {
		return
	}
	delete(g.waiting, host)
	if failedIn != "" && g.blocked == "" {
		g.blocked = host + " failed in phase " + failedIn
	}
	if host == g.runner && g.blocked == "" {
		g.blocked = host + ", where it runs, stopped before it"
	}
	g.changed.Broadcast()
}
