package engine

import (
	"context"
	"slices"

	"github.com/raijin-deploy/raijin/config"
)

// BalancerFlows are the recipe flows run on the hosts with the role
// loadbalancer instead of a flow of the app, once every other host has
// succeeded: a deploy's (not a redeploy's) installs their Caddy site in
// front of the web hosts, a down's removes it. A load balancer runs no
// app: no user, no units, no deploy lock (the web hosts' locks keep two
// deploys of the app apart), no audit line. The other flows of the app
// leave it alone.
var BalancerFlows = map[string]string{"deploy": "balancer", "down": "balancer_down"}

// splitBalancers takes the load balancers out of the hosts a flow of the
// app runs on, and returns them. The flows that change nothing of the app
// (bootstrap, export-config: NoLock) run on them too.
func (r *runner) splitBalancers() []config.Host {
	if r.opts.NoLock {
		return nil
	}
	lbs := config.Balancers(r.opts.Hosts)
	r.opts.Hosts = config.AppHosts(r.opts.Hosts)
	if BalancerFlows[r.opts.Flow] == "" || r.opts.Redeploy {
		for _, h := range lbs {
			r.opts.Events.Log(h.Name, r.opts.Flow, "a load balancer runs no app: nothing to do")
		}
		return nil
	}
	return lbs
}

// runBalancers runs the flow of BalancerFlows on the load balancers lbs,
// in parallel, and says whether one failed.
func (r *runner) runBalancers(ctx context.Context, report *Report, lbs []config.Host, shared any) (failed bool) {
	o := r.opts
	o.Flow, o.Hosts, o.NoLock = BalancerFlows[r.opts.Flow], lbs, true
	rr := newRunner(o)
	rr.envs = r.envs
	phases, err := hostPhases(o)
	if err != nil {
		for _, h := range lbs {
			report.Hosts = append(report.Hosts, HostResult{Host: h.Name, Phase: "load", Err: r.hostError(h.Name, "load", err), Balancer: true})
		}
		return true
	}
	for _, res := range rr.runBatch(ctx, lbs, phases, shared, nil) {
		res.Balancer = true
		failed = failed || res.Err != nil
		report.Hosts = append(report.Hosts, res)
	}
	return failed
}

// markRolling records the hosts that leave the load balancer while they
// deploy (ctx.rolling): with batches (of batch_size, whatever --dry-run
// does), those of a batch that leaves a web host of the configuration
// outside it, serving. A batch holding every web host deploys them at
// once, each kept serving by blue/green.
func (r *runner) markRolling(hosts []config.Host) {
	n := r.opts.BatchSize
	if n <= 0 || n >= len(hosts) {
		return
	}
	webs := r.opts.Config.WebHosts()
	for i := 0; i < len(hosts); i += n {
		batch := hosts[i:min(i+n, len(hosts))]
		outside := slices.ContainsFunc(webs, func(w config.Host) bool {
			return !slices.ContainsFunc(batch, func(h config.Host) bool { return h.Name == w.Name })
		})
		for _, h := range batch {
			r.rolling[h.Name] = outside
		}
	}
}
