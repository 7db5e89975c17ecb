package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
)

// exitCode ends raijin with code without printing anything more: the remote
// command already said what went wrong.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &errs.Error{Code: code}
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

// ServerCmd is `raijin server`.
type ServerCmd struct {
	Bootstrap  ServerBootstrapCmd  `cmd:"" help:"Prepare the servers: Caddy (and python3-venv), the conf.d import, the apps directory. Safe to run again."`
	Info       ServerInfoCmd       `cmd:"" help:"Print the system, its resources, its tools and the apps on each server."`
	Exec       ServerExecCmd       `cmd:"" help:"Run a command on the servers (as the deploy user, in its home)."`
	CreateUser ServerCreateUserCmd `cmd:"" name:"create-user" help:"Create a login user that the same SSH keys can log in as."`
}

// ServerBootstrapCmd is `raijin server bootstrap`.
type ServerBootstrapCmd struct {
	Recipe string `placeholder:"FILE" help:"Load this Lua recipe after the built-in one." type:"existingfile"`
	DryRun bool   `help:"Print the commands the bootstrap would run; connect to nothing."`
}

func (b *ServerBootstrapCmd) Run(app *App) error { return bootstrap(app, b.Recipe, b.DryRun) }

// bootstrap runs the recipe's "bootstrap" flow (recipes/server.lua).
func bootstrap(app *App, recipe string, dryRun bool) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	o, err := app.runOpts(cfg, "bootstrap", "bootstrap", recipe, dryRun)
	if err != nil {
		return err
	}
	o.NoLock = true
	counts := &tally{Events: o.Events}
	o.Events = counts
	u := app.UI()
	if dryRun {
		u.Printf("dry run: bootstrap %s (nothing is connected to or changed)", hostNames(o.Hosts))
	} else {
		u.Printf("bootstrap %s", hostNames(o.Hosts))
	}
	rep, err := engine.Run(app.ctx, o)
	if err != nil {
		return err
	}
	if !dryRun {
		u.Printf("bootstrap of %s done in %.1fs: %d changed, %d already in place (%s)", hostNames(o.Hosts),
			rep.Duration.Seconds(), counts.changed.Load(), counts.inPlace.Load(), app.statsLine())
	}
	return nil
}

// tally counts the bootstrap's "changed:" and "in place:" lines on their way
// to the terminal.
type tally struct {
	engine.Events
	changed, inPlace atomic.Int64
}

func (t *tally) Log(host, phase, msg string) {
	switch {
	case strings.HasPrefix(msg, "changed: "):
		t.changed.Add(1)
	case strings.HasPrefix(msg, "in place: "):
		t.inPlace.Add(1)
	}
	t.Events.Log(host, phase, msg)
}

// remote is one open host for the commands below.
type remote struct {
	h      config.Host
	cl     *builtins.Client
	appRel string // the app directory, relative to the login directory (or absolute)
}

func (r *remote) host(app *App) *builtins.RemoteHost {
	u := app.UI()
	return &builtins.RemoteHost{HostName: r.h.Name, Client: r.cl, Observer: echo(app), Redactor: u.Redactor}
}

// echo is who sees the remote commands: the terminal with -v. Without -v
// nothing, so that --json output of these commands is their data alone.
func echo(app *App) builtins.Observer {
	if !app.Verbose {
		return nil
	}
	return app.UI()
}

// eachHost connects to the selected hosts one after the other and calls fn;
// with more than one host each one's output gets a header line.
func eachHost(app *App, cfg *config.Config, fn func(r *remote) error) error {
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	var first error
	for _, h := range hosts {
		if len(hosts) > 1 && !app.JSON {
			fmt.Fprintf(app.Stderr, "── %s ──\n", h.Name)
		}
		cl, err := builtins.Dial(app.ctx, builtins.Target{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User,
			KeyFile: h.KeyFilename, AcceptNew: app.AcceptNewHostKey}, &app.stats)
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", h.Name, err), "")
		}
		err = fn(&remote{h: h, cl: cl, appRel: path.Join(h.AppsDir, cfg.App)})
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
func oneHost(app *App, cfg *config.Config, fn func(r *remote) error) error {
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	if len(hosts) != 1 {
		return errs.Usagef("pick one with -H NAME", "an interactive session needs one host; %s has %d (%s)", cfg.File, len(hosts), hostNames(hosts))
	}
	return eachHost(app, cfg, fn)
}

// run prints a remote command's output as it comes and returns its exit code
// as raijin's.
func (r *remote) run(app *App, cmd string, stdin io.Reader) error {
	if o := echo(app); o != nil {
		o.Command(r.h.Name, cmd)
	}
	code, err := r.cl.Stream(app.ctx, cmd, stdin, app.Stdout, app.Stderr)
	if err != nil {
		return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "")
	}
	return exitCode(code)
}

