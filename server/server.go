package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osuser "os/user"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

// Systemctl runs systemctl ACTION UNITS as root. A restart or start first
// clears a unit's failed state, so repeated deploys never hit systemd's start
// limit.
func Systemctl(ctx context.Context, h remote.Host, action string, units ...string) (remote.Result, error) {
	return SystemctlWhen(ctx, h, "", action, units...)
}

// SystemctlWhen is Systemctl, run only if flag when is set (RunOpts.When).
func SystemctlWhen(ctx context.Context, h remote.Host, when, action string, units ...string) (remote.Result, error) {
	cmd := "systemctl " + shell.QuoteAll(append([]string{action}, units...)...)
	switch action {
	case "restart", "start", "try-restart", "reload-or-restart":
		if len(units) > 0 {
			cmd = "systemctl reset-failed " + shell.QuoteAll(units...) + " 2>/dev/null; " + cmd
		}
	}
	return remote.Must(ctx, h, cmd, remote.RunOpts{Sudo: true, When: when})
}

// CaddySite installs a Caddy site file: it makes sure the main Caddyfile
// imports conf.d/*.caddy (once, keeping everything else of it), validates the
// whole configuration with the new file in place, and reloads Caddy. An
// invalid site or a failed reload puts the previous file back. It reports
// whether anything changed; an unchanged file costs no reload.
func CaddySite(ctx context.Context, h remote.Host, sitePath string, content []byte) (bool, error) {
	s := shell.Quote(sitePath)
	script := `set -e
main=/etc/caddy/Caddyfile
[ -d ` + shell.Quote(path.Dir(sitePath)) + ` ] || mkdir -p ` + shell.Quote(path.Dir(sitePath)) + `
touched=
if [ ! -e "$main" ]; then printf '{\n}\n' > "$main"; fi
if ! grep -Eq '^[[:space:]]*import[[:space:]]+(/etc/caddy/)?conf\.d/\*\.caddy' "$main"; then
  printf '\n# added by raijin: one file per app\nimport conf.d/*.caddy\n' >> "$main"; touched=1
fi
t=` + s + `.raijin-$$; trap 'rm -f "$t"' EXIT
(umask 022; cat > "$t")
if cmp -s "$t" ` + s + ` && [ -z "$touched" ] && systemctl is-active -q caddy; then echo same; exit 0; fi
chmod 0644 "$t"
had=; if [ -e ` + s + ` ]; then cp -p ` + s + ` ` + s + `.raijin-prev; had=1; fi
mv -f "$t" ` + s + `; trap - EXIT
restore() { if [ -n "$had" ]; then mv -f ` + s + `.raijin-prev ` + s + `; else rm -f ` + s + `; fi; }
if ! out=$(caddy validate --config "$main" --adapter caddyfile 2>&1); then
  restore; echo "caddy validate rejected the site; the previous file is back:" >&2
  printf '%s\n' "$out" | grep -v '^{"level":"info"' | tail -n 8 >&2; exit 3
fi
if systemctl is-active -q caddy; then act=reload; else act=restart; fi
if ! systemctl $act caddy 2>&1; then
  restore; systemctl $act caddy || true
  echo "systemctl $act caddy failed; the previous site is back:" >&2
  journalctl -u caddy -n 8 --no-pager -o cat >&2 || true; exit 4
fi
rm -f ` + s + `.raijin-prev
echo changed`
	res, err := remote.Must(ctx, h, script, remote.RunOpts{Sudo: true, Stdin: content})
	if err != nil {
		return false, err
	}
	return strings.Contains(res.Stdout, "changed"), nil
}

