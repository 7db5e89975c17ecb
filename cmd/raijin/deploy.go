package main

import (
	"fmt"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/ui"
)

// DeployCmd is `raijin deploy`.
type DeployCmd struct {
	Recipe       string `placeholder:"FILE" help:"Load this Lua recipe after the built-in one (instead of deploy.lua or recipe =)." type:"existingfile"`
	DryRun       bool   `help:"Run the recipe against a recorder instead of the servers: print every command and file as it would be sent, connect to nothing."`
	Version      string `name:"set-version" placeholder:"VERSION" help:"Deploy as VERSION instead of the configured one."`
	ForceUnlock  bool   `help:"Take over a deploy lock left by a dead deploy."`
	LockWait     string `placeholder:"DURATION" help:"Wait up to DURATION for another deploy's lock."`
	Batch        int    `placeholder:"N" help:"Deploy to N hosts at a time (default: batch_size, else all)."`
	AllOrNothing bool   `help:"If any host fails, switch the hosts that succeeded back to their previous version too."`
}

func (d *DeployCmd) Run(app *App) error { return deploy(app, "deploy", d, false) }

// RedeployCmd is `raijin redeploy`.
type RedeployCmd struct {
	DeployCmd
}

func (d *RedeployCmd) Run(app *App) error { return deploy(app, "redeploy", &d.DeployCmd, true) }

func deploy(app *App, command string, d *DeployCmd, redeploy bool) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if d.Version != "" {
		if err := cfg.SetVersion(d.Version, "--set-version"); err != nil {
			return err
		}
	}
	o, err := app.runOpts(cfg, command, "deploy", d.Recipe, d.DryRun)
	if err != nil {
		return err
	}
	o.Redeploy = redeploy
	o.ForceUnlock = d.ForceUnlock
	o.AllOrNothing = d.AllOrNothing
	o.TakeOverStale = app.askStale
	if d.Batch > 0 {
		o.BatchSize = d.Batch
	}
	if d.LockWait != "" {
		w, err := parseDuration(d.LockWait, "--lock-wait")
		if err != nil {
			return err
		}
		o.LockWait = w
	}
	u := app.UI()
	if d.DryRun {
		u.Printf("dry run: %s %s %s to %s (nothing is connected to or changed)", command, cfg.App, cfg.Version, hostNames(o.Hosts))
	} else {
		u.Printf("%s %s %s to %s", command, cfg.App, cfg.Version, hostNames(o.Hosts))
	}
	rep, err := engine.Run(app.ctx, o)
	if rep != nil && !d.DryRun && (len(o.Hosts) > 1 || d.AllOrNothing) && len(rep.Hosts) > 0 {
		hostSummary(u, rep)
	}
	if err != nil {
		return err
	}
	if !d.DryRun {
		u.Printf("%s %s %s done in %.1fs (%s)", command, cfg.App, cfg.Version, rep.Duration.Seconds(), app.statsLine())
		var urls []string
		for _, h := range o.Hosts {
			if !u.JSON {
				u.Result("%s", h.URL())
			}
			urls = append(urls, h.URL())
		}
		f := app.statsFields()
		f["ok"], f["command"], f["app"], f["version"], f["seconds"], f["urls"] = true, command, cfg.App, cfg.Version, rep.Duration.Seconds(), urls
		u.Final(f)
	}
	return nil
}

// hostSummary says, host by host, how a run on several hosts ended.
func hostSummary(u *ui.UI, rep *engine.Report) {
	for _, h := range rep.Hosts {
		var status, detail string
		switch {
		case h.Skipped:
			status, detail = "skipped", "not started: an earlier batch failed"
		case h.Err != nil && h.Restored && h.Previous != "":
			status, detail = "failed", fmt.Sprintf("in phase %s; restored %s", h.Phase, h.Previous)
		case h.Err != nil:
			status, detail = "failed", "in phase "+h.Phase
			switch {
			case h.Previous == "":
				detail += "; first deploy, nothing to restore"
			case h.Restored:
				detail += "; restored " + h.Previous
			default:
				detail += "; still on " + h.Previous
			}
		case h.Balancer && h.Err == nil:
			status, detail = "balancer", "its Caddy site is in front of the web hosts"
		case h.RolledBack:
			status, detail = "rolled back", fmt.Sprintf("took %s, then switched back to %s (--all-or-nothing)", h.Version, h.Previous)
		case h.RollbackErr != nil:
			status, detail = "deployed", fmt.Sprintf("on %s; --all-or-nothing could not switch it back: %v", h.Version, h.RollbackErr)
		default:
			status, detail = "deployed", "on "+h.Version
		}
		u.HostResult(h.Host, status, detail, h.Duration)
	}
}

// RollbackCmd is `raijin rollback [VERSION]`.
type RollbackCmd struct {
	Version string `arg:"" optional:"" help:"The version to switch to (default: the previous one in .versions)."`
	Yes     bool   `short:"y" help:"Do not ask for confirmation."`
	lockFlags
}

func (r *RollbackCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if r.Version != "" {
		if err := config.ValidVersion(r.Version); err != nil {
			return errs.Usagef("run `raijin rollback` without VERSION for the previous one", "%v", err)
		}
	}
	o, err := r.flowOpts(app, cfg, "rollback")
	if err != nil {
		return err
	}
	o.TargetVersion = r.Version
	if !r.Yes {
		target := r.Version
		if target == "" {
			target = "the previous version"
		}
		if err := app.confirm(fmt.Sprintf("Roll %s back to %s on %s?", cfg.App, target, hostNames(o.Hosts)), "-y"); err != nil {
			return err
		}
	}
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	app.UI().Printf("rollback of %s done in %.1fs (%s)", cfg.App, rep.Duration.Seconds(), app.statsLine())
	return nil
}

// UpCmd is `raijin up`.
type UpCmd struct {
	DeployCmd
}

func (u *UpCmd) Run(app *App) error {
	// The deploy's secrets must resolve before the bootstrap connects: a
	// missing secret or a locked vault fails before anything is touched.
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if _, _, err := hostEnvs(app, cfg, false); err != nil {
		return err
	}
	if err := bootstrap(app, u.Recipe, u.DryRun); err != nil {
		return err
	}
	return deploy(app, "deploy", &u.DeployCmd, false)
}