// interactive runs cmd on a remote terminal wired to raijin's own.
func (r *remote) interactive(app *App, cmd string) error {
	in, ok := app.Stdin.(*os.File)
	if !ok {
		return errs.Usagef("run it from a terminal", "an interactive session needs a terminal on standard input")
	}
	if o := echo(app); o != nil {
		o.Command(r.h.Name, cmd)
	}
	code, err := r.cl.Interactive(app.ctx, cmd, builtins.Terminal{In: in, Out: app.Stdout})
	if err != nil {
		return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "")
	}
	return exitCode(code)
}

// inApp is cmd run in the app directory with .appenv sourced, or a clear
// error when the app is not on the host.
func (r *remote) inApp(app string, cmd string) string {
	d := builtins.Quote(r.appRel)
	return fmt.Sprintf(`cd %s 2>/dev/null || { echo "raijin: %s is not deployed on this host (no %s): run raijin deploy" >&2; exit 1; }; `,
		d, app, strings.ReplaceAll(r.appRel, `"`, ``)) + builtins.ShellCommand(cmd, builtins.RunOpts{Appenv: "./.appenv"})
}

// ServerInfoCmd is `raijin server info`.
type ServerInfoCmd struct{}

const serverInfoScript = `. /etc/os-release 2>/dev/null
echo "system:   ${PRETTY_NAME:-unknown}, $(uname -sr) $(uname -m)"
echo "uptime:   $(uptime -p 2>/dev/null || uptime)"
echo "cpus:     $(nproc 2>/dev/null)"
free -h 2>/dev/null | awk '/^Mem:/ {print "memory:   " $3 " used of " $2}'
df -h / 2>/dev/null | awk 'NR==2 {print "disk /:   " $3 " used of " $2 " (" $5 ")"}'
echo "user:     $(id -un) (home $HOME)$(sudo -n true 2>/dev/null && echo ', sudo without password' || echo ', no passwordless sudo')"
echo "systemd:  $(systemctl --version 2>/dev/null | head -1)"
echo "caddy:    $(caddy version 2>/dev/null | cut -d' ' -f1 || true)$(systemctl is-active caddy 2>/dev/null | sed 's/^/, /')"
echo "python3:  $(python3 --version 2>/dev/null || echo not installed)"
echo "apps in $APPS:"
found=
for d in "$APPS"/*/; do
  [ -d "$d" ] || continue; found=1
  echo "  $(basename "$d")  $(head -1 "$d/.versions" 2>/dev/null || echo '(no version recorded)')"
done
[ -n "$found" ] || echo "  (none)"
`

func (s *ServerInfoCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	return eachHost(app, cfg, func(r *remote) error {
		fmt.Fprintf(app.Stdout, "host:     %s (%s as %s)\n", r.h.Name, r.cl.Addr, r.cl.User)
		return r.run(app, "APPS="+builtins.Quote(r.h.AppsDir)+"\n"+serverInfoScript, nil)
	})
}

// ServerExecCmd is `raijin server exec CMD`.
type ServerExecCmd struct {
	Interactive bool     `short:"i" help:"Run on a terminal (for programs that ask questions, or a shell); one host only."`
	Command     []string `arg:"" name:"cmd" passthrough:"" help:"The command line to run."`
}

func (e *ServerExecCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	line := strings.Join(e.Command, " ")
	if e.Interactive {
		return oneHost(app, cfg, func(r *remote) error { return r.interactive(app, line) })
	}
	return eachHost(app, cfg, func(r *remote) error { return r.run(app, line, app.Stdin) })
}

// ServerCreateUserCmd is `raijin server create-user NAME`.
type ServerCreateUserCmd struct {
	Name         string `arg:"" help:"The login name of the new user."`
	WithPassword bool   `help:"Also give the user a random password (printed once), for sudo and the console."`
	Sudo         bool   `help:"Let the user run sudo without a password (a file in /etc/sudoers.d), as raijin's deploy user needs."`
}