// ParseVersions reads a .versions file: one version per line, newest first.
func ParseVersions(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ReadVersions lists the recorded versions of the app in appDir, current first.
func ReadVersions(ctx context.Context, h remote.Host, appDir string) ([]string, error) {
	res, err := remote.Must(ctx, h, "cat "+shell.Quote(appDir+"/.versions")+" 2>/dev/null || true", remote.RunOpts{})
	if err != nil {
		return nil, err
	}
	return ParseVersions(res.Stdout), nil
}

// RecordVersion puts version first in .versions (dropping any older line for
// it), atomically.
func RecordVersion(ctx context.Context, h remote.Host, appDir, version string) error {
	f := shell.Quote(appDir + "/.versions")
	cmd := fmt.Sprintf(`{ printf '%%s\n' %s; grep -vxF -- %s %s 2>/dev/null || true; } > %s.tmp && mv -f %s.tmp %s`,
		shell.Quote(version), shell.Quote(version), f, f, f, f)
	_, err := remote.Must(ctx, h, cmd, remote.RunOpts{})
	return err
}

// PrunePlan says which version directories to delete: every v* directory on
// disk that is not among the first keep recorded versions, never current and
// never protect (a version being deployed).
func PrunePlan(recorded, onDisk []string, keep int, current, protect string) (remove []string) {
	kept := map[string]bool{current: true, protect: true}
	for i, v := range recorded {
		if i < keep {
			kept[v] = true
		}
	}
	for _, v := range onDisk {
		if !kept[v] {
			remove = append(remove, v)
		}
	}
	return remove
}

// PruneScript deletes, on the server, the version directories beyond the
// first keep recorded versions (never the current one, never protect) and
// drops them from .versions, printing "pruned VERSION" for each. It is the
// shell form of PrunePlan, so that pruning needs no answer first.
func PruneScript(appDir string, keep int, protect string) string {
	return fmt.Sprintf(`cd %s 2>/dev/null || exit 0
protect=%s; cur=$(head -n 1 .versions 2>/dev/null); kept=$(head -n %d .versions 2>/dev/null); removed=
for d in v*/; do
  [ -d "$d" ] || continue
  v=${d%%/}; v=${v#v}
  [ "$v" = "$cur" ] && continue
  [ -n "$protect" ] && [ "$v" = "$protect" ] && continue
  printf '%%s\n' "$kept" | grep -qxF -- "$v" && continue
  rm -rf -- "v$v" && echo "pruned $v"
  removed="$removed$v
"
done
if [ -n "$removed" ] && [ -f .versions ]; then
  { printf '%%s' "$removed" | grep -vxF -f - .versions || true; } > .versions.tmp && mv -f .versions.tmp .versions
fi
true`, shell.Quote(appDir), shell.Quote(protect), max(keep, 0))
}

// RemoveVersions deletes the given version directories and drops them from
// .versions (a prune whose plan is already known), in one remote command.
func RemoveVersions(ctx context.Context, h remote.Host, appDir string, versions []string) error {
	if len(versions) == 0 {
		return nil
	}
	var dirs, drop []string
	for _, v := range versions {
		dirs = append(dirs, shell.Quote("v"+v))
		drop = append(drop, "-e "+shell.Quote(v))
	}
	_, err := remote.Must(ctx, h, fmt.Sprintf(`cd %s && rm -rf -- %s && { grep -vxF %s .versions > .versions.tmp || true; } && mv -f .versions.tmp .versions`,
		shell.Quote(appDir), strings.Join(dirs, " "), strings.Join(drop, " ")), remote.RunOpts{})
	return err
}

// Prune deletes old version directories beyond keep and drops them from
// .versions, in one remote command. It returns the versions removed (none
// when the command was queued).
func Prune(ctx context.Context, h remote.Host, appDir string, keep int, protect string) ([]string, error) {
	res, err := remote.Must(ctx, h, PruneScript(appDir, keep, protect), remote.RunOpts{})
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, l := range strings.Split(res.Stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "pruned "); ok {
			removed = append(removed, v)
		}
	}
	return removed, nil
}

// LockInfo is what the deploy lock records about its holder.
type LockInfo struct {
	User    string    `json:"user"`
	Machine string    `json:"machine"`
	PID     int       `json:"pid"`
	Since   time.Time `json:"since"`
	Command string    `json:"command"`
	Version string    `json:"version,omitempty"`
	Token   string    `json:"token"`
}

// NewLockInfo describes this process as a lock holder.
func NewLockInfo(command, version string) LockInfo {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if u, err := osuser.Current(); user == "" && err == nil {
		user = u.Username
	}
	return LockInfo{User: user, Machine: host, PID: os.Getpid(), Since: time.Now().UTC().Truncate(time.Second),
		Command: command, Version: version, Token: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// Describe says who holds the lock, for the error message.
func (l LockInfo) Describe() string {
	s := fmt.Sprintf("%s@%s (pid %d, `raijin %s`", l.User, l.Machine, l.PID, l.Command)
	if l.Version != "" {
		s += " of " + l.Version
	}
	return s + ") since " + l.Since.Format(time.RFC3339)
}

// Stale reports whether the holder is a process of this machine that is gone.
func (l LockInfo) Stale() bool {
	host, _ := os.Hostname()
	if l.Machine != host || l.PID <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", l.PID))
	return os.IsNotExist(err)
}

// LockScript takes the lock {appDir}/.lock with mkdir (atomic) and prints
// "locked", or "held" followed by the holder's info.
func LockScript(appDir string, info LockInfo, force bool) string {
	data, _ := json.Marshal(info)
	d := shell.Quote(appDir)
	pre := ""
	if force {
		pre = "rm -rf " + shell.Quote(appDir+"/.lock") + "; "
	}
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p %s; } && %sif mkdir %s 2>/dev/null; then printf '%%s\n' %s > %s; echo locked; else echo held; cat %s 2>/dev/null; echo; fi`,
		d, d, pre, shell.Quote(appDir+"/.lock"), shell.Quote(string(data)), shell.Quote(appDir+"/.lock/info"), shell.Quote(appDir+"/.lock/info"))
}

// CatScript prints the lines of a text file with the shell's own read and
// printf (no process started); nothing when it is missing.
func CatScript(p string) string {
	return fmt.Sprintf(`{ [ -f %s ] && while IFS= read -r l || [ -n "$l" ]; do printf '%%s\n' "$l"; done < %s; true; }`, shell.Quote(p), shell.Quote(p))
}

// ParseLockOutput reads LockScript's output.
func ParseLockOutput(out string) (locked bool, holder LockInfo) {
	first, rest, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if strings.TrimSpace(first) == "locked" {
		return true, LockInfo{}
	}
	json.Unmarshal([]byte(strings.TrimSpace(rest)), &holder)
	return false, holder
}

// UnlockScript removes the lock if this holder still has it.
func UnlockScript(appDir string, info LockInfo) string {
	l := shell.Quote(appDir + "/.lock")
	return fmt.Sprintf(`grep -qF %s %s/info 2>/dev/null && rm -rf %s; true`, shell.Quote(info.Token), l, l)
}
