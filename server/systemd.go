package server

import (
	"context"

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