const createUserScript = `set -e
if id -u "$NEW" >/dev/null 2>&1; then echo "in place: user $NEW"; else
  useradd --create-home --shell /bin/bash "$NEW"; echo "changed: user $NEW created"; fi
home=$(getent passwd "$NEW" | cut -d: -f6)
src=$(getent passwd "$BY" | cut -d: -f6)/.ssh/authorized_keys
install -d -m 0700 -o "$NEW" -g "$(id -gn "$NEW")" "$home/.ssh"
dst="$home/.ssh/authorized_keys"; touch "$dst"; added=0
if [ -f "$src" ]; then
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    grep -qxF -- "$line" "$dst" || { printf '%s\n' "$line" >> "$dst"; added=$((added+1)); }
  done < "$src"
fi
chown "$NEW:$(id -gn "$NEW")" "$dst"; chmod 0600 "$dst"
if [ "$added" -gt 0 ]; then echo "changed: $added SSH key(s) of $BY added to $dst"; else echo "in place: SSH keys of $BY in $dst"; fi
if [ "$SUDO" = 1 ]; then
  f="/etc/sudoers.d/raijin-$NEW"; line="$NEW ALL=(ALL:ALL) NOPASSWD: ALL"
  if [ -f "$f" ] && grep -qxF "$line" "$f"; then echo "in place: passwordless sudo for $NEW ($f)"; else
    t=$(mktemp); printf '%s\n' "$line" > "$t"
    if visudo -cqf "$t"; then install -m 0440 "$t" "$f"; rm -f "$t"; else rm -f "$t"; echo "visudo rejected $line" >&2; exit 1; fi
    echo "changed: passwordless sudo for $NEW ($f)"
  fi
fi
if [ "$PW" = 1 ]; then chpasswd; echo "changed: password of $NEW set"; fi
`

func (c *ServerCreateUserCmd) Run(app *App) error {
	if !validUserName(c.Name) {
		return errs.Usagef("use lower-case letters, digits, - and _, starting with a letter", "user name %q is not valid", c.Name)
	}
	cfg, err := app.load()
	if err != nil {
		return err
	}
	return eachHost(app, cfg, func(r *remote) error {
		var stdin []byte
		pw := ""
		if c.WithPassword {
			pw = randomPassword(20)
			// chpasswd reads it on stdin: it never appears in a command line.
			stdin = []byte(c.Name + ":" + pw + "\n")
		}
		env := map[string]string{"NEW": c.Name, "BY": r.cl.User, "SUDO": boolStr(c.Sudo), "PW": boolStr(c.WithPassword)}
		res, err := r.host(app).Run(app.ctx, createUserScript, builtins.RunOpts{Sudo: true, Env: env, Stdin: stdin})
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "")
		}
		fmt.Fprint(app.Stderr, indentLines(res.Stdout, "  "+r.h.Name+" "))
		if res.Code != 0 {
			fmt.Fprint(app.Stderr, res.Stderr)
			return errs.Failedf("the deploy user needs passwordless sudo", "host %s: creating user %s failed (exit %d)", r.h.Name, c.Name, res.Code)
		}
		if pw != "" {
			app.UI().Result("password of %s on %s: %s   (shown once; raijin keeps no copy)", c.Name, r.h.Name, pw)
		}
		return nil
	})
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func validUserName(s string) bool {
	if s == "" || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func randomPassword(n int) string {
	const chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		b[i] = chars[k.Int64()]
	}
	return string(b)
}

func indentLines(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			b.WriteString(pre + l + "\n")
		}
	}
	return b.String()
}

// AppCmd is `raijin app`.
type AppCmd struct {
	Status       AppStatusCmd       `cmd:"" help:"Print each host's current version, URL and the state of every unit."`
	Logs         AppLogsCmd         `cmd:"" help:"Print the journal of the app's processes (all, or PROC)."`
	Exec         AppExecCmd         `cmd:"" help:"Run a command in the app directory with .appenv sourced (the app's env and PATH)."`
	Shell        AppShellCmd        `cmd:"" help:"Open a shell in the app directory with .appenv sourced."`
	Start        AppStartCmd        `cmd:"" help:"Start the app's processes (all, or PROC) and wait until they are healthy."`
	Stop         AppStopCmd         `cmd:"" help:"Stop the app's processes (all, or PROC)."`
	Restart      AppRestartCmd      `cmd:"" help:"Restart the app's processes (all, or PROC) and wait until they are healthy."`
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
	Host     string       `json:"host"`
	Version  string       `json:"version"`
	Previous string       `json:"previous,omitempty"`
	URL      string       `json:"url"`
	Units    []UnitStatus `json:"units"`
}

// AppStatusCmd is `raijin app status`.
type AppStatusCmd struct{}

