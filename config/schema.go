package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// SchemaURL is where editors find the JSON Schema of raijin.toml: the copy
// committed at docs/raijin.schema.json, which a test keeps identical to
// Schema's output. `raijin init` writes it in Taplo's `#:schema` line.
const SchemaURL = schemaURLAt + "main" + schemaURLPath

const (
	schemaURLAt   = "https://raw.githubusercontent.com/raijin-deploy/raijin/"
	schemaURLPath = "/docs/raijin.schema.json"
)

// releaseTag is a release's version: vMAJOR.MINOR.PATCH and nothing after
// it (not a pseudo-version, a pre-release or +dirty).
var releaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

// SchemaURLFor is the schema a raijin of that version checks files with:
// a release's own copy, at its tag, so that a file written by `raijin init`
// is checked against the keys that release knows; else SchemaURL.
func SchemaURLFor(version string) string {
	if releaseTag.MatchString(version) {
		return schemaURLAt + version + schemaURLPath
	}
	return SchemaURL
}

// keyDoc describes one key of raijin.toml for the JSON Schema: the struct
// field gives its type, this its meaning, default and constraints.
type keyDoc struct {
	desc string
	def  any            // the default, nil when there is none to name
	more map[string]any // JSON Schema constraints: enum, pattern, minimum, ...
}

// keyDocs holds every key raijin.toml accepts, dotted from the top
// ("webserver.upstream", "hosts.address"; an array of tables has no index).
// Schema walks the Config struct's toml tags and fails on a key missing
// here, so a new key cannot reach a release without its schema entry.
var keyDocs = map[string]keyDoc{
	"app":                  {desc: "Required. The app's name: directory, unit and site names.", more: map[string]any{"pattern": appRe.String()}},
	"version":              {desc: "The version deployed. Default: [project].version of pyproject.toml, else `git describe --tags --always --dirty`; `deploy --set-version V` overrides. Letters, digits, . _ + -", more: map[string]any{"pattern": versionRe.String()}},
	"installation_mode":    {desc: "How the build is installed on the server: a single binary, or a Python wheel in a virtualenv.", def: ModeBinary, more: map[string]any{"enum": []string{ModeBinary, ModePython}}},
	"build_command":        {desc: "Run locally with `sh -c` in the project directory, RAIJIN_VERSION set."},
	"distfile":             {desc: "Required. The file the build produces; \"{version}\" is replaced."},
	"requirements":         {desc: "python-package only: a pinned requirements file installed next to the wheel."},
	"python_version":       {desc: "python-package only: the Python the virtualenv is made with, such as \"3.12\".", more: map[string]any{"pattern": pythonRe.String()}},
	"release_command":      {desc: "Run on the server as the app's user, in the app dir with its env, after the switch and before the restart; once per deploy with several hosts unless release_on_all_hosts. If it fails the previous version is switched back."},
	"release_on_all_hosts": {desc: "Run release_command on every host instead of once per deploy.", def: false},
	"app_user":             {desc: "The system user the app's processes, release_command and `app exec` run as; created by raijin. Default: the app's name.", more: map[string]any{"pattern": userRe.String()}},
	"versions_to_keep":     {desc: "Versions kept on each server for rollback (the current one included).", def: 5, more: map[string]any{"minimum": 1}},
	"recipe":               {desc: "A Lua recipe loaded after the built-in one. Default: deploy.lua when it exists."},
	"local_config_dir":     {desc: "Your own unit files, Caddy site and hooks.", def: ".raijin"},
	"batch_size":           {desc: "Deploy to N hosts at a time. Default: all at once.", more: map[string]any{"minimum": 0}},
	"phase_timeout":        {desc: "A phase running longer is cancelled: a Go duration such as 10m or 1m30s.", def: "10m"},

	"webserver":                      {desc: "How Caddy reaches the web process."},
	"webserver.upstream":             {desc: "Where the web process listens: HOST:PORT, or unix//ABSOLUTE/PATH.sock.", def: "localhost:8000"},
	"webserver.health_check":         {desc: "A path that must answer 2xx before the new version gets requests.", more: map[string]any{"pattern": "^/"}},
	"webserver.health_check_timeout": {desc: "How long the health check may take: a Go duration.", def: "30s"},
	"webserver.blue_green":           {desc: "Start the new version beside the old one and switch Caddy once it is ready; false restarts in place.", def: true},
	"webserver.drain_timeout":        {desc: "How long the old version keeps running after the switch while Caddy still has requests on their way to it.", def: "30s"},
	"webserver.statics":              {desc: "URL path pattern -> absolute directory that Caddy serves (outside apps_dir), such as \"/static/*\" = \"/var/www/app/static/\"."},

	"processes":          {desc: "Process name -> command (the web process gets the proxy), or a table with command, schedule and replicas. Required: at least one process."},
	"processes.command":  {desc: "The command, run as the app's user from the app directory with the app dir and .venv/bin on PATH and .env loaded."},
	"processes.schedule": {desc: "A systemd calendar event (OnCalendar=): the command runs from a timer, such as \"daily\" or \"*:0/15\"."},
	"processes.replicas": {desc: "How many instances run side by side.", more: map[string]any{"minimum": 1, "maximum": MaxReplicas}},

	"hosts":              {desc: "The servers deployed to. Required: at least one (here or in the destination's file)."},
	"hosts.name":         {desc: "The host's name in raijin's output and for -H. Default: its address.", more: map[string]any{"pattern": hostRe.String()}},
	"hosts.address":      {desc: "Required. Hostname, IP, or a Host alias of ~/.ssh/config."},
	"hosts.domain_name":  {desc: "The Caddy site: a bare name gets HTTPS; \"http://name\" or \":8080\" plain HTTP."},
	"hosts.user":         {desc: "The SSH user. Default: ssh_config's User, else the local user."},
	"hosts.port":         {desc: "The SSH port. Default: ssh_config's Port, else 22.", more: map[string]any{"minimum": 0, "maximum": 65535}},
	"hosts.key_filename": {desc: "The private key to log in with, tried before ssh_config's IdentityFile."},
	"hosts.envfile":      {desc: "A KEY=value file uploaded as the app's .env; a value written $name is a secret. Not with env."},
	"hosts.env":          {desc: "The env file's text inline. Not with envfile."},
	"hosts.apps_dir":     {desc: "Where apps live on the host; a relative path is under the deploy user's home.", def: DefaultAppsDir},
	"hosts.proxy_jump":   {desc: "Jump hosts as ssh_config's ProxyJump: [user@]host[:port], comma separated, or \"none\". Wins over ~/.ssh/config."},
	"hosts.roles":        {desc: "The processes the host runs, plus tags of your own (loadbalancer runs the Caddy balancer). Default: every process."},

	"secrets":              {desc: "Who resolves $name values of env files."},
	"secrets.adapter":      {desc: "The secrets adapter.", def: "system", more: map[string]any{"enum": []string{"system", "1password", "bitwarden", "doppler"}}},
	"secrets.password_env": {desc: "bitwarden: the environment variable that holds the master password. Default: BW_PASSWORD."},

	"hooks":             {desc: "Local shell commands, once per deploy."},
	"hooks.pre_build":   {desc: "Run before the build."},
	"hooks.pre_deploy":  {desc: "Run before the first host is connected to."},
	"hooks.post_deploy": {desc: "Run after the deploy."},

	"aliases": {desc: "Alias -> raijin command line, split into words as a shell would: shell = \"app exec -i bash\" makes `raijin shell` work."},
}

