package main

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/transport"
)

// exitCode ends raijin with code without printing anything more: the remote
// command already said what went wrong.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &errs.Error{Code: code}
}

// openHost is one open host for the commands below.
type openHost struct {
	h      config.Host
	cl     *transport.Client
	appRel string // the app directory, relative to the login directory (or absolute)
}

// host is the session the command's steps go through.
func (r *openHost) host(app *App) *remote.Session {
	return remote.NewSession(remote.NewShellConn(r.h.Name, r.cl.Addr, r.cl), echo(app), app.UI().Redactor, &app.stats)
}

// echo is who sees the remote commands: the terminal with -v. Without -v
// nothing, so that --json output of these commands is their data alone.
func echo(app *App) remote.Observer {
	if !app.Verbose {
		return nil
	}
	return app.UI()
}

// eachHost connects to the selected hosts one after the other and calls fn;
// with more than one host each one's output gets a header line.
func eachHost(app *App, cfg *config.Config, fn func(r *openHost) error) error {
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	var first error
	for _, h := range hosts {
		if len(hosts) > 1 && !app.JSON {
			fmt.Fprintf(app.Stderr, "── %s ──\n", h.Name)
		}
		cl, err := transport.Dial(app.ctx, engine.SSHTarget(h, app.AcceptNewHostKey, &app.jumps), &app.stats)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err) // exit 1, or 2 for an ssh_config the connection cannot honour
		}
		err = fn(&openHost{h: h, cl: cl, appRel: path.Join(h.AppsDir, cfg.App)})
		cl.Close()
		if err != nil && first == nil {
			first = err
		}
		if app.ctx.Err() != nil {
			break
		}
	}
	return first
}

// oneHost is eachHost for the interactive commands, which need exactly one.
func oneHost(app *App, cfg *config.Config, fn func(r *openHost) error) error {
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	if len(hosts) != 1 {
		return errs.Usagef("pick one with -H NAME", "an interactive session needs one host; %s has %d (%s)", cfg.HostsFile(), len(hosts), hostNames(hosts))
	}
	return eachHost(app, cfg, fn)
}

// run prints a remote command's output as it comes, the secrets that
// hideSecrets resolved hidden, and returns its exit code as raijin's.
func (r *openHost) run(app *App, cmd string, stdin io.Reader) error {
	if o := echo(app); o != nil {
		o.Command(r.h.Name, cmd)
	}
	stdout, stderr := app.UI().Redactor.Writer(app.Stdout), app.UI().Redactor.Writer(app.Stderr)
	code, err := r.cl.Stream(app.ctx, cmd, stdin, stdout, stderr)
	stdout.Close()
	stderr.Close()
	if err != nil {
		return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "")
	}
	return exitCode(code)
}

// interactive runs cmd on a remote terminal wired to raijin's own. With
// hide, the secrets that hideSecrets resolved are hidden in what it prints:
// for a command that only prints (app logs -f). A session that is typed in
// (a shell, a REPL, an editor) is passed on as it is: hiding would hold back
// and rewrite what the terminal draws.
func (r *openHost) interactive(app *App, cmd string, hide bool) error {
	in, ok := app.Stdin.(*os.File)
	if !ok {
		return errs.Usagef("run it from a terminal", "an interactive session needs a terminal on standard input")
	}
	if o := echo(app); o != nil {
		o.Command(r.h.Name, cmd)
	}
	out := app.Stdout
	if hide {
		w := app.UI().Redactor.Writer(app.Stdout)
		defer w.Close()
		out = w
	}
	code, err := r.cl.Interactive(app.ctx, cmd, transport.Terminal{In: in, Out: out})
	if err != nil {
		return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "")
	}
	return exitCode(code)
}

// inApp is cmd run as the app's user, in its sandbox, in the app directory
// with its env (through the .apprun a deploy writes), or a clear error when
// the app is not on the host.
func (r *openHost) inApp(app string, cmd string) string {
	d := shell.Quote(r.appRel)
	shown := strings.ReplaceAll(r.appRel, `"`, ``)
	return fmt.Sprintf(`cd %s 2>/dev/null || { echo "raijin: %s is not deployed on this host (no %s): run raijin deploy" >&2; exit 1; }; `+
		`[ -f .apprun ] || { echo "raijin: %s was deployed by an older raijin (no %s/.apprun): run raijin deploy" >&2; exit 1; }; `,
		d, app, shown, app, shown) + remote.ShellCommand(cmd, remote.RunOpts{App: "./.apprun"})
}

func hostNames(hosts []config.Host) string {
	var n []string
	for _, h := range hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
}
