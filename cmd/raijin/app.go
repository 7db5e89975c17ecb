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

	"github.com/alecthomas/kong"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/transport"
	"github.com/raijin-deploy/raijin/ui"
)

// Globals are the flags every command takes.
type Globals struct {
	Config           string      `short:"c" default:"raijin.toml" placeholder:"FILE" help:"Read the configuration from FILE."`
	Destination      destination `short:"d" env:"RAIJIN_DESTINATION" placeholder:"NAME" predictor:"destinations" help:"Read raijin.NAME.toml over raijin.toml: its hosts replace the base hosts, its keys override the base keys."`
	Host             []string    `short:"H" placeholder:"NAME" predictor:"hosts" help:"Act on host NAME only (repeatable; default: all hosts)."`
	Role             []string    `short:"R" placeholder:"NAME" predictor:"roles" help:"Act on the hosts with role NAME only (repeatable; with -H: the hosts named that have one of the roles)."`
	Verbose          bool        `short:"v" help:"Echo each remote command, and show Lua tracebacks."`
	JSON             bool        `help:"Write one JSON event per line on stdout."`
	NoColor          bool        `help:"Print no colours (NO_COLOR works too)."`
	AcceptNewHostKey bool        `help:"Trust and record the host key of a server not yet in known_hosts (a changed key is always refused)."`
	Completion       string      `placeholder:"COMPLETION" predictor:"completion" enum:",generate,complete" default:"" help:"Print shell completion source (generate) or answer a completion request (complete)."`
	Version          kongVersion `help:"Print raijin's version."`
}

// destination is -d's value, checked as it is read (from the command line
// or RAIJIN_DESTINATION): a name that cannot name raijin.NAME.toml beside
// raijin.toml is refused. An empty one is refused by load, once kong has
// read both (-d wins over an empty RAIJIN_DESTINATION).
type destination struct {
	name  string
	empty bool // -d "" or RAIJIN_DESTINATION="": most likely an unset variable in a script
}

func (d *destination) Decode(ctx *kong.DecodeContext) error {
	var name string
	if err := ctx.Scan.PopValueInto("destination", &name); err != nil {
		return err
	}
	if name == "" {
		*d = destination{empty: true}
		return nil
	}
	if err := config.CheckDestination(name); err != nil {
		return err
	}
	*d = destination{name: name}
	return nil
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
	stats  remote.Stats
	jumps  transport.Jumps       // the connections to jump hosts, shared by the hosts behind them
	vault  secrets.SecretAdapter // made once per command, see secrets
	askMu  sync.Mutex
	loaded *config.Config // read to expand an alias, see load
}

// secrets is the [secrets] adapter for this command: one per command, so a
// secret is fetched once however many steps need it.
func (a *App) secrets(cfg *config.Config) (secrets.SecretAdapter, error) {
	if a.vault == nil {
		ad, err := secrets.NewSecretAdapter(cfg.Secrets.Adapter, cfg.Secrets.PasswordEnv)
		if err != nil {
			return nil, err
		}
		a.vault = secrets.Cached(ad)
	}
	return a.vault, nil
}

// hideSecrets resolves the secrets of the selected hosts' envs, so that
// what the remote commands print (app logs, app exec, server exec) shows
// them as ******. hint is for when they cannot be resolved.
func (a *App) hideSecrets(cfg *config.Config, hint string) error {
	_, envs, err := hostEnvs(a, cfg, false)
	if err != nil {
		if h := errs.Hint(err); h != "" {
			hint = h + "; " + hint
		}
		return errs.WithCode(errs.Code(err), err, hint)
	}
	for _, env := range envs {
		a.UI().Redactor.Add(env.SecretValues()...)
	}
	return nil
}

// UI returns the output for this command, made once.
func (a *App) UI() *ui.UI {
	if a.ui == nil {
		a.ui = ui.New(a.Stdout, a.Stderr, a.JSON, a.Verbose, a.NoColor)
	}
	return a.ui
}

