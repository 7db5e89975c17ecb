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

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

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

// checked is l as read back from a server, which is checked like user
// input: a version that is none is left out, a pid below 0 is 0. (Its text
// is printed through ui.Printable, which shows control characters as
// escapes.)
func (l LockInfo) checked() LockInfo {
	if l.Version != "" && config.ValidVersion(l.Version) != nil {
		l.Version = ""
	}
	l.PID = max(l.PID, 0)
	return l
}

// Stale reports whether the holder is a process of this machine that is gone.
func (l LockInfo) Stale() bool {
	host, _ := os.Hostname()
	if l.Machine != host || l.PID <= 0 {
		return false
	}
	return !processAlive(l.PID)
}

// LockScript takes the lock {appDir}/.lock with mkdir (atomic) and prints
// "locked", or "held" followed by the holder's info. The lock and its info
// are the deploy user's alone (0700, 0600). With breaking, the
// info of a lock read before (--force-unlock, a stale lock taken over), it
// first removes that lock, and only that one: a lock another run took
// meanwhile has another token and stays.
func LockScript(appDir string, info LockInfo, breaking *LockInfo) string {
	data, _ := json.Marshal(info)
	l := shell.Quote(appDir + "/.lock")
	pre := ""
	switch {
	case breaking == nil:
	case breaking.Token == "":
		// A lock without a token (its info unreadable, or an older raijin's)
		// can only be removed as it is.
		pre = "rm -rf " + l + "; "
	default:
		pre = fmt.Sprintf("if grep -qF %s %s/info 2>/dev/null; then rm -rf %s; fi; ", shell.Quote(breaking.Token), l, l)
	}
	return MkdirAppScript(appDir) + ` && ` + fmt.Sprintf(`%sif mkdir -m 0700 %s 2>/dev/null; then (umask 077 && printf '%%s\n' %s > %s); echo locked; else echo held; cat %s 2>/dev/null; echo; fi`,
		pre, l, shell.Quote(string(data)), shell.Quote(appDir+"/.lock/info"), shell.Quote(appDir+"/.lock/info"))
}

// MkdirAppScript makes the app directory appDir when it is missing. The
// apps directory it is in (/opt/raijin by default) is made by root the
// first time, for the deploy user, who owns everything in it.
func MkdirAppScript(appDir string) string {
	d := shell.Quote(appDir)
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p -m 0750 %s 2>/dev/null || { sudo -n install -d -o "$(id -u)" -g "$(id -g)" -m 0755 %s && mkdir -m 0750 %s; }; }`,
		d, d, shell.Quote(path.Dir(appDir)), d)
}

// ParseLockOutput reads LockScript's output.
func ParseLockOutput(out string) (locked bool, holder LockInfo) {
	first, rest, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if strings.TrimSpace(first) == "locked" {
		return true, LockInfo{}
	}
	json.Unmarshal([]byte(strings.TrimSpace(rest)), &holder)
	return false, holder.checked()
}

// UnlockScript removes the lock if this holder still has it.
func UnlockScript(appDir string, info LockInfo) string {
	return unlockScript(appDir, info, "")
}

func unlockScript(appDir string, info LockInfo, before string) string {
	l := shell.Quote(appDir + "/.lock")
	return fmt.Sprintf(`grep -qF %s %s/info 2>/dev/null && { %srm -rf %s; }; true`, shell.Quote(info.Token), l, before, l)
}

// tidyScript removes what a killed run (SIGKILL, a server that lost
// power) left of raijin's temporaries, which each script removes itself
// when it ends: NAME.raijin-PID (and .p, .h, .x, .w, .s beside it: a patch
// on its way), .NAME.raijin-tmp (a link or a copy being replaced, env
// push's new version directory) and .versions.tmp, in appDir, its version
// directories (v*/, not links) and their unit files (.units/, and the app
// directory's .units-current/). Only a holder of the deploy lock runs it (no
// other raijin is writing there then), once its own steps are done; the
// shell's globs find them, so that the usual case, nothing to remove,
// starts no process. A name whose PID part is not a number is not raijin's
// and stays.
func tidyScript(appDir string) string {
	return fmt.Sprintf(`for d in %[1]s %[1]s/.units-current %[1]s/v*/ %[1]s/v*/.units; do
  [ -d "$d" ] || continue
  [ "$d" = %[1]s ] || { [ ! -L "${d%%/}" ] && [ ! -L "${d%%/.units}" ]; } || continue
  for t in "${d%%/}"/.*.raijin-[0-9]* "${d%%/}"/*.raijin-[0-9]* "${d%%/}"/.*.raijin-tmp "${d%%/}"/*.raijin-tmp "${d%%/}"/.versions.tmp; do
    { [ -e "$t" ] || [ -L "$t" ]; } || continue
    case $t in *.raijin-tmp|*/.versions.tmp) ;; *) p=${t##*.raijin-}; p=${p%%.[phxws]}; case $p in *[!0-9]*) continue;; esac;; esac
    rm -rf -- "$t"
  done
done
`, shell.Quote(appDir))
}

// LockStatus reads the deploy lock of the app at rel: held reports whether
// it exists, info what it says about its holder.
func LockStatus(ctx context.Context, h remote.Host, rel string) (held bool, info LockInfo, appDir string, err error) {
	script := fmt.Sprintf(`cd && printf '%%s\n' "$PWD" && cd %s 2>/dev/null || exit 0
if [ -d .lock ]; then echo held; cat .lock/info 2>/dev/null; fi; true`, shell.Quote(rel))
	res, err := remote.Must(ctx, h, script, remote.RunOpts{})
	if err != nil {
		return false, LockInfo{}, "", err
	}
	home, rest, _ := strings.Cut(res.Stdout, "\n")
	appDir = joinHome(home, rel)
	state, data, _ := strings.Cut(rest, "\n")
	if strings.TrimSpace(state) != "held" {
		return false, LockInfo{}, appDir, nil
	}
	json.Unmarshal([]byte(strings.TrimSpace(data)), &info)
	return true, info.checked(), appDir, nil
}

// BreakLock removes the lock that holder holds on the app in appDir (any
// lock, when it had no readable token) and records that in the audit log,
// in one command. It fails if the lock changed hands since it was read.
func BreakLock(ctx context.Context, h remote.Host, appDir string, holder LockInfo, entry AuditEntry) error {
	data, _ := json.Marshal(entry)
	l := shell.Quote(appDir + "/.lock")
	mine := "true"
	if holder.Token != "" {
		mine = fmt.Sprintf("grep -qF %s %s/info 2>/dev/null", shell.Quote(holder.Token), l)
	}
	a := shell.Quote(appDir + "/.audit.jsonl")
	res, err := remote.Must(ctx, h, fmt.Sprintf(`if %s; then rm -rf %s && (umask 077 && printf '%%s\n' %s >> %s) && chmod 0600 %s && echo released; else echo changed; fi`,
		mine, l, shell.Quote(string(data)), a, a), remote.RunOpts{})
	if err != nil {
		return err
	}
	if strings.TrimSpace(res.Stdout) != "released" {
		return &lockChanged{}
	}
	return nil
}

type lockChanged struct{}

func (lockChanged) Error() string {
	return "the lock changed hands while it was being released: see `raijin lock status`"
}
