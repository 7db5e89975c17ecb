package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

// auditTail bounds how much of the audit log `raijin releases` reads.
const auditTail = 1000

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
		li = li.checked()
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

// joinHome resolves rel against the user's home, as `cd && cd rel` does.
func joinHome(home, rel string) string {
	if path.IsAbs(rel) {
		return path.Clean(rel)
	}
	return path.Join(strings.TrimSpace(home), rel)
}
