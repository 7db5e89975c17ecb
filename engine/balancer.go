package engine

import (
	"context"

	"github.com/raijin-deploy/raijin/config"
)

// BalancerFlow is the recipe flow a deploy runs on the hosts with the role
// loadbalancer, once every other host has the new version: their Caddy
// site in front of the web hosts. A load balancer runs no app: no user, no
// units, no deploy lock (the web hosts' locks keep two deploys of the app
// apart), no audit line.
const BalancerFlow = "balancer"

// splitBalancers takes the load balancers out of the hosts a flow of the
// app runs on, and returns them. The flows that change nothing of the app
// (bootstrap, export-config: NoLock) run on them too.
func (r *runner) splitBalancers() []config.Host {
	if r.opts.NoLock {
		return nil
	}
	lbs := config.Balancers(r.opts.Hosts)
	r.opts.Hosts = config.AppHosts(r.opts.Hosts)
	r.rolling = r.opts.BatchSize > 0 && r.opts.BatchSize < len(r.opts.Hosts)
	if r.opts.Flow != "deploy" || r.opts.Redeploy {
		for _, h := range lbs {
			r.opts.Events.Log(h.Name, r.opts.Flow, "a load balancer runs no app: nothing to do")
		}
		return nil
	}
	return lbs
}

// runBalancers runs BalancerFlow on the load balancers lbs, in parallel,
// and says whether one failed.
func (r *runner) runBalancers(ctx context.Context, report *Report, lbs []config.Host, shared any) (failed bool) {
	o := r.opts
	o.Flow, o.Hosts, o.NoLock = BalancerFlow, lbs, true
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
