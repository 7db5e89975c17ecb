package server

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

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
// this holder still has it, after tidyScript), in one remote command. When the app directory
// is gone (raijin down), the line goes to {apps_dir}/.audit.jsonl instead, so
// that removing an app is on record too. The log is the deploy user's alone
// (mode 0600, also when an older raijin made it readable).
//
// The log keeps the last AuditKeep lines: once it grows past AuditTrimAt,
// the newest AuditKeep are written to a temporary file that replaces it (a
// rename: a reader sees the old log or the new one, never half of one).
// Trimming in steps, not at every line, keeps the usual cost one append.
func FinishScript(appDir string, lock LockInfo, entry AuditEntry) string {
	data, _ := json.Marshal(entry)
	d := shell.Quote(appDir)
	// A trim that fails (a full disk) leaves the log whole and the command
	// successful: its line is written.
	trim := fmt.Sprintf(`[ -z "$ok" ] || [ "$(wc -l < "$f")" -le %d ] || { (umask 077 && tail -n %d "$f" > "$f.raijin-tmp") && mv -f "$f.raijin-tmp" "$f"; } || rm -f "$f.raijin-tmp"`, AuditTrimAt, AuditKeep)
	return fmt.Sprintf(`f=%s/.audit.jsonl; [ -d %s ] || f=%s/.audit.jsonl; ok=1; (umask 077 && printf '%%s\n' %s >> "$f") && chmod 0600 "$f" || ok=; %s; %s; [ -n "$ok" ]`,
		d, d, shell.Quote(path.Dir(appDir)), shell.Quote(string(data)), trim, unlockScript(appDir, lock, tidyScript(appDir)))
}

// AuditKeep is how many lines the audit log keeps (about 400 kB): years of
// deploys of a busy app, and a bound on what `raijin releases` reads.
const AuditKeep = 1000

// AuditTrimAt is the length past which the audit log is trimmed to AuditKeep.
const AuditTrimAt = AuditKeep + 100

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
