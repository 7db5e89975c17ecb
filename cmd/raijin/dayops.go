package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/kong"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/ui"
)

// EnvCmd is `raijin env`.
type EnvCmd struct {
	Push EnvPushCmd `cmd:"" help:"Give the serving version the env file as it reads now (secrets resolved again), with a zero-downtime restart: no build, no upload of the code."`
}

// EnvPushCmd is `raijin env push`.
type EnvPushCmd struct {
	lockFlags
}

func (e *EnvPushCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	o, err := e.opts(app, cfg, "env push", "env_push")
	if err != nil {
		return err
	}
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	for _, h := range rep.Hosts {
		if h.Version != "" && !h.Balancer {
			app.UI().Printf("%s", envPushLine(h))
		}
	}
	app.UI().Printf("env push of %s done in %.1fs (%s)", cfg.App, rep.Duration.Seconds(), app.statsLine())
	return nil
}

// envPushLine is what env push says of a host it took to h.Version: how
// to get the previous env back, while its version is still there (the
// run's prune may have deleted it, with versions_to_keep = 1).
func envPushLine(h engine.HostResult) string {
	if h.Previous == "" || slices.Contains(h.Pruned, h.Previous) {
		return fmt.Sprintf("%s: %s serves the new env (the previous version was pruned: no rollback to it)", h.Host, h.Version)
	}
	return fmt.Sprintf("%s: %s serves the new env (%s keeps the previous one: `raijin rollback` brings it back)", h.Host, h.Version, h.Previous)
}

// AppMaintenanceCmd is `raijin app maintenance [--message TEXT]`.
type AppMaintenanceCmd struct {
	Message givenText `placeholder:"TEXT" help:"The text of the maintenance page (plain text, shown HTML-escaped)."`
	lockFlags
}

// givenText is a flag's text, and whether it was given at all (an empty
// value given is an error, not the default).
type givenText struct {
	text  string
	given bool
}

func (g *givenText) Decode(ctx *kong.DecodeContext) error {
	g.given = true
	return ctx.Scan.PopValueInto("text", &g.text)
}

// maxMessage bounds the maintenance message: a page, not a document.
const maxMessage = 2000

// checkMessage refuses a maintenance message that is empty when given, too
// long, or holds control characters other than line breaks.
func checkMessage(m string, given bool) error {
	hint := `write one or more sentences, e.g. --message "Back at 14:00 UTC."`
	switch {
	case given && strings.TrimSpace(m) == "":
		return errs.Usagef(hint+"; leave out --message for the default text", "--message: the text is empty")
	case !utf8.ValidString(m):
		return errs.Usagef(hint, "--message: the text is not UTF-8")
	case len(m) > maxMessage:
		return errs.Usagef(hint, "--message: %d bytes, at most %d", len(m), maxMessage)
	}
	for _, r := range m {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return errs.Usagef(hint, "--message: the text holds the control character %U", r)
		}
	}
	return nil
}

func (m *AppMaintenanceCmd) Run(app *App) error {
	if err := checkMessage(m.Message.text, m.Message.given); err != nil {
		return err
	}
	return maintenanceFlow(app, "app maintenance", "maintenance", m.Message.text, m.lockFlags)
}

// AppLiveCmd is `raijin app live`.
type AppLiveCmd struct {
	lockFlags
}

func (l *AppLiveCmd) Run(app *App) error {
	return maintenanceFlow(app, "app live", "live", "", l.lockFlags)
}

func maintenanceFlow(app *App, command, flow, message string, l lockFlags) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	o, err := l.opts(app, cfg, command, flow)
	if err != nil {
		return err
	}
	o.Message = message
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	what := "is live again"
	if flow == "maintenance" {
		what = "is in maintenance: its site answers 503 with the page (`raijin app live` ends it)"
	}
	app.UI().Printf("%s %s on %s (%.1fs)", cfg.App, what, hostNames(o.Hosts), rep.Duration.Seconds())
	return nil
}

// AppCatCmd is `raijin app cat unit|site|env`.
type AppCatCmd struct {
	What   string `arg:"" name:"what" predictor:"cat" help:"What to print: unit (the systemd units), site (the Caddy site) or env (the .env, values redacted)."`
	Reveal bool   `help:"With env: print the values as they are on the server."`
}

// catWhat are the things app cat prints.
var catWhat = []string{"unit", "site", "env"}

func (c *AppCatCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	switch c.What {
	case "unit", "site", "env":
	default:
		return errs.Usagef("`raijin app cat unit`, `site` or `env`", "app cat %q: WHAT must be one of %s", c.What, strings.Join(catWhat, ", "))
	}
	if c.Reveal && c.What != "env" {
		return errs.Usagef("leave out --reveal, or `raijin app cat env --reveal`", "--reveal is for `app cat env`")
	}
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	if len(config.AppHosts(hosts)) == 0 {
		return errs.Usagef("select a host that runs the app (-H, -R)", "app cat: the hosts selected are load balancers, which run no app")
	}
	return eachHost(app, cfg, func(r *openHost) error {
		if r.h.IsBalancer() {
			app.UI().Printf("%s is a load balancer: no app there", r.h.Name)
			return nil
		}
		var cmd string
		switch c.What {
		case "env":
			return catEnv(app, cfg, r, c.Reveal)
		case "unit":
			us, _, templates := statusUnits(cfg, r.h)
			us = append(us, templates...)
			// Each unit that is installed, with its drop-ins; systemctl cat
			// prints its path first.
			cmd = "for u in " + shell.QuoteAll(us...) + `; do systemctl cat --no-pager -- "$u" 2>/dev/null && echo; done; true`
		case "site":
			site := "/etc/caddy/conf.d/" + cfg.App + ".caddy"
			cmd = "cat -- " + shell.Quote(site) + " 2>/dev/null || sudo -n cat -- " + shell.Quote(site)
		}
		res, err := remote.Must(app.ctx, r.host(app), cmd, remote.RunOpts{})
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "is the app deployed there? `raijin releases`")
		}
		// Data shows what the server sent, not obeys it (control characters).
		app.UI().Data(res.Stdout)
		return nil
	})
}

