package main

import (
	"fmt"
	"strings"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/shell"
)

// AppCmd is `raijin app`.
type AppCmd struct {
	Status       AppStatusCmd       `cmd:"" help:"Print each host's current version, URL and the state of every unit."`
	Logs         AppLogsCmd         `cmd:"" help:"Print the journal of the app's processes (all, or PROC)."`
	Exec         AppExecCmd         `cmd:"" help:"Run a command as the app's user, in its sandbox and app directory, with its env and PATH."`
	Shell        AppShellCmd        `cmd:"" help:"Open a shell as the app's user, in its sandbox and app directory, with its env (not redacted)."`
	Start        AppStartCmd        `cmd:"" help:"Start the app's processes (all, or PROC) and wait until they are healthy."`
	Stop         AppStopCmd         `cmd:"" help:"Stop the app's processes (all, or PROC)."`
	Restart      AppRestartCmd      `cmd:"" help:"Restart the app's processes (all, or PROC) and wait until they are healthy."`
	Maintenance  AppMaintenanceCmd  `cmd:"" help:"Have the app's site answer 503 with a maintenance page (and Retry-After) while the app keeps running, until app live."`
	Live         AppLiveCmd         `cmd:"" help:"End maintenance: the app's site serves the app again."`
	Cat          AppCatCmd          `cmd:"" help:"Print what is on the server: the systemd units (unit), the Caddy site (site) or the .env (env, values redacted)."`
	ExportConfig AppExportConfigCmd `cmd:"" name:"export-config" help:"Write the generated systemd units and Caddy site into local_config_dir, to edit and own."`
}

// units are the systemd units of proc ("" for every process), web first.
func units(cfg *config.Config, proc string) ([]string, error) {
	names := cfg.ProcessNames()
	if proc != "" {
		if _, ok := cfg.Processes[proc]; !ok {
			return nil, errs.Usagef("the processes are: "+strings.Join(names, ", "), "%s has no process %q", cfg.File, proc)
		}
		names = []string{proc}
	}
	var out []string
	for _, p := range names {
		if p == "web" {
			// Both slots by name: journalctl -u matches a pattern only
			// against the units known when it starts, and -f must follow
			// the slot a restart starts.
			for _, slot := range config.Slots {
				out = append(out, cfg.SlotUnit(slot))
			}
			continue
		}
		out = append(out, cfg.UnitName(p))
	}
	return out, nil
}

// UnitStatus is one unit's state on a host.
type UnitStatus struct {
	Unit  string `json:"unit"`
	State string `json:"state"`
	Sub   string `json:"sub_state"`
	Since string `json:"since,omitempty"`
}

// HostStatus is `raijin app status` for one host.
type HostStatus struct {
	Host     string `json:"host"`
	Version  string `json:"version"`
	Previous string `json:"previous,omitempty"`
	URL      string `json:"url"`
	// Maintenance: the site answers 503 with the maintenance page.
	Maintenance bool         `json:"maintenance"`
	Units       []UnitStatus `json:"units"`
}

// slotsRunning drops the web slot units that do not run from units, unless
// none runs (then web is down), and adds the units not active to down.
func slotsRunning(units []UnitStatus, slot map[string]bool, down int) ([]UnitStatus, int) {
	running := false
	for _, u := range units {
		if slot[u.Unit] && u.State == "active" {
			running = true
		}
	}
	var out []UnitStatus
	webDown := false
	for _, u := range units {
		if slot[u.Unit] && u.State != "active" {
			if running {
				continue
			}
			webDown = true
			out = append(out, u)
			continue
		}
		if u.State != "active" {
			down++
		}
		out = append(out, u)
	}
	if webDown {
		down++
	}
	return out, down
}

// AppStatusCmd is `raijin app status`.
type AppStatusCmd struct{}

