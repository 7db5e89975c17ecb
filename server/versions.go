package server

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

// ParseVersions reads a .versions file: one version per line, newest first.
// What the server says is checked like user input: a line that is no
// usable version (a path, "..") is left out.
func ParseVersions(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && config.ValidVersion(l) == nil {
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
// it), atomically. Like the audit log and the lock, .versions is the deploy
// user's alone (mode 0600): the app's group reads the app directory.
func RecordVersion(ctx context.Context, h remote.Host, appDir, version string) error {
	f := shell.Quote(appDir + "/.versions")
	cmd := fmt.Sprintf(`(umask 077 && { printf '%%s\n' %s; grep -vxF -- %s %s 2>/dev/null || true; } > %s.tmp) && mv -f %s.tmp %s`,
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
  (umask 077 && { printf '%%s' "$removed" | grep -vxF -f - .versions || true; } > .versions.tmp) && mv -f .versions.tmp .versions
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
	_, err := remote.Must(ctx, h, fmt.Sprintf(`cd %s && rm -rf -- %s && (umask 077 && { grep -vxF %s .versions > .versions.tmp || true; }) && mv -f .versions.tmp .versions`,
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

// CatScript prints the lines of a text file with the shell's own read and
// printf (no process started); nothing when it is missing.
func CatScript(p string) string {
	return fmt.Sprintf(`{ [ -f %s ] && while IFS= read -r l || [ -n "$l" ]; do printf '%%s\n' "$l"; done < %s; true; }`, shell.Quote(p), shell.Quote(p))
}

// envSuffix is what `raijin env push` appends to the version whose code it
// keeps: 1.4.0 -> 1.4.0+env1 -> 1.4.0+env2.
var envSuffix = regexp.MustCompile(`\+env([0-9]+)$`)

// EnvVersion is the version `raijin env push` records on a host whose
// current version is current: the same code with a new .env, numbered after
// every env version of that code already known (known: the recorded
// versions and the version directories), so that a number is never reused
// while a directory of it may remain.
func EnvVersion(current string, known []string) (string, error) {
	base := envSuffix.ReplaceAllString(current, "")
	n := 0
	for _, v := range known {
		m := envSuffix.FindStringSubmatch(v)
		if m == nil || strings.TrimSuffix(v, m[0]) != base {
			continue
		}
		if i, err := strconv.Atoi(m[1]); err == nil && i > n {
			n = i
		}
	}
	v := fmt.Sprintf("%s+env%d", base, n+1)
	if err := config.ValidVersion(v); err != nil {
		return "", err
	}
	return v, nil
}