func (s *AppStatusCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	us, _ := units(cfg, "")
	if cfg.SocketActivated() {
		us = append(us, cfg.App+".socket")
	}
	var all []HostStatus
	down := 0
	err = eachHost(app, cfg, func(r *remote) error {
		cmd := fmt.Sprintf("head -2 %s 2>/dev/null; echo @@; systemctl show --no-pager -p Id -p ActiveState -p SubState -p ActiveEnterTimestamp %s",
			builtins.Quote(r.appRel+"/.versions"), builtins.QuoteAll(us...))
		res, err := builtins.Must(app.ctx, r.host(app), cmd, builtins.RunOpts{})
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "")
		}
		vers, show, _ := strings.Cut(res.Stdout, "@@")
		st := HostStatus{Host: r.h.Name, URL: r.h.URL()}
		if v := builtins.ParseVersions(vers); len(v) > 0 {
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
			if u.State != "active" {
				down++
			}
			st.Units = append(st.Units, u)
		}
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

// AppLogsCmd is `raijin app logs [PROC] [-f]`.
type AppLogsCmd struct {
	Proc   string `arg:"" optional:"" name:"proc" help:"Only this process (a name of [processes])."`
	Follow bool   `short:"f" help:"Keep printing new lines until Ctrl-C (on a terminal; one host only)."`
	Lines  int    `short:"n" default:"100" placeholder:"N" help:"Print the last N lines."`
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
	args := []string{"--no-pager", "-o", "short-iso", "-n", fmt.Sprint(l.Lines)}
	for _, u := range us {
		args = append(args, "-u", u)
	}
	if l.Follow {
		args = append(args, "-f")
		cmd := "sudo -n journalctl " + builtins.QuoteAll(args...)
		return oneHost(app, cfg, func(r *remote) error { return r.interactive(app, cmd) })
	}
	cmd := "sudo -n journalctl " + builtins.QuoteAll(args...)
	return eachHost(app, cfg, func(r *remote) error { return r.run(app, cmd, nil) })
}

// AppExecCmd is `raijin app exec CMD [-i]`.
type AppExecCmd struct {
	Interactive bool     `short:"i" help:"Run on a terminal (a REPL, a shell, a program that asks questions); one host only."`
	Command     []string `arg:"" name:"cmd" passthrough:"" help:"The command line to run in the app directory."`
}

func (e *AppExecCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	line := strings.Join(e.Command, " ")
	if e.Interactive {
		return oneHost(app, cfg, func(r *remote) error { return r.interactive(app, r.inApp(cfg.App, line)) })
	}
	return eachHost(app, cfg, func(r *remote) error { return r.run(app, r.inApp(cfg.App, line), app.Stdin) })
}

// AppShellCmd is `raijin app shell`.
type AppShellCmd struct{}

func (s *AppShellCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	// Not a login shell: /etc/profile would reset the PATH .appenv set.
	return oneHost(app, cfg, func(r *remote) error {
		return r.interactive(app, r.inApp(cfg.App, `exec "${SHELL:-/bin/sh}" -i`))
	})
}

// AppStartCmd is `raijin app start [PROC]`.
type AppStartCmd struct {
	Proc string `arg:"" optional:"" name:"proc" help:"Only this process (a name of [processes])."`
}

func (c *AppStartCmd) Run(app *App) error { return unitAction(app, "start", c.Proc) }

// AppStopCmd is `raijin app stop [PROC]`.
type AppStopCmd struct {
	Proc string `arg:"" optional:"" name:"proc" help:"Only this process (a name of [processes])."`
}

func (c *AppStopCmd) Run(app *App) error { return unitAction(app, "stop", c.Proc) }

// AppRestartCmd is `raijin app restart [PROC]`.
type AppRestartCmd struct {
	Proc string `arg:"" optional:"" name:"proc" help:"Only this process (a name of [processes])."`
}

func (c *AppRestartCmd) Run(app *App) error { return unitAction(app, "restart", c.Proc) }

func unitAction(app *App, action, proc string) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	us, err := units(cfg, proc)
	if err != nil {
		return err
	}
	web := proc == "" || proc == "web"
	all := us
	if web && cfg.SocketActivated() && action != "restart" {
		// A stopped service behind a live socket would start again on the
		// next request: the socket goes with it.
		all = append([]string{cfg.App + ".socket"}, us...)
	}
	past := map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}[action]
	return eachHost(app, cfg, func(r *remote) error {
		h := r.host(app)
		start := time.Now()
		if _, err := builtins.Systemctl(app.ctx, h, action, all...); err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "")
		}
		if action != "stop" {
			hc := builtins.HealthCheck{Units: us, Upstream: cfg.Webserver.Upstream}
			if web {
				hc.Path = cfg.Webserver.HealthCheck
				hc.Timeout, _ = time.ParseDuration(cfg.Webserver.HealthCheckTimeout)
			}
			if err := builtins.WaitHealthy(app.ctx, h, hc); err != nil {
				return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %v", r.h.Name, err), "`raijin app logs` shows more")
			}
		}
		app.UI().Printf("%s: %s %s in %.1fs", r.h.Name, past, strings.Join(all, " "), time.Since(start).Seconds())
		return nil
	})
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