func (s *AppStatusCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	var all []HostStatus
	down := 0
	err = eachHost(app, cfg, func(r *openHost) error {
		us, slotUnits := statusUnits(cfg, r.h)
		cmd := fmt.Sprintf("head -2 %s 2>/dev/null; echo @@; [ -e %s ] && echo maintenance; echo @@; systemctl show --no-pager -p Id -p ActiveState -p SubState -p ActiveEnterTimestamp %s",
			shell.Quote(r.appRel+"/.versions"), shell.Quote(engine.MaintenanceMarker(cfg)), shell.QuoteAll(us...))
		res, err := remote.Must(app.ctx, r.host(app), cmd, remote.RunOpts{})
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "")
		}
		vers, show, _ := strings.Cut(res.Stdout, "@@")
		maint, show, _ := strings.Cut(show, "@@")
		st := HostStatus{Host: r.h.Name, URL: r.h.URL(), Maintenance: strings.TrimSpace(maint) == "maintenance"}
		if v := server.ParseVersions(vers); len(v) > 0 {
			st.Version = v[0]
			if len(v) > 1 {
				st.Previous = v[1]
			}
		}
		for _, block := range strings.Split(strings.TrimSpace(show), "\n\n") {
			u := UnitStatus{}
			for _, l := range strings.Split(block, "\n") {
				k, v, _ := strings.Cut(l, "=")
				switch k {
				case "Id":
					u.Unit = v
				case "ActiveState":
					u.State = v
				case "SubState":
					u.Sub = v
				case "ActiveEnterTimestamp":
					u.Since = v
				}
			}
			if u.Unit == "" {
				continue
			}
			st.Units = append(st.Units, u)
		}
		st.Units, down = slotsRunning(st.Units, slotUnits, down)
		all = append(all, st)
		if !app.JSON {
			var b strings.Builder
			ver := st.Version
			if ver == "" {
				ver = "(not deployed)"
			}
			fmt.Fprintf(&b, "%s  version %s", st.Host, ver)
			if st.Previous != "" {
				fmt.Fprintf(&b, " (previous %s)", st.Previous)
			}
			fmt.Fprintf(&b, "  %s\n", st.URL)
			if st.Maintenance {
				b.WriteString("  in maintenance: the site answers 503 with the maintenance page (`raijin app live` ends it)\n")
			}
			for _, u := range st.Units {
				fmt.Fprintf(&b, "  %-32s %s (%s)", u.Unit, u.State, u.Sub)
				if u.State == "active" && u.Since != "" {
					fmt.Fprintf(&b, " since %s", u.Since)
				}
				b.WriteString("\n")
			}
			app.UI().Data(b.String())
		}
		return nil
	})
	if app.JSON {
		app.UI().JSONValue(all)
	}
	if err != nil {
		return err
	}
	if down > 0 {
		return errs.Failedf("`raijin app logs` shows why; `raijin app start` starts them", "%d unit(s) not active", down)
	}
	return nil
}

// statusUnits are the units `app status` asks h about: those of the
// processes it runs (its roles). web runs in one slot at a time (two for a
// moment during a deploy): both are asked for, and the one that does not
// run is left out (slotUnits).
func statusUnits(cfg *config.Config, h config.Host) (us []string, slotUnits map[string]bool) {
	slotUnits = map[string]bool{}
	for _, p := range cfg.HostProcesses(h) {
		if p != "web" {
			us = append(us, cfg.UnitName(p))
			continue
		}
		for _, slot := range config.Slots {
			us = append(us, cfg.SlotUnit(slot))
			slotUnits[cfg.SlotUnit(slot)] = true
			if cfg.SocketActivated() {
				us = append(us, cfg.SlotSocketUnit(slot))
				slotUnits[cfg.SlotSocketUnit(slot)] = true
			}
		}
	}
	return us, slotUnits
}

// AppLogsCmd is `raijin app logs [PROC] [-f]`.
type AppLogsCmd struct {
	Proc   string    `arg:"" optional:"" name:"proc" predictor:"procs" help:"Only this process (a name of [processes])."`
	Follow bool      `short:"f" help:"Keep printing new lines until Ctrl-C (on a terminal; one host only)."`
	Lines  int       `short:"n" default:"100" placeholder:"N" help:"Print the last N lines."`
	Since  string    `placeholder:"WHEN" help:"Only lines since WHEN: a duration back from now (30m, 2h), a date (2026-12-06), a date and time (\"2026-12-06 14:00\"), today or yesterday."`
	Grep   givenText `placeholder:"PATTERN" help:"Only lines whose message matches PATTERN (a regular expression; case-insensitive when all lower case)."`
	Level  string    `placeholder:"LEVEL" help:"Only lines of LEVEL or more severe (emerg, alert, crit, err, warning, notice, info, debug), or a range such as err..warning."`
}

