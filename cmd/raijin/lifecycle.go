package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
)

// lockFlags are the deploy lock options of every command that takes it.
type lockFlags struct {
	LockWait    string `placeholder:"DURATION" help:"Wait up to DURATION for another deploy's lock."`
	ForceUnlock bool   `help:"Take over a deploy lock left by a dead deploy."`
}

// flowOpts are the run options for a lock-taking command that runs the
// recipe's flow of the same name.
func (l lockFlags) flowOpts(app *App, cfg *config.Config, command string) (engine.Options, error) {
	return l.opts(app, cfg, command, command)
}

// opts are the run options for the lock-taking command that runs flow.
func (l lockFlags) opts(app *App, cfg *config.Config, command, flow string) (engine.Options, error) {
	o, err := app.runOpts(cfg, command, flow, "", false)
	if err != nil {
		return o, err
	}
	// A lock left by a dead run is offered for takeover on a terminal, as
	// deploy offers it; without one the error names --force-unlock.
	o.TakeOverStale = app.askStale
	return o, l.apply(&o)
}

func (l lockFlags) apply(o *engine.Options) error {
	o.ForceUnlock = l.ForceUnlock
	if l.LockWait != "" {
		w, err := parseDuration(l.LockWait, "--lock-wait")
		if err != nil {
			return err
		}
		o.LockWait = w
	}
	return nil
}

// PruneCmd is `raijin prune`.
type PruneCmd struct {
	Keep int `placeholder:"N" help:"Keep the N newest versions, the current one always among them (default: versions_to_keep)."`
	lockFlags
}

func (p *PruneCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if p.Keep < 0 {
		return errs.Usagef("keep at least 1 version (the current one)", "--keep %d: must be 1 or more", p.Keep)
	}
	o, err := p.flowOpts(app, cfg, "prune")
	if err != nil {
		return err
	}
	o.Keep = p.Keep
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	app.UI().Printf("prune of %s done in %.1fs (%s)", cfg.App, rep.Duration.Seconds(), app.statsLine())
	return nil
}

// DownCmd is `raijin down`.
type DownCmd struct {
	Full        bool `help:"Also stop and remove Caddy when no other app has a site on the host."`
	DeleteState bool `name:"delete-state" help:"Also delete the app's data (its state directory, /var/lib/raijin/APP) and its system user; without it they stay."`
	Yes         bool `short:"y" help:"Do not ask for confirmation."`
	lockFlags
}

func (d *DownCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	o, err := d.flowOpts(app, cfg, "down")
	if err != nil {
		return err
	}
	o.Full, o.DeleteState = d.Full, d.DeleteState
	state := "/var/lib/" + cfg.StateDir()
	if !d.Yes {
		what := "its units, its Caddy site and every version"
		if d.DeleteState {
			what += ", and its data in " + state + " and its user " + cfg.AppUser
		}
		if d.Full {
			what += " (and Caddy, where no other app uses it)"
		}
		if err := app.confirm(fmt.Sprintf("Stop %s on %s and delete %s?", cfg.App, hostNames(o.Hosts), what), "-y"); err != nil {
			return err
		}
	}
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	if d.DeleteState {
		app.UI().Printf("down of %s done in %.1fs (%s): nothing of it is left on %s", cfg.App, rep.Duration.Seconds(), app.statsLine(), hostNames(o.Hosts))
	} else {
		app.UI().Printf("down of %s done in %.1fs (%s): its data stays in %s and its user %s on %s (raijin down --delete-state deletes them)",
			cfg.App, rep.Duration.Seconds(), app.statsLine(), state, cfg.AppUser, hostNames(o.Hosts))
	}
	return nil
}

// ReleasesCmd is `raijin releases`.
type ReleasesCmd struct {
	History int `placeholder:"N" default:"5" help:"Also show the last N lines of the audit log (0: none)."`
}

func (r *ReleasesCmd) Run(app *App) error {
	cfg, o, err := app.hostOpts("releases")
	if err != nil {
		return err
	}
	all, err := engine.EachHost(app.ctx, o, func(ctx context.Context, _ config.Host, host *remote.Session, rel string) (server.Releases, error) {
		return server.ReadReleases(ctx, host, rel)
	})
	if err != nil {
		return err
	}
	u := app.UI()
	if app.JSON {
		u.JSONValue(all)
		return nil
	}
	var b strings.Builder
	for i, rs := range all {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s: %s\n", rs.Host, rs.AppDir)
		if !rs.Exists {
			fmt.Fprintf(&b, "  %s is not deployed on this host\n", cfg.App)
			continue
		}
		if len(rs.Releases) == 0 {
			b.WriteString("  no versions\n")
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, v := range rs.Releases {
			mark := " "
			if v.Current {
				mark = "*"
			}
			when, note := "-", ""
			if v.Last != nil {
				when = fmt.Sprintf("%s\tby %s\t(%s)", v.Last.Time.UTC().Format("2006-01-02 15:04:05Z"), v.Last.Who(), v.Last.Command)
			} else {
				when += "\t\t"
			}
			if !v.OnDisk {
				note = "  not on disk"
			} else if !v.Recorded {
				note = "  not in .versions"
			}
			fmt.Fprintf(tw, "  %s %s\t%s%s\n", mark, v.Version, when, note)
		}
		tw.Flush()
		if rs.Lock != nil {
			fmt.Fprintf(&b, "  locked by %s\n", rs.Lock.Describe())
		}
		if n := min(r.History, len(rs.Audit)); n > 0 {
			b.WriteString("  history:\n")
			for _, e := range rs.Audit[len(rs.Audit)-n:] {
				fmt.Fprintf(&b, "    %s\n", describeAudit(e))
			}
		}
	}
	u.Data(b.String())
	return nil
}

// describeAudit is one audit line in words.
func describeAudit(e server.AuditEntry) string {
	s := fmt.Sprintf("%s %s %s by %s", e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Command, e.Result, e.Who())
	switch {
	case e.From != "" && e.To != "" && e.From != e.To:
		s += fmt.Sprintf(": %s -> %s", e.From, e.To)
	case e.To != "":
		s += ": " + e.To
	case e.From != "":
		s += " at " + e.From
	}
	s += fmt.Sprintf(" (%.1fs)", e.Duration)
	if e.Error != "" {
		s += ": " + e.Error
	}
	return s
}

// hostOpts are the options of a command that connects to the hosts without
// running a flow.
func (a *App) hostOpts(command string) (*config.Config, engine.Options, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, engine.Options{}, err
	}
	o, err := a.runOpts(cfg, command, "", "", false)
	if err != nil {
		return nil, o, err
	}
	// They read the app on each host: a load balancer has none.
	if o.Hosts = config.AppHosts(o.Hosts); len(o.Hosts) == 0 {
		return nil, o, errs.Usagef("select a host that runs the app (-H, -R)", "%s: the hosts selected are load balancers, which run no app", command)
	}
	// These commands print data (--json included): remote commands are
	// shown with -v only.
	o.Observer = echo(a)
	return cfg, o, nil
}
