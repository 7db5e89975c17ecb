package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

// AuditEntry is one line of {app_dir}/.audit.jsonl: one command that held the
// deploy lock on a host, and how it ended.
type AuditEntry struct {
	Time     time.Time      `json:"time"`
	App      string         `json:"app"`
	Command  string         `json:"command"`
	User     string         `json:"user"`
	Machine  string         `json:"machine,omitempty"`
	From     string         `json:"from,omitempty"`
	To       string         `json:"to,omitempty"`
	Result   string         `json:"result"` // ok | failed
	Phase    string         `json:"phase,omitempty"`
	Error    string         `json:"error,omitempty"`
	Duration float64        `json:"duration_s"`
	Details  map[string]any `json:"details,omitempty"`
}

// Who is "user@machine".
func (e AuditEntry) Who() string {
	if e.Machine == "" {
		return e.User
	}
	return e.User + "@" + e.Machine
}

// FinishScript appends entry to the audit log and releases the lock (if
// this holder still has it), in one remote command. When the app directory
// is gone (raijin down), the line goes to {apps_dir}/.audit.jsonl instead, so
// that removing an app is on record too.
func FinishScript(appDir string, lock LockInfo, entry AuditEntry) string {
	data, _ := json.Marshal(entry)
	d := shell.Quote(appDir)
	return fmt.Sprintf(`f=%s/.audit.jsonl; [ -d %s ] || f=%s/.audit.jsonl; ok=1; printf '%%s\n' %s >> "$f" || ok=; %s; [ -n "$ok" ]`,
		d, d, shell.Quote(path.Dir(appDir)), shell.Quote(string(data)), UnlockScript(appDir, lock))
}

// ParseAudit reads audit lines, skipping any that are not JSON (a line cut
// short by a full disk must not hide the rest).
func ParseAudit(text string) []AuditEntry {
	var out []AuditEntry
	for _, l := range strings.Split(text, "\n") {
		var e AuditEntry
		if l = strings.TrimSpace(l); l == "" || json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Release is one version of an app on a host.
type Release struct {
	Version  string      `json:"version"`
	Current  bool        `json:"current"`
	OnDisk   bool        `json:"on_disk"`
	Recorded bool        `json:"recorded"`
	Last     *AuditEntry `json:"last,omitempty"` // the last successful command that made it current
}

// Releases is what `raijin releases` shows for one host.
type Releases struct {
	Host     string       `json:"host"`
	AppDir   string       `json:"app_dir"`
	Exists   bool         `json:"exists"`
	Releases []Release    `json:"releases"`
	Lock     *LockInfo    `json:"lock,omitempty"`
	Audit    []AuditEntry `json:"audit,omitempty"` // the newest lines, oldest first
}

// auditTail bounds how much of the audit log `raijin releases` reads.
const auditTail = 1000

// ReadReleases reads, in one remote command, the recorded versions, the
// version directories on disk, the lock and the tail of the audit log of the
// app at rel (relative to the user's home, or absolute).
func ReadReleases(ctx context.Context, h remote.Host, rel string) (Releases, error) {
	script := fmt.Sprintf(`cd && printf '%%s\n' "$PWD" && cd %s 2>/dev/null || exit 0
echo @@versions; cat .versions 2>/dev/null
echo @@disk; for d in v*/; do [ -d "$d" ] && printf '%%s\n' "${d%%/}"; done
echo @@lock; if [ -d .lock ]; then cat .lock/info 2>/dev/null || echo '{}'; fi
echo @@audit; tail -n %d .audit.jsonl 2>/dev/null; true`, shell.Quote(rel), auditTail)
	res, err := remote.Must(ctx, h, script, remote.RunOpts{})
	if err != nil {
		return Releases{}, err
	}
	out := Releases{Host: h.Name()}
	home, rest, _ := strings.Cut(res.Stdout, "\n")
	out.AppDir = joinHome(home, rel)
	if !strings.HasPrefix(rest, "@@") {
		return out, nil
	}
	out.Exists = true
	sections := map[string]string{}
	for _, part := range strings.Split(rest, "@@")[1:] {
		name, body, _ := strings.Cut(part, "\n")
		sections[name] = body
	}
	if l := strings.TrimSpace(sections["lock"]); l != "" {
		var li LockInfo
		json.Unmarshal([]byte(l), &li)
		out.Lock = &li
	}
	out.Audit = ParseAudit(sections["audit"])
	recorded := ParseVersions(sections["versions"])
	disk := map[string]bool{}
	var diskOrder []string
	for _, d := range ParseVersions(sections["disk"]) {
		if v, ok := strings.CutPrefix(d, "v"); ok && d != "v*" {
			disk[v] = true
			diskOrder = append(diskOrder, v)
		}
	}
	seen := map[string]bool{}
	for i, v := range recorded {
		if seen[v] {
			continue
		}
		seen[v] = true
		out.Releases = append(out.Releases, Release{Version: v, Current: i == 0, OnDisk: disk[v], Recorded: true})
	}
	sort.Strings(diskOrder)
	for _, v := range diskOrder {
		if !seen[v] {
			out.Releases = append(out.Releases, Release{Version: v, OnDisk: true})
		}
	}
	for i := range out.Releases {
		r := &out.Releases[i]
		for j := len(out.Audit) - 1; j >= 0; j-- {
			e := out.Audit[j]
			if e.To == r.Version && e.Result == "ok" {
				r.Last = &out.Audit[j]
				break
			}
		}
	}
	return out, nil
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
	return true, info, appDir, nil
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
	res, err := remote.Must(ctx, h, fmt.Sprintf(`if %s; then rm -rf %s && printf '%%s\n' %s >> %s && echo released; else echo changed; fi`,
		mine, l, shell.Quote(string(data)), shell.Quote(appDir+"/.audit.jsonl")), remote.RunOpts{})
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

// joinHome resolves rel against the user's home, as `cd && cd rel` does.
func joinHome(home, rel string) string {
	if path.IsAbs(rel) {
		return path.Clean(rel)
	}
	return path.Join(strings.TrimSpace(home), rel)
}
