package engine

import (
	"path"
	"strings"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/server"
)

// AppDir is the app directory for host h as the server will see it, given
// the deploy user's home.
func AppDir(c *config.Config, h config.Host, home string) string {
	d := h.AppsDir
	if !strings.HasPrefix(d, "/") {
		d = path.Join(home, d)
	}
	return path.Join(d, c.App)
}

// UnitDir is where raijin writes systemd units.
const UnitDir = "/etc/systemd/system"

// LiveMarker is the file whose presence tells Caddy to send the app's
// requests to the green slot (blue otherwise): it is beside the apps' state
// directories, owned by root, and no app name has a dot.
func LiveMarker(c *config.Config) string { return "/var/lib/raijin/" + c.App + ".green" }

// OutMarker is the file whose presence has a web host behind a load
// balancer answer the balancer's health checks with 503: a rolling deploy
// takes the host out of the balancer with it. Beside LiveMarker.
func OutMarker(c *config.Config) string { return "/var/lib/raijin/" + c.App + ".out" }

// MaintenanceMarker is the page the app's site answers every request with
// (503) while it exists: `raijin app maintenance` writes it, `raijin app
// live` deletes it, no reload. Beside LiveMarker.
func MaintenanceMarker(c *config.Config) string {
	return "/var/lib/raijin/" + c.App + ".maintenance.html"
}

// Paths are the server paths a recipe works with.
func Paths(c *config.Config, h config.Host, home, version string) map[string]string {
	app := AppDir(c, h, home)
	return map[string]string{
		"home":        home,
		"apps_dir":    path.Dir(app),
		"app_dir":     app,
		"version_dir": path.Join(app, "v"+version),
		"env":         path.Join(app, ".env"),
		"appenv":      path.Join(app, ".appenv"),
		"apprun":      path.Join(app, ".apprun"),
		"state_dir":   path.Join("/var/lib", c.StateDir()),
		"versions":    path.Join(app, ".versions"),
		"lock":        path.Join(app, ".lock"),
		"audit":       path.Join(app, ".audit.jsonl"),
		"venv":        path.Join(app, ".venv"),
		"unit_dir":    UnitDir,
		"live":        LiveMarker(c),
		"out":         OutMarker(c),
		"maintenance": MaintenanceMarker(c),
		"caddy_site":  "/etc/caddy/conf.d/" + c.App + ".caddy",
		"caddy_admin": server.CaddyAdminSocket,
	}
}
