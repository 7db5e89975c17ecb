package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/template"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
)

// InitCmd is `raijin init`.
type InitCmd struct {
	Profile string `default:"binary" enum:"binary,python,django" help:"What the project is: binary (a Go or other single-binary app), python (a wheel), django (a Django wheel)."`
	App     string `placeholder:"NAME" help:"The app's name (default: the directory's name, made valid)."`
}

// initSchemaURL is the schema of this raijin's version: a release's own
// copy at its tag, else main's (see config.SchemaURLFor).
func initSchemaURL() string {
	info, _ := debug.ReadBuildInfo()
	return config.SchemaURLFor(moduleVersion(version, info))
}

type initVars struct {
	App     string // the app name
	Pkg     string // the Python package name (app with _ for -)
	Profile string
	Schema  string // the #:schema URL: this release's copy, else main's
}

// initTOMLHead starts with Taplo's #:schema line: editors with a TOML
// language server check the file against raijin's JSON Schema as it is
// typed.
const initTOMLHead = `#:schema {{.Schema}}
# raijin.toml: how raijin deploys {{.App}}. Every key is in README.md
# ("raijin.toml reference"); an editor with Taplo checks it against the
# schema above. Fill in [[hosts]] below, then run ` + "`raijin up`" + `
# (bootstrap the server, then deploy) or ` + "`raijin deploy`" + `.

app = "{{.App}}"                   # [a-z][a-z0-9-]{0,62}: names the units, the Caddy site, the app directory
version = "0.1.0"                  # or remove it: pyproject.toml's version, else ` + "`git describe`" + `; deploy --set-version overrides
`

const initTOMLBinary = `installation_mode = "binary"
# Runs on this machine with sh -c; $RAIJIN_VERSION holds the version.
build_command = "CGO_ENABLED=0 go build -ldflags \"-X main.version=$RAIJIN_VERSION\" -o dist/{{.App}} ."
distfile = "dist/{{.App}}"         # must exist after the build; "{version}" is replaced
# release_command = "{{.App}} migrate"   # on the server, as the app's user, in the app directory with its env
`

const initTOMLPython = `installation_mode = "python-package"
build_command = "python3 -m build --wheel"   # or "uv build --wheel"
distfile = "dist/{{.Pkg}}-{version}-py3-none-any.whl"
# requirements = "requirements.txt"  # pinned dependencies, installed next to the wheel
# python_version = "3.12"
`

const initTOMLDjango = `installation_mode = "python-package"
build_command = "python3 -m build --wheel"   # or "uv build --wheel"
distfile = "dist/{{.Pkg}}-{version}-py3-none-any.whl"
# requirements = "requirements.txt"  # pinned dependencies, installed next to the wheel
# On the server, as the app's user, in the app directory with its env (the .env, the venv):
release_command = "django-admin migrate --noinput"
`

const initTOMLTail = `versions_to_keep = 5               # versions kept on the server for rollback
recipe = ".raijin/deploy.lua"      # this project's Lua changes to the deploy (an example, all comments)
local_config_dir = ".raijin"       # your own unit files, Caddy site and hooks (see raijin app export-config)

[webserver]
upstream = "localhost:8000"        # where the web process listens; "unix//run/{{.App}}.sock" for socket activation
# health_check = "/up"             # a path that must answer 2xx before the new version gets requests
# blue_green = false               # restart in place, for an app that cannot listen on $PORT
{{- if eq .Profile "django"}}
# statics = { "/static/*" = "/var/www/{{.App}}/static/" }   # served by Caddy (STATIC_ROOT, readable by caddy)
{{- end}}

[processes]                        # name -> command, run in the app directory; "web" gets the proxy
{{- if eq .Profile "binary"}}
web = "{{.App}}"                   # the binary, by the distfile's name; listens on $PORT (raijin sets it)
# worker = "{{.App}} worker"
{{- else if eq .Profile "python"}}
web = "{{.App}}"                   # your wheel's console script ([project.scripts]), on PATH from the venv;
                                   # or "gunicorn --bind 127.0.0.1:$PORT {{.Pkg}}.wsgi:application"
# worker = "python -m {{.Pkg}}.worker"
{{- else}}
web = "gunicorn --bind 127.0.0.1:$PORT {{.Pkg}}.wsgi"
# worker = "django-admin qcluster"
{{- end}}
# mail = { command = "...", replicas = 2 }          # instances side by side: {{.App}}-mail@1.service, @2
# report = { command = "...", schedule = "daily" }  # a systemd timer (OnCalendar=) runs it, not a deploy

# Staging beside production: raijin.staging.toml holds what differs (its own [[hosts]],
# and another app name if it shares a server with this one); ` + "`raijin -d staging deploy`" + `.
[[hosts]]
name = "prod"
address = ""                       # FILL IN: the server's name or IP, or a Host alias of ~/.ssh/config
domain_name = ""                   # FILL IN: "app.example.com" (automatic HTTPS), "http://203.0.113.10" or ":8080"
user = "deploy"                    # the SSH login; it needs passwordless sudo (raijin server create-user makes one)
envfile = ".env.prod"              # the app's environment on this host; "$name" values are secrets

[secrets]
adapter = "system"                 # system (this machine's environment) | 1password | bitwarden | doppler
# password_env = "BW_PASSWORD"     # bitwarden: the variable holding the master password

# [hooks]                          # shell commands on this machine, once per deploy
# pre_build = "go test ./..."
# post_deploy = "echo deployed"

# [aliases]                        # raijin NAME runs the expansion
# shell = "app exec -i bash"
`