// load reads the configuration, with the destination's file over it (exit 2
// on any problem), unless expanding an alias already read those files.
func (a *App) load() (*config.Config, error) {
	if a.Destination.empty {
		return nil, errs.Usagef("name one (-d staging), or leave out -d and unset RAIJIN_DESTINATION to read "+a.Config+" alone",
			`the destination is empty (-d "" or RAIJIN_DESTINATION="")`)
	}
	if cfg := a.loaded; cfg != nil && cfg.File == a.Config && cfg.Destination == a.Destination.name {
		a.loaded = nil
		return cfg, nil
	}
	return config.LoadDestination(a.Config, a.Destination.name)
}

// hosts are the selected hosts (-H, -R).
func (a *App) hosts(cfg *config.Config) ([]config.Host, error) {
	hosts, err := cfg.SelectHosts(a.Host)
	if err != nil {
		return nil, err
	}
	return cfg.SelectByRole(hosts, a.Role)
}

// runOpts are the runtime options shared by every command that runs a flow.
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
		o.Connect = func(_ context.Context, h config.Host) (remote.Conn, func(), error) {
			return &remote.Recorder{HostName: h.Name, OnStep: func(_ int, st remote.Step) { dryRunStep(u, h.Name, st) }}, func() {}, nil
		}
	} else {
		o.Connect = engine.SSHConnector(&a.stats, a.AcceptNewHostKey, &a.jumps)
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
	// The message may hold what a server said (a command's stderr, the
	// lock's holder): control characters are shown, not obeyed.
	fmt.Fprintf(a.Stderr, "raijin: %s\n", ui.Printable(u.Redactor.Redact(msg)))
	if h := errs.Hint(err); h != "" {
		fmt.Fprintf(a.Stderr, "  hint: %s\n", ui.Printable(h))
	}
	var he *engine.HostError
	if a.Verbose && errors.As(err, &he) && he.Traceback != "" {
		fmt.Fprintf(a.Stderr, "%s\n", ui.Printable(u.Redactor.Redact(he.Traceback)))
	}
	return code
}

// statsLine sums up what a command cost on the wire.
func (a *App) statsLine() string {
	return fmt.Sprintf("%d SSH connection(s), %d remote commands carrying %d steps, %d uploads, %s sent",
		a.stats.Connections.Load(), a.stats.Commands.Load(), a.stats.Steps.Load(), a.stats.Uploads.Load(), ui.Human(a.stats.BytesSent.Load()))
}

// statsFields are the wire costs for the --json result event.
func (a *App) statsFields() map[string]any {
	return map[string]any{
		"connections": a.stats.Connections.Load(), "remote_commands": a.stats.Commands.Load(),
		"steps": a.stats.Steps.Load(), "uploads": a.stats.Uploads.Load(),
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

// dryRunStep shows one step of --dry-run as the session sends it: commands
// as they would run, files by what they carry (-v adds their content).
func dryRunStep(u *ui.UI, host string, st remote.Step) {
	switch st.Kind {
	case "write":
		what := fmt.Sprintf("%s (mode %04o)", st.Path, st.Mode)
		if st.Root != "" {
			what += " as root"
		}
		u.DryRun(host, "write", what, u.Redactor.Redact(string(st.Content)))
	case "check":
		u.DryRun(host, "check", st.Path+" (make its directory; same SHA-256 already there?)", "")
	case "upload":
		u.DryRun(host, "upload", fmt.Sprintf("%s -> %s (mode %04o)", st.Local, st.Path, st.Mode), "")
	default:
		line := st.Line
		if st.When != "" {
			line = "[only if " + st.When + " changed] " + line
		}
		if st.QueuedBy != "" {
			line = "[queued by " + st.QueuedBy + "] " + line
		}
		u.DryRun(host, "run", u.Redactor.Redact(line), u.Redactor.Redact(string(st.Content)))
	}
}
