package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/ui"
)

// CLI is raijin's command line: one struct per command.
type CLI struct {
	Globals

	Deploy   DeployCmd   `cmd:"" help:"Build, transfer, install, release and start a new version on the hosts."`
	Redeploy RedeployCmd `cmd:"" help:"Deploy new code only: leave the systemd units and the Caddy site as they are."`
	Rollback RollbackCmd `cmd:"" help:"Switch back to VERSION (default: the previous one) and restart."`
	Prune    PruneCmd    `cmd:"" help:"Delete old versions beyond N on the hosts, never the current one."`
	Down     DownCmd     `cmd:"" help:"Stop the app and remove it from the hosts: units, Caddy site, app directory."`
	Releases ReleasesCmd `cmd:"" help:"List the versions on each host, the current one marked, with who deployed them and when."`
	Lock     LockCmd     `cmd:"" help:"Show or release the deploy lock."`
	Config   ConfigCmd   `cmd:"" name:"config" help:"Print the resolved configuration and where each value came from."`
	Printenv PrintenvCmd `cmd:"" help:"Print the env that would be uploaded to each host, secrets redacted."`
	Recipe   RecipeCmd   `cmd:"" help:"Inspect the deploy recipe."`
	Init     InitCmd     `cmd:"" help:"Write a commented raijin.toml, an example .env.prod and .raijin/ examples for a new project."`
	Up       UpCmd       `cmd:"" help:"Bootstrap the servers, then deploy."`
	App      AppCmd      `cmd:"" help:"Operate the deployed app: status, logs, exec, shell, start, stop, restart, export-config."`
	Server   ServerCmd   `cmd:"" help:"Operate the servers: bootstrap, info, exec, create-user."`
}

type kongVersion bool

func (kongVersion) BeforeApply(app *kong.Kong, vars kong.Vars) error {
	fmt.Fprintln(app.Stdout, "raijin "+vars["version"])
	app.Exit(0)
	return nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// DeployCmd is `raijin deploy`.
type DeployCmd struct {
	Recipe       string `placeholder:"FILE" help:"Load this Lua recipe after the built-in one (instead of deploy.lua or recipe =)." type:"existingfile"`
	DryRun       bool   `help:"Run the recipe against a recording host: print every command and file, connect to nothing."`
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

func hostNames(hosts []config.Host) string {
	var n []string
	for _, h := range hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
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
