package main

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"

	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/ui"
)

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

// ServerInfoCmd is `raijin server info`.
type ServerInfoCmd struct{}

func (s *ServerInfoCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	return eachHost(app, cfg, func(r *openHost) error {
		fmt.Fprintf(app.Stdout, "host:     %s (%s as %s)\n", r.h.Name, r.cl.Addr, r.cl.User)
		return r.run(app, "APPS="+shell.Quote(r.h.AppsDir)+"\n"+serverInfoScript, nil)
	})
}

// ServerExecCmd is `raijin server exec CMD`.
type ServerExecCmd struct {
	Interactive bool     `short:"i" help:"Run on a terminal (for programs that ask questions, or a shell); one host only. Its output is not redacted."`
	Command     []string `arg:"" name:"cmd" passthrough:"" help:"The command line to run."`
}

func (e *ServerExecCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	line := strings.Join(e.Command, " ")
	if e.Interactive {
		return oneHost(app, cfg, func(r *openHost) error { return r.interactive(app, line, false) })
	}
	if err := app.hideSecrets(cfg, "raijin hides the app's secrets in the output, so it needs them"); err != nil {
		return err
	}
	return eachHost(app, cfg, func(r *openHost) error { return r.run(app, line, app.Stdin) })
}

// ServerCreateUserCmd is `raijin server create-user NAME`.
type ServerCreateUserCmd struct {
	Name         string `arg:"" help:"The login name of the new user."`
	WithPassword bool   `help:"Also give the user a random password (printed once), for sudo and the console."`
	Sudo         bool   `help:"Let the user run sudo without a password (a file in /etc/sudoers.d), as raijin's deploy user needs."`
}

func (c *ServerCreateUserCmd) Run(app *App) error {
	if !validUserName(c.Name) {
		return errs.Usagef("use lower-case letters, digits, - and _, starting with a letter", "user name %q is not valid", c.Name)
	}
	cfg, err := app.load()
	if err != nil {
		return err
	}
	return eachHost(app, cfg, func(r *openHost) error {
		var stdin []byte
		pw := ""
		if c.WithPassword {
			pw = randomPassword(20)
			// chpasswd reads it on stdin: it never appears in a command line.
			stdin = []byte(c.Name + ":" + pw + "\n")
		}
		env := map[string]string{"NEW": c.Name, "BY": r.cl.User, "SUDO": boolStr(c.Sudo), "PW": boolStr(c.WithPassword)}
		res, err := r.host(app).Run(app.ctx, createUserScript, remote.RunOpts{Sudo: true, Env: env, Stdin: stdin})
		if err != nil {
			return errs.WithCode(errs.CodeFailed, fmt.Errorf("host %s: %w", r.h.Name, err), "")
		}
		fmt.Fprint(app.Stderr, ui.Printable(indentLines(res.Stdout, "  "+r.h.Name+" ")))
		if res.Code != 0 {
			fmt.Fprint(app.Stderr, ui.Printable(res.Stderr))
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