const initEnv = `# The environment of {{.App}} on the prod host: uploaded as .env (mode 0600).
# A value that starts with $ is a secret name, resolved on this machine by
# the [secrets] adapter at deploy time (system: the environment variable
# SECRET_KEY for $secret-key). ` + "`raijin printenv`" + ` shows the result, redacted.
# PORT is not set here: raijin gives the web process its own (8000, or 8001
# while the new version starts beside the old one).
{{- if eq .Profile "django"}}
DJANGO_SETTINGS_MODULE={{.Pkg}}.settings
DJANGO_SECRET_KEY=$django-secret-key
ALLOWED_HOSTS=*
{{- else}}
# API_TOKEN=$api-token
{{- end}}
`

const initDeployLua = `-- .raijin/deploy.lua: this project's changes to the built-in recipe. raijin
-- loads it after its own (recipe = in raijin.toml). ` + "`raijin recipe show`" + `
-- lists the phases and where each part comes from. Everything below is an
-- example: uncomment what you need.
local raijin = require("raijin")

-- Run a command after the release step, in the app directory, with the app's
-- environment:
-- raijin.after("release", function(ctx)
--   ctx.host:run("{{.App}} warm-cache", { app = true })
-- end)

-- Replace a step, keeping the built-in one inside:
-- raijin.override("services", function(ctx, default)
--   default(ctx)
--   raijin.log("services restarted on " .. ctx.host.name)
-- end)

-- Add a step to ` + "`raijin server bootstrap`" + ` (and ` + "`raijin up`" + `):
-- raijin.after("packages", function(ctx)
--   ctx.host:run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3", { sudo = true })
-- end)
`

const initHook = `-- .raijin/hooks/after_done.lua: a hook file. before_<phase>.lua and
-- after_<phase>.lua run around that phase and receive ctx; an executable
-- file without .lua runs as a command on this machine. This one runs once
-- the deploy is done, on this machine.
local ctx = ...
local raijin = require("raijin")
raijin.log("deployed " .. ctx.app .. " " .. ctx.version)
`

func (c *InitCmd) Run(app *App) error {
	tomlPath := app.Config
	dir := filepath.Dir(tomlPath)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	name := c.App
	if name == "" {
		name = appName(filepath.Base(abs))
	} else if appName(name) != name {
		return errs.Usagef("use lower-case letters, digits and -, starting with a letter", "--app %q is not a valid app name", name)
	}
	v := initVars{App: name, Pkg: strings.ReplaceAll(name, "-", "_"), Profile: c.Profile, Schema: initSchemaURL()}
	body := initTOMLBinary
	switch c.Profile {
	case "python":
		body = initTOMLPython
	case "django":
		body = initTOMLDjango
	}
	files := []struct {
		path string
		tpl  string
		mode os.FileMode
	}{
		{tomlPath, initTOMLHead + body + initTOMLTail, 0o644},
		{filepath.Join(dir, ".env.prod"), initEnv, 0o600},
		{filepath.Join(dir, ".raijin", "deploy.lua"), initDeployLua, 0o644},
		{filepath.Join(dir, ".raijin", "hooks", "after_done.lua"), initHook, 0o644},
	}
	var exist []string
	for _, f := range files {
		if _, err := os.Stat(f.path); err == nil {
			exist = append(exist, f.path)
		}
	}
	if len(exist) > 0 {
		return errs.Usagef("move them away (or edit them) and run raijin init again", "raijin init writes nothing over existing files: %s", strings.Join(exist, ", "))
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := template.Must(template.New(f.path).Parse(f.tpl)).Execute(&b, v); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, b.Bytes(), f.mode); err != nil {
			return err
		}
		app.UI().Printf("wrote %s", f.path)
	}
	app.UI().Printf("next: fill in address and domain_name in %s, then run `raijin up`", tomlPath)
	return nil
}

// appName makes a valid app name ([a-z][a-z0-9-]{0,62}) from s.
func appName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-")
	for n != "" && (n[0] < 'a' || n[0] > 'z') {
		n = n[1:]
	}
	if n == "" {
		n = "app"
	}
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}