// Schema is the JSON Schema (draft-07) of raijin.toml and of a
// destination's raijin.NAME.toml: every key with its type, default and
// meaning, and no key besides. Keys that Load requires are marked so in
// their descriptions, not in "required", since a destination's file holds
// only what differs.
func Schema() map[string]any {
	s := objectSchema(reflect.TypeFor[Config](), "")
	s["$schema"] = "http://json-schema.org/draft-07/schema#"
	s["$id"] = SchemaURL
	s["title"] = "raijin.toml"
	s["description"] = "How raijin deploys an app: see the raijin.toml reference in raijin's README."
	return s
}

// SchemaJSON is Schema indented, as `raijin config schema` prints it.
func SchemaJSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Schema()); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func objectSchema(t reflect.Type, prefix string) map[string]any {
	props := map[string]any{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			if f.Name == "RawProcesses" {
				panic("config: RawProcesses lost its toml tag")
			}
			continue
		}
		props[name] = keySchema(f.Type, prefix+name)
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

func keySchema(t reflect.Type, key string) map[string]any {
	d, ok := keyDocs[key]
	if !ok {
		panic(fmt.Sprintf("config: raijin.toml key %q has no entry in keyDocs (config/schema.go)", key))
	}
	var s map[string]any
	switch {
	case key == "processes":
		s = processesSchema()
	case t.Kind() == reflect.Struct:
		s = objectSchema(t, key+".")
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		item := objectSchema(t.Elem(), key+".")
		item["required"] = []string{"address"}
		s = map[string]any{"type": "array", "items": item}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		s = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
	case t.Kind() == reflect.String:
		s = map[string]any{"type": "string"}
	case t.Kind() == reflect.Int:
		s = map[string]any{"type": "integer"}
	case t.Kind() == reflect.Bool:
		s = map[string]any{"type": "boolean"}
	default:
		panic(fmt.Sprintf("config: no JSON Schema type for key %q (%s)", key, t))
	}
	s["description"] = d.desc
	if d.def != nil {
		s["default"] = d.def
	}
	for k, v := range d.more {
		s[k] = v
	}
	return s
}

// processesSchema is [processes]: each entry a command, or a table of
// processKeys.
func processesSchema() map[string]any {
	props := map[string]any{}
	types := map[string]string{"command": "string", "schedule": "string", "replicas": "integer"}
	for _, k := range processKeys {
		d, ok := keyDocs["processes."+k]
		if !ok || types[k] == "" {
			panic(fmt.Sprintf("config: process key %q has no entry in keyDocs or no type (config/schema.go)", k))
		}
		desc := d.desc
		if k == "command" {
			// Not in "required": a destination's raijin.NAME.toml may hold
			// only [processes.mail] with replicas = 2.
			desc += " Required in raijin.toml; a destination file may leave it out."
		}
		p := map[string]any{"type": types[k], "description": desc}
		for mk, mv := range d.more {
			p[mk] = mv
		}
		props[k] = p
	}
	return map[string]any{
		"type":          "object",
		"propertyNames": map[string]any{"pattern": procRe.String()},
		"additionalProperties": map[string]any{"oneOf": []any{
			map[string]any{"type": "string", "description": keyDocs["processes.command"].desc},
			map[string]any{"type": "object", "properties": props, "additionalProperties": false},
		}},
	}
}
