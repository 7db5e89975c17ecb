package main

import (
	"context"
	"fmt"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
)

// LockCmd is `raijin lock status|release`.
type LockCmd struct {
	Status  LockStatusCmd  `cmd:"" help:"Show who holds the deploy lock on each host."`
	Release LockReleaseCmd `cmd:"" help:"Remove the deploy lock on each host, whoever holds it (after a deploy died)."`
}

// LockStatusCmd is `raijin lock status`.
type LockStatusCmd struct{}

func (l *LockStatusCmd) Run(app *App) error { return lockCommand(app, false) }

// LockReleaseCmd is `raijin lock release`.
type LockReleaseCmd struct{}

func (l *LockReleaseCmd) Run(app *App) error { return lockCommand(app, true) }

type lockState struct {
	Host   string           `json:"host"`
	AppDir string           `json:"app_dir"`
	Held   bool             `json:"held"`
	Holder *server.LockInfo `json:"holder,omitempty"`
}

func lockCommand(app *App, release bool) error {
	command := "lock status"
	if release {
		command = "lock release"
	}
	_, o, err := app.hostOpts(command)
	if err != nil {
		return err
	}
	me := server.NewLockInfo(command, "")
	all, err := engine.EachHost(app.ctx, o, func(ctx context.Context, h config.Host, host *remote.Session, rel string) (lockState, error) {
		held, info, dir, err := server.LockStatus(ctx, host, rel)
		st := lockState{Host: h.Name, AppDir: dir, Held: held}
		if err != nil || !held {
			return st, err
		}
		st.Holder = &info
		if release {
			entry := server.AuditEntry{Time: me.Since, App: o.Config.App, Command: command, User: me.User, Machine: me.Machine,
				Result: "ok", Details: map[string]any{"holder": info.Describe()}}
			err = server.BreakLock(ctx, host, dir, info, entry)
		}
		return st, err
	})
	if err != nil {
		return err
	}
	u := app.UI()
	if app.JSON {
		u.JSONValue(all)
		return nil
	}
	for _, st := range all {
		switch {
		case !st.Held && release:
			u.Result("%s: no lock on %s", st.Host, st.AppDir)
		case !st.Held:
			u.Result("%s: free (%s/.lock)", st.Host, st.AppDir)
		case release:
			u.Result("%s: released the lock held by %s", st.Host, holderText(*st.Holder))
		default:
			u.Result("%s: held by %s", st.Host, holderText(*st.Holder))
		}
	}
	return nil
}

func holderText(l server.LockInfo) string {
	if l.User == "" && l.PID == 0 {
		return "an unknown holder (no info in the lock)"
	}
	s := l.Describe() + fmt.Sprintf(" (%s ago)", time.Since(l.Since).Round(time.Second))
	if l.Stale() {
		s += "; that process is gone"
	}
	return s
}
