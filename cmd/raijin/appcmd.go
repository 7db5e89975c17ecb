package main

import (
	"fmt"
	"regexp"
	"slices"
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
	Scale        AppScaleCmd        `cmd:"" help:"Run COUNT instances of a process with replicas, without a new version (raijin.toml is not changed)."`
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
		if spec, _ := cfg.Process(p); spec.Scheduled() {
			out = append(out, cfg.TimerUnit(p))
		}
	}
	return out, nil
}

// UnitStatus is one unit's state on a host.
type UnitStatus struct {
	Unit  string `json:"unit"`
	State string `json:"state"`
	Sub   string `json:"sub_state"`
	Since string `json:"since,omitempty"`
	// A timer's (a scheduled process): its service's last run, how it
	// ended (systemd's Result: success, exit-code, ...; "running" while
	// one runs; "" before the first), and the next run.
	LastRun    string `json:"last_run,omitempty"`
	LastResult string `json:"last_result,omitempty"`
	NextRun    string `json:"next_run,omitempty"`
	result     string // the service's Result=
	started    string // the service's ExecMainStartTimestamp=
	startedMon string // the service's ExecMainStartTimestampMonotonic= ("0": it never ran)
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
	down, failed := 0, 0
	err = eachHost(app, cfg, func(r *openHost) error {
		us, slotUnits, templates := statusUnits(cfg, r.h)
		// The instances of each process with replicas that systemd knows
		// (app scale may have changed their count), listed on the server.
		instances := ""
		if len(templates) > 0 {
			var list []string
			for _, t := range templates {
				list = append(list, fmt.Sprintf("systemctl list-units --all --plain --no-legend %s 2>/dev/null | awk '{print $1}'", shell.Quote(strings.TrimSuffix(t, "@.service")+"@*.service")))
			}
			instances = fmt.Sprintf(" $({ %s; } | grep -E -x %s | sort -u)", strings.Join(list, "; "), shell.Quote(replicaPattern(templates)))
		}
		cmd := fmt.Sprintf("head -2 %s 2>/dev/null; echo @@; [ -e %s ] && echo maintenance; echo @@; systemctl show --no-pager -p Id -p ActiveState -p SubState -p ActiveEnterTimestamp -p Result -p ExecMainStartTimestamp -p ExecMainStartTimestampMonotonic -p NextElapseUSecRealtime %s%s",
			shell.Quote(r.appRel+"/.versions"), shell.Quote(engine.MaintenanceMarker(cfg)), shell.QuoteAll(us...), instances)
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
		for _, u := range parseShow(show) {
			if knownUnit(u.Unit, us, templates) {
				st.Units = append(st.Units, u)
			}
		}
		st.Units = timerRuns(st.Units)
		st.Units, down = slotsRunning(st.Units, slotUnits, down)
		failed += failedRuns(st.Units)
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
				switch {
				case strings.HasSuffix(u.Unit, ".timer"):
					fmt.Fprintf(&b, "  last run %s", orText(u.LastRun, "never"))
					if u.LastResult != "" {
						fmt.Fprintf(&b, ": %s", u.LastResult)
					}
					fmt.Fprintf(&b, "; next %s", orText(u.NextRun, "none"))
				case u.State == "active" && u.Since != "":
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
	if down == 0 && failed == 0 {
		return nil
	}
	var what []string
	hint := "`raijin app logs PROC` shows why; the next run is at its time (the timer is still active)"
	if down > 0 {
		what = append(what, fmt.Sprintf("%d unit(s) not active", down))
		hint = "`raijin app logs` shows why; `raijin app start` starts them"
	}
	if failed > 0 {
		what = append(what, fmt.Sprintf("the last run of %d scheduled process(es) failed", failed))
	}
	return errs.Failedf(hint, "%s", strings.Join(what, ", and "))
}

// failedRuns counts the timers whose last run ended otherwise than with
// success (systemd's Result: exit-code, signal, timeout, ...): a job that
// failed at night makes `app status` exit 1, as a unit that is down does.
func failedRuns(units []UnitStatus) int {
	n := 0
	for _, u := range units {
		if strings.HasSuffix(u.Unit, ".timer") && u.LastResult != "" && u.LastResult != "success" && u.LastResult != "running" {
			n++
		}
	}
	return n
}

// parseShow reads systemctl show's answer: a block of KEY=value lines
// per unit.
func parseShow(show string) []UnitStatus {
	var out []UnitStatus
	for _, block := range strings.Split(strings.TrimSpace(show), "\n\n") {
		u := UnitStatus{}
		fields := map[string]*string{"Id": &u.Unit, "ActiveState": &u.State, "SubState": &u.Sub, "ActiveEnterTimestamp": &u.Since,
			"Result": &u.result, "ExecMainStartTimestamp": &u.started, "ExecMainStartTimestampMonotonic": &u.startedMon,
			"NextElapseUSecRealtime": &u.NextRun}
		for _, l := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(l, "=")
			if f, ok := fields[k]; ok {
				*f = v
			}
		}
		if u.Unit != "" {
			out = append(out, u)
		}
	}
	return out
}

// statusUnits are the units `app status` asks h about: those of the
// processes it runs (its roles). web runs in one slot at a time (two for a
// moment during a deploy): both are asked for, and the one that does not
// run is left out (slotUnits). A scheduled process is its timer and its
// service (whose last run the timer's line shows); a process with
// replicas, its template (templates), whose instances the server lists.
func statusUnits(cfg *config.Config, h config.Host) (us []string, slotUnits map[string]bool, templates []string) {
	slotUnits = map[string]bool{}
	for _, p := range cfg.HostProcesses(h) {
		spec, _ := cfg.Process(p)
		switch {
		case p == "web":
			for _, slot := range config.Slots {
				us = append(us, cfg.SlotUnit(slot))
				slotUnits[cfg.SlotUnit(slot)] = true
				if cfg.SocketActivated() {
					us = append(us, cfg.SlotSocketUnit(slot))
					slotUnits[cfg.SlotSocketUnit(slot)] = true
				}
			}
		case spec.Scheduled():
			us = append(us, cfg.TimerUnit(p), cfg.UnitName(p))
		case spec.Replicated():
			templates = append(templates, cfg.ProcessUnit(p))
		default:
			us = append(us, cfg.UnitName(p))
		}
	}
	return us, slotUnits, templates
}

// replicaPattern matches the instances of templates (a regular expression
// for grep -E -x); one that matches nothing without templates.
func replicaPattern(templates []string) string {
	if len(templates) == 0 {
		return "^$"
	}
	var alts []string
	for _, t := range templates {
		alts = append(alts, regexp.QuoteMeta(strings.TrimSuffix(t, "@.service"))+"@[0-9]+\\.service")
	}
	return "(" + strings.Join(alts, "|") + ")"
}

// knownUnit: a unit the server named is one asked for, or an instance of
// one of templates (the server's answer is not trusted further).
func knownUnit(u string, asked, templates []string) bool {
	if slices.Contains(asked, u) {
		return true
	}
	return len(templates) > 0 && regexp.MustCompile("^"+replicaPattern(templates)+"$").MatchString(u)
}

// timerRuns folds each scheduled process's service into its timer's line:
// the last run (when the service last started: not the timer's last
// trigger, which a deploy sets to its own time, see START_TIMERS in
// recipes/steps/services.lua) and how it ended, none when it never ran;
// the service, inactive between runs, gets no line of its own.
func timerRuns(units []UnitStatus) []UnitStatus {
	services := map[string]UnitStatus{}
	for _, u := range units {
		services[u.Unit] = u
	}
	var out []UnitStatus
	for _, u := range units {
		if strings.HasSuffix(u.Unit, ".service") {
			if _, timer := services[strings.TrimSuffix(u.Unit, ".service")+".timer"]; timer {
				continue
			}
		}
		if strings.HasSuffix(u.Unit, ".timer") {
			svc := services[strings.TrimSuffix(u.Unit, ".timer")+".service"]
			if t := svc.started; t != "" && t != "n/a" && svc.startedMon != "" && svc.startedMon != "0" {
				u.LastRun = t
				u.LastResult = svc.result
				if svc.State == "activating" || svc.State == "active" {
					u.LastResult = "running"
				}
			}
			if u.NextRun == "n/a" {
				u.NextRun = ""
			}
		}
		out = append(out, u)
	}
	return out
}

func orText(s, none string) string {
	if s == "" {
		return none
	}
	return s
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

// AppScaleCmd is `raijin app scale PROC COUNT`.
type AppScaleCmd struct {
	Proc  string `arg:"" name:"proc" predictor:"procs" help:"The process: a name of [processes] with replicas."`
	Count int    `arg:"" name:"count" help:"How many instances to run (1 or more)."`
	lockFlags
}

func (c *AppScaleCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if err := checkScale(cfg, c.Proc, c.Count); err != nil {
		return err
	}
	o, err := app.runOpts(cfg, "app scale", "scale", "", false)
	if err != nil {
		return err
	}
	if err := c.lockFlags.apply(&o); err != nil {
		return err
	}
	o.Process, o.Replicas = c.Proc, c.Count
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	app.UI().Printf("app scale of %s done in %.1fs (%s)", cfg.App, rep.Duration.Seconds(), app.statsLine())
	if spec, _ := cfg.Process(c.Proc); spec.Replicas != c.Count {
		app.UI().Printf("%s says replicas = %d for %s: the next deploy runs %d again; set replicas = %d in [processes.%s] to keep %d",
			cfg.File, spec.Replicas, c.Proc, spec.Replicas, c.Count, c.Proc, c.Count)
	}
	return nil
}

// checkScale refuses what app scale cannot do, naming the argument.
func checkScale(cfg *config.Config, proc string, n int) error {
	spec, ok := cfg.Process(proc)
	switch {
	case !ok:
		return errs.Usagef("the processes are: "+strings.Join(cfg.ProcessNames(), ", "), "app scale %s: %s has no process %q", proc, cfg.File, proc)
	case proc == "web":
		return errs.Usagef("run more workers inside the web process (gunicorn --workers), or more hosts with the role web behind a load balancer",
			"app scale web: web runs in one blue/green slot at a time: it has no replicas")
	case spec.Scheduled():
		return errs.Usagef("a scheduled process runs once per event of its schedule; scale a process that runs all the time",
			"app scale %s: %s runs on a schedule (processes.%s.schedule = %q): it has no replicas", proc, proc, proc, spec.Schedule)
	case !spec.Replicated():
		return errs.Usagef(fmt.Sprintf("write [processes.%s] with command and replicas = 1 in %s and deploy: its instances then run from a template unit that app scale can add to", proc, cfg.File),
			"app scale %s: %s has no replicas in %s (it runs as one unit, %s)", proc, proc, cfg.File, cfg.UnitName(proc))
	}
	if err := config.CheckReplicas(n); err != nil {
		return errs.Usagef("to stop the process, run `raijin app stop "+proc+"`", "app scale %s %d: COUNT %v", proc, n, err)
	}
	return nil
}