// catEnv prints the .env on r's host: as it is with reveal, else with only
// the local env file's own plain values shown (secrets.RedactedAgainst).
func catEnv(app *App, cfg *config.Config, r *openHost, reveal bool) error {
	res, err := remote.Must(app.ctx, r.host(app), "cat -- "+shell.Quote(r.appRel+"/.env"), remote.RunOpts{})
	if err != nil {
		return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "is the app deployed there? `raijin releases`")
	}
	if reveal {
		// Asked for: as it is (its control characters shown, not obeyed).
		fmt.Fprint(app.Stdout, ui.Printable(res.Stdout))
		if !strings.HasSuffix(res.Stdout, "\n") && res.Stdout != "" {
			fmt.Fprintln(app.Stdout)
		}
		return nil
	}
	local, err := engine.ReadEnv(cfg, r.h)
	if err != nil {
		return err
	}
	onServer, err := secrets.ParseEnv(".env", res.Stdout)
	if err != nil {
		// Its text might be anything: nothing of it is shown.
		return errs.Failedf("`raijin app cat env --reveal` prints it as it is", "host %s: %s/.env does not read as an env file", r.h.Name, r.appRel)
	}
	app.UI().Data(fmt.Sprintf("# host %s: %s/.env (values not in %s hidden; --reveal shows them)\n", r.h.Name, r.appRel, local.Source))
	app.UI().Data(onServer.RedactedAgainst(local))
	return nil
}

// Log filters of `raijin app logs`, checked here so that journalctl gets
// only values it understands, each as one argument (--since=VALUE).

var sinceDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$`)

// journalSince turns --since into journalctl's: a duration back from now
// (30m, 2h, 1h30m), a date or date and time (2026-12-06, "2026-12-06 14:00"),
// or today, yesterday.
func journalSince(s string) (string, error) {
	switch s {
	case "today", "yesterday", "now":
		return s, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return fmt.Sprintf("-%ds", int64(d.Seconds())), nil
	}
	if sinceDate.MatchString(s) {
		layout := "2006-01-02 15:04:05"[:len(s)]
		if _, err := time.Parse(layout, strings.Replace(s, "T", " ", 1)); err == nil {
			return strings.Replace(s, "T", " ", 1), nil
		}
	}
	return "", errs.Usagef(`use a duration back from now (30m, 2h), a date (2026-12-06), a date and time ("2026-12-06 14:00"), today or yesterday`,
		"--since %q: not a time journalctl is given", s)
}

// journalLevels are journalctl's priorities, most severe first, and the
// other names raijin takes for them.
var journalLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
var levelAliases = map[string]string{"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg"}

// journalLevel turns --level into journalctl's -p: a priority name (the
// level and more severe ones), or FROM..TO.
func journalLevel(s string) (string, error) {
	one := func(p string) (string, bool) {
		p = strings.ToLower(p)
		if a, ok := levelAliases[p]; ok {
			p = a
		}
		for _, l := range journalLevels {
			if l == p {
				return l, true
			}
		}
		return "", false
	}
	from, to, isRange := strings.Cut(s, "..")
	a, okA := one(from)
	b, okB := one(to)
	switch {
	case !isRange && okA:
		return a, nil
	case isRange && okA && okB:
		return a + ".." + b, nil
	}
	return "", errs.Usagef("use one of "+strings.Join(journalLevels, ", ")+" (the level and the more severe ones), or a range such as err..warning",
		"--level %q: not a log level", s)
}

// maxGrep bounds --grep: a pattern, not a file.
const maxGrep = 500

// journalGrep checks --grep: journalctl matches it (a PCRE2 pattern, case
// insensitive when all lower case) against each message.
func journalGrep(s string) (string, error) {
	hint := `give a pattern such as "timeout|refused"`
	if s == "" {
		return "", errs.Usagef(hint, "--grep: the pattern is empty")
	}
	if len(s) > maxGrep || !utf8.ValidString(s) {
		return "", errs.Usagef(hint, "--grep: not UTF-8, or longer than %d bytes", maxGrep)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", errs.Usagef(hint, "--grep %q: holds the control character %U", s, r)
		}
	}
	return s, nil
}

// filters are the journalctl arguments of --since, --grep and --level.
func (l *AppLogsCmd) filters() ([]string, error) {
	var args []string
	if l.Since != "" {
		v, err := journalSince(l.Since)
		if err != nil {
			return nil, err
		}
		args = append(args, "--since="+v)
	}
	if l.Grep.given {
		v, err := journalGrep(l.Grep.text)
		if err != nil {
			return nil, err
		}
		args = append(args, "--grep="+v)
	}
	if l.Level != "" {
		v, err := journalLevel(l.Level)
		if err != nil {
			return nil, err
		}
		args = append(args, "--priority="+v)
	}
	return args, nil
}