func (l *AppLogsCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	us, err := units(cfg, l.Proc)
	if err != nil {
		return err
	}
	if l.Lines < 1 {
		return errs.Usagef("print at least one line: -n 100", "--lines %d: must be 1 or more", l.Lines)
	}
	filters, err := l.filters()
	if err != nil {
		return err
	}
	args := append([]string{"--no-pager", "-o", "short-iso", "-n", fmt.Sprint(l.Lines)}, filters...)
	for _, u := range us {
		args = append(args, "-u", u)
	}
	if err := app.hideSecrets(cfg, "raijin hides the app's secrets in its logs, so it needs them"); err != nil {
		return err
	}
	if l.Follow {
		args = append(args, "-f")
		cmd := "sudo -n journalctl " + shell.QuoteAll(args...)
		return oneHost(app, cfg, func(r *openHost) error { return r.interactive(app, cmd, true) })
	}
	cmd := "sudo -n journalctl " + shell.QuoteAll(args...)
	return eachHost(app, cfg, func(r *openHost) error { return r.run(app, cmd, nil) })
}

// AppExecCmd is `raijin app exec CMD [-i] [--raw]`.
type AppExecCmd struct {
	Interactive bool     `short:"i" help:"Run on a terminal (a REPL, a shell, a program that asks questions); one host only. Its output is not redacted."`
	Raw         bool     `help:"Print the output as it comes, secrets included (binary output, a dump); the secrets are not resolved."`
	Command     []string `arg:"" name:"cmd" passthrough:"" help:"The command line to run in the app directory."`
}

func (e *AppExecCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	line := strings.Join(e.Command, " ")
	if e.Interactive {
		return oneHost(app, cfg, func(r *openHost) error { return r.interactive(app, r.inApp(cfg.App, line), false) })
	}
	if !e.Raw {
		if err := app.hideSecrets(cfg, "raijin hides the app's secrets in the output, so it needs them; --raw prints it as it comes"); err != nil {
			return err
		}
	}
	return eachHost(app, cfg, func(r *openHost) error { return r.run(app, r.inApp(cfg.App, line), app.Stdin) })
}

// AppShellCmd is `raijin app shell`.
type AppShellCmd struct{}

func (s *AppShellCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	// Not a login shell: /etc/profile would reset the app's PATH.
	return oneHost(app, cfg, func(r *openHost) error {
		return r.interactive(app, r.inApp(cfg.App, `exec "${SHELL:-/bin/sh}" -i`), false)
	})
}

// AppStartCmd is `raijin app start [PROC]`.
type AppStartCmd struct {
	Proc string `arg:"" optional:"" name:"proc" predictor:"procs" help:"Only this process (a name of [processes])."`
	lockFlags
}

func (c *AppStartCmd) Run(app *App) error { return unitAction(app, "start", c.Proc, c.lockFlags) }

// AppStopCmd is `raijin app stop [PROC]`.
type AppStopCmd struct {
	Proc string `arg:"" optional:"" name:"proc" predictor:"procs" help:"Only this process (a name of [processes])."`
	lockFlags
}

func (c *AppStopCmd) Run(app *App) error { return unitAction(app, "stop", c.Proc, c.lockFlags) }

// AppRestartCmd is `raijin app restart [PROC]`.
type AppRestartCmd struct {
	Proc string `arg:"" optional:"" name:"proc" predictor:"procs" help:"Only this process (a name of [processes])."`
	lockFlags
}

func (c *AppRestartCmd) Run(app *App) error { return unitAction(app, "restart", c.Proc, c.lockFlags) }

func unitAction(app *App, action, proc string, l lockFlags) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if _, err := units(cfg, proc); err != nil {
		return err
	}
	// The recipe's flow of the same name (raijin.steps.control), so that a
	// project's overrides and hooks apply, with the deploy lock held.
	o, err := l.opts(app, cfg, "app "+action, action)
	if err != nil {
		return err
	}
	o.Process = proc
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	app.UI().Printf("app %s of %s done in %.1fs (%s)", action, cfg.App, rep.Duration.Seconds(), app.statsLine())
	return nil
}

// AppExportConfigCmd is `raijin app export-config`.
type AppExportConfigCmd struct {
	DryRun bool `help:"Print the files instead of writing them; connect to nothing."`
}

func (e *AppExportConfigCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	o, err := app.runOpts(cfg, "export-config", "export-config", "", e.DryRun)
	if err != nil {
		return err
	}
	o.NoLock = true
	if len(o.Hosts) > 1 {
		// The units name the deploy user and its home, and the site the
		// host's domain: they are made for one host.
		app.UI().Printf("exporting the configuration of %s (the first host; pick another with -H)", o.Hosts[0].Name)
		o.Hosts = o.Hosts[:1]
	}
	if _, err := engine.Run(app.ctx, o); err != nil {
		return err
	}
	if !e.DryRun {
		app.UI().Printf("edit the files in %s/: the next deploy uses them as they are", cfg.LocalConfigDir)
	}
	return nil
}
