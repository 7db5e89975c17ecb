package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/ui"
)

// Globals are the flags every command takes.
type Globals struct {
	Config           string      `short:"c" default:"raijin.toml" placeholder:"FILE" help:"Read the configuration from FILE."`
	Host             []string    `short:"H" placeholder:"NAME" help:"Act on host NAME only (repeatable; default: all hosts)."`
	Verbose          bool        `short:"v" help:"Echo each remote command, and show Lua tracebacks."`
	JSON             bool        `help:"Write one JSON event per line on stdout."`
	NoColor          bool        `help:"Print no colours (NO_COLOR works too)."`
	AcceptNewHostKey bool        `help:"Trust and record the host key of a server not yet in known_hosts (a changed key is always refused)."`
	Completion       string      `placeholder:"COMPLETION" enum:",generate,complete" default:"" help:"Print shell completion source (generate) or answer a completion request (complete)."`
	Version          kongVersion `help:"Print raijin's version."`
}

// App is what every command's Run receives: the globals, streams, and the
// context that Ctrl-C cancels.
type App struct {
	*Globals
	ctx    context.Context
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	ui     *ui.UI
	stats  builtins.Stats
	vault  builtins.SecretAdapter // made once per command, see secrets
	askMu  sync.Mutex
}

// secrets is the [secrets] adapter for this command: one per command, so a
// secret is fetched once however many steps need it.
func (a *App) secrets(cfg *config.Config) (builtins.SecretAdapter, error) {
	if a.vault == nil {
		ad, err := builtins.NewSecretAdapter(cfg.Secrets.Adapter, cfg.Secrets.PasswordEnv)
		if err != nil {
			return nil, err
		}
		a.vault = builtins.Cached(ad)
	}
	return a.vault, nil
}

// UI returns the output for this command, made once.
func (a *App) UI() *ui.UI {
	if a.ui == nil {
		a.ui = ui.New(a.Stdout, a.Stderr, a.JSON, a.Verbose, a.NoColor)
	}
	return a.ui
}

// load reads the configuration (exit 2 on any problem).
func (a *App) load() (*config.Config, error) {
	return config.Load(a.Config)
}

// hosts are the selected hosts (-H).
func (a *App) hosts(cfg *config.Config) ([]config.Host, error) {
	return cfg.SelectHosts(a.Host)
}

// runOpts are the engine options shared by every command that runs a flow.
func (a *App) runOpts(cfg *config.Config, command, flow, recipeFile string, dryRun bool) (engine.Options, error) {
	hosts, err := a.hosts(cfg)
	if err != nil {
		return engine.Options{}, err
	}
	u := a.UI()
	timeout, err := time.ParseDuration(cfg.PhaseTimeout)
	if err != nil {
		return engine.Options{}, errs.Usagef("use a duration such as \"10m\"", "%s: phase_timeout %q: %v", cfg.File, cfg.PhaseTimeout, err)
	}
	o := engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, recipeFile), Command: command, Flow: flow,
		Hosts: hosts, DryRun: dryRun, Events: u, Redactor: u.Redactor, PhaseTimeout: timeout,
		BatchSize: cfg.BatchSize, Observer: u, Stats: &a.stats,
	}
	if o.Secrets, err = a.secrets(cfg); err != nil {
		return engine.Options{}, err
	}
	if dryRun {
		o.Connect = func(_ context.Context, h config.Host) (builtins.Host, func(), error) {
			rec := &builtins.RecordingHost{HostName: h.Name, Redactor: u.Redactor}
			rec.OnAction = func(act builtins.Action) {
				switch act.Kind {
				case "run":
					u.DryRun(h.Name, "run", act.Command, act.Content)
				case "upload":
					u.DryRun(h.Name, "upload", fmt.Sprintf("%s -> %s (mode %04o)", act.Local, act.Path, act.Mode), "")
				case "write":
					what := fmt.Sprintf("%s (mode %04o)", act.Path, act.Mode)
					if act.Sudo {
						what += " as root"
					}
					u.DryRun(h.Name, "write", what, act.Content)
				}
			}
			return rec, func() {}, nil
		}
	} else {
		// The engine's Batcher echoes each step; the connection itself stays quiet.
		o.Connect = engine.SSHConnector(&a.stats, nil, u.Redactor, a.AcceptNewHostKey)
	}
	return o, nil
}

// fail prints err once, with its hint, and returns its exit code.
func (a *App) fail(err error) int {
	u := a.UI()
	code := errs.Code(err)
	msg := err.Error()
	if msg == "" {
		return code // a remote command's own exit code: it said what failed
	}
	if u.JSON {
		f := a.statsFields()
		f["ok"], f["error"], f["exit_code"] = false, u.Redactor.Redact(msg), code
		if h := errs.Hint(err); h != "" {
			f["hint"] = h
		}
		u.Final(f)
		return code
	}
	fmt.Fprintf(a.Stderr, "raijin: %s\n", u.Redactor.Redact(msg))
	if h := errs.Hint(err); h != "" {
		fmt.Fprintf(a.Stderr, "  hint: %s\n", h)
	}
	var he *engine.HostError
	if a.Verbose && errors.As(err, &he) && he.Traceback != "" {
		fmt.Fprintf(a.Stderr, "%s\n", u.Redactor.Redact(he.Traceback))
	}
	return code
}

// statsLine sums up what a command cost on the wire.
func (a *App) statsLine() string {
	return fmt.Sprintf("%d SSH connection(s), %d remote commands carrying %d steps, %d uploads, %s sent",
		a.stats.Connections.Load(), a.stats.Commands.Load(), a.stats.Steps.Load(), a.stats.SFTPOps.Load(), ui.Human(a.stats.BytesSent.Load()))
}

// statsFields are the wire costs for the --json result event.
func (a *App) statsFields() map[string]any {
	return map[string]any{
		"connections": a.stats.Connections.Load(), "remote_commands": a.stats.Commands.Load(),
		"steps": a.stats.Steps.Load(), "uploads": a.stats.SFTPOps.Load(),
		"bytes_sent": a.stats.BytesSent.Load(), "bytes_received": a.stats.BytesRecv.Load(),
	}
}

// askStale asks on a terminal whether to take over a stale deploy lock (one
// host at a time); without a terminal the answer is no, and the lock error
// names --force-unlock.
func (a *App) askStale(question string) bool {
	a.askMu.Lock()
	defer a.askMu.Unlock()
	return a.confirm(question, "--force-unlock") == nil
}

// confirm asks on a terminal; without one it fails and names the flag.
func (a *App) confirm(question, flag string) error {
	f, ok := a.Stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return errs.Usagef("pass "+flag+" to confirm without a terminal", "%s: no terminal to ask for confirmation", question)
	}
	fmt.Fprintf(a.Stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(f, &answer)
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errs.Failedf("", "cancelled")
	}
	return nil
}
