package engine

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
	"github.com/raijin-deploy/raijin/shell"
)

// hostFacts are what the engine learns of a host when it connects.
type hostFacts struct {
	home, user, appDir string
	// legacy: where an older raijin kept this app, when it is still there
	// and apps_dir is the default.
	legacy   string
	versions []string
	dirs     []string // the versions with a v{version} directory
	// live is the web slot Caddy sends requests to ("blue" or "green"),
	// liveUnit whether that slot has a unit file (it has run), and oldWeb
	// whether the web unit of an older raijin ({app}.service, one slot
	// only) is still installed.
	live             string
	liveUnit, oldWeb bool
}

// current is the version current on the host, "" before the first deploy.
func (f hostFacts) current() string {
	if len(f.versions) == 0 {
		return ""
	}
	return f.versions[0]
}

// prepare learns the deploy user's home, takes the deploy lock and reads
// .versions, in one remote command. While another run holds the lock, it
// waits up to --lock-wait; a stale lock it takes over when told to.
func (r *runner) prepare(ctx context.Context, host *remote.Session, h config.Host, lock server.LockInfo, nphases int) (hostFacts, error) {
	if r.opts.DryRun {
		// The script is shown as it would run; its answer is made up.
		if _, err := host.Run(ctx, r.connectScript(h, lock, nil), remote.RunOpts{}); err != nil {
			return hostFacts{}, err
		}
		return dryRunFacts(r.opts.Config, h), nil
	}
	deadline := time.Now().Add(r.opts.LockWait)
	waited := false
	// breaking: the lock that was read and is to be removed (the holder's
	// token guards it), after --force-unlock or a stale lock taken over.
	var breaking *server.LockInfo
	for {
		f, lockLine, err := r.readFacts(ctx, host, h, lock, breaking)
		if err != nil {
			return hostFacts{}, err
		}
		locked, holder := server.ParseLockOutput(lockLine)
		if locked {
			if f.legacy != "" {
				r.opts.Events.Log(h.Name, "connect", "note: "+f.legacy+" holds this app as an older raijin installed it (in the deploy user's home, running as the deploy user); raijin now keeps apps in "+f.appDir+", run by their own user. The old directory is left as it was: its versions cannot be rolled back to from here; delete it once the app runs well from "+f.appDir+" (or set apps_dir = \""+config.LegacyAppsDir+"\" to keep deploying there)")
			}
			return f, nil
		}
		if r.opts.ForceUnlock && breaking == nil {
			r.opts.Events.Log(h.Name, "connect", "--force-unlock: taking over the lock of "+holder.Describe())
			breaking = &holder
			continue
		}
		if time.Now().Before(deadline) {
			if !waited {
				r.opts.Events.Log(h.Name, "connect", "waiting up to "+r.opts.LockWait.String()+" for the deploy lock, held by "+holder.Describe())
				waited = true
			}
			select {
			case <-ctx.Done():
				return f, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		held, stale := r.lockHeld(f, holder, nphases)
		if stale && breaking == nil && r.takeOver(h, holder, held.Msg) {
			breaking = &holder
			continue
		}
		return f, held
	}
}

// dryRunFacts are what --dry-run assumes of a host it does not connect to.
func dryRunFacts(c *config.Config, h config.Host) hostFacts {
	user := h.User
	if user == "" {
		user = "deploy"
	}
	home := "/home/" + user
	if user == "root" {
		home = "/root"
	}
	return hostFacts{home: home, user: user, appDir: AppDir(c, h, home), live: "blue"}
}

// readFacts runs the connect script: the deploy user's home and name, the
// lock (taken, or its holder: lockLine, for server.ParseLockOutput),
// .versions and the version directories.
func (r *runner) readFacts(ctx context.Context, host *remote.Session, h config.Host, lock server.LockInfo, breaking *server.LockInfo) (f hostFacts, lockLine string, err error) {
	res, err := remote.Must(ctx, host, r.connectScript(h, lock, breaking), remote.RunOpts{})
	if err != nil {
		return hostFacts{}, "", err
	}
	head, vers, _ := strings.Cut(res.Stdout, "@@versions")
	lines := strings.SplitN(strings.TrimSpace(head), "\n", 3)
	if len(lines) < 3 {
		return hostFacts{}, "", fmt.Errorf("unexpected answer from the server: %q", res.Stdout)
	}
	vers, dirs, _ := strings.Cut(vers, "@@dirs")
	// After the directories, one line per fact found: "@@legacy",
	// "@@live-green", "@@live-unit", "@@old-web".
	flags := map[string]bool{}
	var dirLines []string
	for _, l := range strings.Split(dirs, "\n") {
		if strings.HasPrefix(l, "@@") {
			flags[l] = true
		} else {
			dirLines = append(dirLines, l)
		}
	}
	dirs = strings.Join(dirLines, "\n")
	if !path.IsAbs(lines[0]) || strings.ContainsAny(lines[0], "\x00") || lines[1] == "" {
		return hostFacts{}, "", fmt.Errorf("unexpected answer from the server: home %q, user %q", lines[0], lines[1])
	}
	f = hostFacts{home: path.Clean(lines[0]), user: lines[1], versions: server.ParseVersions(vers)}
	for _, d := range server.ParseVersions(dirs) {
		if v, ok := strings.CutPrefix(d, "v"); ok && v != "" {
			f.dirs = append(f.dirs, v)
		}
	}
	f.appDir = AppDir(r.opts.Config, h, f.home)
	f.live, f.liveUnit, f.oldWeb = "blue", flags["@@live-unit"], flags["@@old-web"]
	if flags["@@live-green"] {
		f.live = "green"
	}
	if flags["@@legacy"] {
		f.legacy = path.Join(f.home, config.LegacyAppsDir, r.opts.Config.App)
	}
	return f, lines[2], nil
}

// connectScript learns the facts and takes the lock (unless the flow runs
// without it) in host h's app directory. With the default apps_dir, it also
// looks for the app where raijin kept it before (config.LegacyAppsDir).
func (r *runner) connectScript(h config.Host, lock server.LockInfo, breaking *server.LockInfo) string {
	rel := path.Join(h.AppsDir, r.opts.Config.App)
	legacy := ""
	if h.AppsDir == config.DefaultAppsDir {
		old := shell.Quote(path.Join(config.LegacyAppsDir, r.opts.Config.App) + "/.versions")
		legacy = "; [ -f " + old + " ] && echo @@legacy"
	}
	take := server.LockScript(rel, lock, breaking)
	if r.opts.NoLock {
		take = "echo locked"
	}
	// Shell built-ins only, where they do: every process started on a
	// small server is felt when many hosts deploy at once.
	return "cd && printf '%s\\n' \"$PWD\" \"${USER:-$(id -un)}\" && " + take +
		"; echo '@@versions'; " + server.CatScript(rel+"/.versions") + "; echo '@@dirs'; " +
		"for d in " + shell.Quote(rel) + "/v*/; do [ -d \"$d\" ] && d=${d%/} && printf '%s\\n' \"${d##*/}\"; done" + legacy +
		"; if [ -e " + shell.Quote(LiveMarker(r.opts.Config)) + " ]; then echo @@live-green; [ -e " + shell.Quote(UnitDir+"/"+r.opts.Config.SlotUnit("green")) + " ] && echo @@live-unit;" +
		" else [ -e " + shell.Quote(UnitDir+"/"+r.opts.Config.SlotUnit("blue")) + " ] && echo @@live-unit; fi" +
		// An older raijin's web unit: {app}.service, generated for this
		// app (another app's worker may have that name).
		"; l=; { IFS= read -r l < " + shell.Quote(UnitDir+"/"+r.opts.Config.App+".service") + "; } 2>/dev/null; case \"$l\" in " +
		shell.Quote("# Generated by raijin for "+r.opts.Config.App+" (process web)") + "*) echo @@old-web;; esac; true"
}

// lockHeld is the error for a lock another run holds (exit 3), and whether
// that lock is stale: its process is gone, or it is older than any run holds
// a lock.
func (r *runner) lockHeld(f hostFacts, holder server.LockInfo, nphases int) (*errs.Error, bool) {
	msg := "the deploy lock " + f.appDir + "/.lock is held by " + holder.Describe()
	hint := "wait for it (--lock-wait 5m), or if that deploy is dead: raijin lock release"
	// No run holds the lock longer than its phases' timeouts plus the undo
	// (2 minutes) and the release: an older lock was left by a dead run,
	// wherever that ran.
	maxHold := time.Duration(nphases)*r.opts.PhaseTimeout + 5*time.Minute
	stale := holder.Stale()
	if stale {
		msg += "; that process is gone, so the lock is stale"
	} else if !holder.Since.IsZero() && time.Since(holder.Since) > maxHold {
		stale = true
		msg += fmt.Sprintf("; no run holds it that long (%d phase(s) × phase_timeout %s), so the lock is stale", nphases, r.opts.PhaseTimeout)
	}
	if stale {
		hint = "take it over with --force-unlock (or raijin lock release)"
	}
	return &errs.Error{Code: errs.CodeLocked, Msg: msg, Hint: hint}, stale
}

// takeOver asks (TakeOverStale: a terminal) whether to take over a stale
// lock.
func (r *runner) takeOver(h config.Host, holder server.LockInfo, msg string) bool {
	if r.opts.TakeOverStale == nil || !r.opts.TakeOverStale(fmt.Sprintf("host %s: %s. Take it over?", h.Name, msg)) {
		return false
	}
	r.opts.Events.Log(h.Name, "connect", "taking over the stale lock of "+holder.Describe())
	return true
}
