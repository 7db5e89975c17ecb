// Package config reads and validates raijin.toml once, with errors that name the
// file, the line and the key, and resolves the defaults every command relies on.
package config

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/shlex"
	"github.com/pelletier/go-toml/v2"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/transport/proxyjump"
)

// Config is the resolved raijin.toml. Recipes see it read-only as ctx.config.
type Config struct {
	App              string    `toml:"app" luar:"app" json:"app"`
	Version          string    `toml:"version" luar:"version" json:"version"`
	InstallationMode string    `toml:"installation_mode" luar:"installation_mode" json:"installation_mode"`
	BuildCommand     string    `toml:"build_command" luar:"build_command" json:"build_command"`
	Distfile         string    `toml:"distfile" luar:"distfile" json:"distfile"`
	Requirements     string    `toml:"requirements" luar:"requirements" json:"requirements"`
	PythonVersion    string    `toml:"python_version" luar:"python_version" json:"python_version"`
	ReleaseCommand   string    `toml:"release_command" luar:"release_command" json:"release_command"`
	AppUser          string    `toml:"app_user" luar:"app_user" json:"app_user"`
	VersionsToKeep   int       `toml:"versions_to_keep" luar:"versions_to_keep" json:"versions_to_keep"`
	Recipe           string    `toml:"recipe" luar:"recipe" json:"recipe"`
	LocalConfigDir   string    `toml:"local_config_dir" luar:"local_config_dir" json:"local_config_dir"`
	BatchSize        int       `toml:"batch_size" luar:"batch_size" json:"batch_size"`
	PhaseTimeout     string    `toml:"phase_timeout" luar:"phase_timeout" json:"phase_timeout"`
	Webserver        Webserver `toml:"webserver" luar:"webserver" json:"webserver"`
	// Processes is each process's command (name -> command), whichever
	// form [processes] gives it in; ProcessSpecs holds the rest of a
	// table form (schedule, replicas): see Process.
	Processes    map[string]string  `toml:"-" luar:"processes" json:"processes"`
	ProcessSpecs map[string]Process `toml:"-" luar:"process_specs" json:"process_specs"`
	RawProcesses map[string]any     `toml:"processes" luar:"-" json:"-"`
	Hosts        []Host             `toml:"hosts" luar:"hosts" json:"hosts"`
	Secrets      Secrets            `toml:"secrets" luar:"secrets" json:"secrets"`
	Hooks        Hooks              `toml:"hooks" luar:"hooks" json:"hooks"`
	Aliases      map[string]string  `toml:"aliases" luar:"aliases" json:"aliases"`

	// ReleaseOnAllHosts runs release_command on every host of a deploy; by
	// default it runs once, on one host (see ReleaseHost), before any host
	// takes the new version.
	ReleaseOnAllHosts bool `toml:"release_on_all_hosts" luar:"release_on_all_hosts" json:"release_on_all_hosts"`

	// Set by Load, not by the file.
	File            string              `toml:"-" json:"file"`
	Destination     string              `toml:"-" json:"destination,omitempty"`      // -d NAME
	DestinationFile string              `toml:"-" json:"destination_file,omitempty"` // raijin.NAME.toml, read over File
	Dir             string              `toml:"-" json:"dir"`
	VersionSource   string              `toml:"-" json:"version_source"`
	Sources         map[string]string   `toml:"-" json:"sources"`
	layers          []layer             // raijin.toml, then the destination's file: see locate
	tree            map[string]any      // what the files set, merged: see sets
	hostsFrom       int                 // the layer whose [[hosts]] are used
	aliasArgs       map[string][]string // each alias split into words, see Alias
}

// Webserver is the [webserver] table.
type Webserver struct {
	Upstream           string `toml:"upstream" luar:"upstream" json:"upstream"`
	HealthCheck        string `toml:"health_check" luar:"health_check" json:"health_check"`
	HealthCheckTimeout string `toml:"health_check_timeout" luar:"health_check_timeout" json:"health_check_timeout"`
	// BlueGreen: a deploy starts the new web process beside the old one, on
	// the other slot's port or socket, and switches Caddy to it once it is
	// ready (true, the default); false restarts it in place, for an app
	// that cannot listen where raijin tells it.
	BlueGreen bool `toml:"blue_green" luar:"blue_green" json:"blue_green"`
	// DrainTimeout: after the switch, how long the old web process may keep
	// running while Caddy still has requests on their way to it.
	DrainTimeout string            `toml:"drain_timeout" luar:"drain_timeout" json:"drain_timeout"`
	Statics      map[string]string `toml:"statics" luar:"statics" json:"statics"`
}

// Host is one [[hosts]] entry.
type Host struct {
	Name        string `toml:"name" luar:"name" json:"name"`
	Address     string `toml:"address" luar:"address" json:"address"`
	DomainName  string `toml:"domain_name" luar:"domain_name" json:"domain_name"`
	User        string `toml:"user" luar:"user" json:"user"`
	Port        int    `toml:"port" luar:"port" json:"port"`
	KeyFilename string `toml:"key_filename" luar:"key_filename" json:"key_filename"`
	Envfile     string `toml:"envfile" luar:"envfile" json:"envfile"`
	Env         string `toml:"env" luar:"env" json:"env"`
	AppsDir     string `toml:"apps_dir" luar:"apps_dir" json:"apps_dir"`
	// ProxyJump is ssh_config's ProxyJump for this host: jump hosts
	// [user@]host[:port], comma separated, or "none"; "" leaves it to
	// ~/.ssh/config.
	ProxyJump string `toml:"proxy_jump" luar:"proxy_jump" json:"proxy_jump"`
	// Roles: the processes the host runs (names of [processes]), and free
	// tags for recipes and -R. Empty in the file: every process (Resolve
	// fills them in; RolesSet says whether the file set them).
	Roles    []string `toml:"roles" luar:"roles" json:"roles"`
	RolesSet bool     `toml:"-" luar:"roles_set" json:"roles_set"`
}

// Secrets is the [secrets] table.
type Secrets struct {
	Adapter     string `toml:"adapter" luar:"adapter" json:"adapter"`
	PasswordEnv string `toml:"password_env" luar:"password_env" json:"password_env"`
}

// Hooks is the [hooks] table: local shell commands run once per deploy.
type Hooks struct {
	PreBuild   string `toml:"pre_build" luar:"pre_build" json:"pre_build"`
	PreDeploy  string `toml:"pre_deploy" luar:"pre_deploy" json:"pre_deploy"`
	PostDeploy string `toml:"post_deploy" luar:"post_deploy" json:"post_deploy"`
}

const (
	ModeBinary = "binary"
	ModePython = "python-package"
)

var (
	appRe     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	procRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	hostRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	pythonRe  = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
	userRe    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// DefaultAppsDir is where apps live on a host unless apps_dir says
// otherwise: outside every home, which the hardened units hide
// (ProtectHome=).
const DefaultAppsDir = "/opt/raijin"

// LegacyAppsDir was the default apps_dir before apps ran as their own
// users, relative to the deploy user's home.
const LegacyAppsDir = ".local/share/raijin"

// ValidVersion reports whether v can name a version directory: no '/', '..',
// whitespace or shell metacharacters.
func ValidVersion(v string) error {
	if !versionRe.MatchString(v) || strings.Contains(v, "..") {
		return fmt.Errorf("version %q is not usable as a directory name: use letters, digits and . _ + - (starting with a letter or digit, no '..')", v)
	}
	return nil
}

// Load reads path, applies defaults and validates. Every error names the file
// and, where it can, the line and key.
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

func readConfigFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errs.Usagef("run `raijin init` to write one, or pass -c FILE", "%s: no such file", path)
		}
		return nil, errs.Usagef("", "%s: %v", path, err)
	}
	return data, nil
}

// Parse decodes and validates the contents of a raijin.toml read from path.
func Parse(path string, data []byte) (*Config, error) {
	return parseLayers("", []layer{{path, data}})
}

// parseLayers decodes and validates raijin.toml (the first layer) with
// destination's file over it, if any.
func parseLayers(destination string, layers []layer) (*Config, error) {
	c, tree, hostsFrom, err := decodeLayers(layers)
	if err != nil {
		return nil, err
	}
	path := layers[0].file
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errs.Usagef("", "%s: %v", path, err)
	}
	c.File = path
	c.Dir = filepath.Dir(abs)
	c.Sources = map[string]string{}
	c.layers, c.tree, c.hostsFrom = layers, tree, hostsFrom
	if destination != "" {
		c.Destination, c.DestinationFile = destination, layers[len(layers)-1].file
	}
	if err := c.resolve(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeError(path string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) && len(sm.Errors) > 0 {
		var lines []string
		for _, e := range sm.Errors {
			row, _ := e.Position()
			lines = append(lines, fmt.Sprintf("%s:%d: unknown key %q", path, row, strings.Join(e.Key(), ".")))
		}
		return errs.Usagef("check the spelling against the keys listed in the README (raijin.toml reference)", "%s", strings.Join(lines, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		where := fmt.Sprintf("%s:%d:%d", path, row, col)
		if key != "" {
			where += ": key " + key
		}
		return errs.Usagef("fix the TOML syntax or the value's type at that line", "%s: %s", where, plainDecodeError(de.Error()))
	}
	return errs.Usagef("", "%s: %v", path, err)
}

var typeErrRe = regexp.MustCompile(`^toml: cannot (?:decode|store) TOML (\w+) into (?:struct field \S+ of type |a Go value of type )(.+)$`)

// plainDecodeError words go-toml's type errors for the user, without Go's
// struct and type names: "expected a string, got an integer".
func plainDecodeError(msg string) string {
	m := typeErrRe.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := map[string]string{"string": "a string", "int": "an integer", "bool": "true or false"}[m[2]]
	switch {
	case want != "":
	case strings.HasPrefix(m[2], "map["), strings.HasPrefix(m[2], "config."):
		want = "a table"
	case m[2] == "[]string":
		want = "an array of strings"
	case strings.HasPrefix(m[2], "[]"):
		want = "an array of tables"
	default:
		return msg
	}
	got := map[string]string{"integer": "an integer", "string": "a string", "boolean": "true or false", "float": "a number",
		"array": "an array", "table": "a table", "inline": "an inline table"}[m[1]]
	if got == "" {
		got = "a TOML " + m[1]
	}
	return "expected " + want + ", got " + got
}

// keyError is a validation error for key (dotted path), located in the file
// and at the line that set it (see locate).
func (c *Config) keyError(key string, format string, args ...any) error {
	return c.keyErrorHint(key, "", format, args...)
}

// keyErrorHint is keyError with a hint: what to do instead.
func (c *Config) keyErrorHint(key, hint string, format string, args ...any) error {
	return errs.Usagef(hint, "%s: %s: %s", c.at(key), key, fmt.Sprintf(format, args...))
}

// findKeyLine finds the line of a dotted key ("webserver.upstream",
// "hosts.1.address") by following table headers; 0 when not found.
func findKeyLine(data []byte, key string) int {
	parts := strings.Split(key, ".")
	leaf := parts[len(parts)-1]
	table := ""
	wantIdx := -1
	if len(parts) > 1 {
		table = parts[0]
		if len(parts) > 2 {
			if _, err := fmt.Sscanf(parts[1], "%d", &wantIdx); err != nil {
				// a table's table: [processes.worker] replicas
				table = strings.Join(parts[:len(parts)-1], ".")
			}
		}
	}
	cur, idx := "", -1
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if strings.HasPrefix(l, "[") {
			// a table header may have a comment after it
			if h, _, ok := strings.Cut(l, "#"); ok {
				l = strings.TrimSpace(h)
			}
		}
		switch {
		case strings.HasPrefix(l, "[["):
			name := strings.TrimSpace(strings.Trim(l, "[] "))
			if name == cur {
				idx++
			} else {
				cur, idx = name, 0
			}
			if table == cur && leaf == cur && wantIdx == idx && len(parts) == 2 {
				return i + 1
			}
		case strings.HasPrefix(l, "["):
			cur, idx = strings.TrimSpace(strings.Trim(l, "[] ")), -1
			if cur == key { // a table: "webserver.statics"
				return i + 1
			}
		default:
			k, _, ok := strings.Cut(l, "=")
			if !ok || strings.TrimSpace(strings.Trim(strings.TrimSpace(k), `"`)) != leaf {
				continue
			}
			if cur == table && (wantIdx < 0 || idx == wantIdx) {
				return i + 1
			}
		}
	}
	return 0
}

// findArrayTableLine finds the line of the idx-th (from 0) [[table]] header.
func findArrayTableLine(data []byte, table string, idx int) int {
	n := 0
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if strings.HasPrefix(l, "[[") && strings.TrimSpace(strings.Trim(l, "[] ")) == table {
			if n == idx {
				return i + 1
			}
			n++
		}
	}
	return 0
}

func (c *Config) set(key, src string) { c.Sources[key] = src }

func (c *Config) resolve() error {
	for _, k := range []string{"app", "version", "installation_mode", "build_command", "distfile", "release_command", "app_user", "versions_to_keep", "recipe", "local_config_dir", "requirements", "python_version",
		"webserver.upstream", "webserver.health_check", "webserver.health_check_timeout", "webserver.blue_green", "webserver.drain_timeout", "secrets.adapter"} {
		if w := c.written(k); w != "" {
			c.set(k, w)
		}
	}
	if c.App == "" {
		return errs.Usagef(`add a line such as app = "bookstore"`, "%s: missing required key app", c.File)
	}
	if !appRe.MatchString(c.App) {
		return c.keyError("app", "%q is not a valid app name: use [a-z][a-z0-9-]{0,62} (lower-case letters, digits, '-')", c.App)
	}
	if err := c.resolveAppUser(); err != nil {
		return err
	}
	switch c.InstallationMode {
	case "":
		c.InstallationMode = ModeBinary
		c.set("installation_mode", "default")
	case ModeBinary, ModePython:
	default:
		return c.keyError("installation_mode", "%q is not a mode: use \"binary\" or \"python-package\"", c.InstallationMode)
	}
	if c.Distfile == "" {
		return errs.Usagef(`add distfile = "dist/app" (the file build_command produces; "{version}" is replaced)`, "%s: missing required key distfile", c.File)
	}
	if c.InstallationMode == ModeBinary && c.Requirements != "" {
		return c.keyError("requirements", "only applies to installation_mode = \"python-package\"")
	}
	if c.InstallationMode == ModeBinary && c.PythonVersion != "" {
		return c.keyError("python_version", "only applies to installation_mode = \"python-package\"")
	}
	if c.PythonVersion != "" && !pythonRe.MatchString(c.PythonVersion) {
		return c.keyError("python_version", "%q: write a version such as \"3.12\"", c.PythonVersion)
	}
	if c.VersionsToKeep == 0 {
		c.VersionsToKeep = 5
		c.set("versions_to_keep", "default")
	}
	if c.VersionsToKeep < 1 {
		return c.keyError("versions_to_keep", "must be at least 1 (the current version is always kept)")
	}
	if c.LocalConfigDir == "" {
		c.LocalConfigDir = ".raijin"
		c.set("local_config_dir", "default")
	}
	if c.Recipe == "" {
		if _, err := os.Stat(filepath.Join(c.Dir, "deploy.lua")); err == nil {
			c.Recipe = "deploy.lua"
			c.set("recipe", "default (deploy.lua exists)")
		}
	} else if _, err := os.Stat(c.Path(c.Recipe)); err != nil {
		return c.keyError("recipe", "%s: no such file", c.Recipe)
	}
	if c.PhaseTimeout == "" {
		c.PhaseTimeout = "10m"
	}
	if err := c.resolveWebserver(); err != nil {
		return err
	}
	if err := c.resolveProcesses(); err != nil {
		return err
	}
	if web, ok := c.Processes["web"]; ok && c.IsBlueGreen() && !c.SocketActivated() {
		// With blue/green, green listens on the next port: a web command
		// that names the port itself would start both slots on it.
		port := strconv.Itoa(c.SlotPort("blue"))
		if regexp.MustCompile(`(^|[^0-9$])` + port + `([^0-9]|$)`).MatchString(web) {
			return c.keyErrorHint("processes.web", "write $PORT where the command names the port (web = \"app serve --port $PORT\"): raijin sets it for each slot; or, for an app that cannot take its port from outside, set webserver.blue_green = false (restarts in place)",
				"%q names port %s itself: with blue/green (webserver.blue_green, the default) the new version starts beside the old one, on port %d", web, port, c.SlotPort("green"))
		}
	}
	if len(c.Hosts) == 0 {
		hint, files := "add a [[hosts]] table with address = \"...\"", c.File
		if c.DestinationFile != "" {
			files += " and " + c.DestinationFile
		} else if known := Destinations(c.File); len(known) > 0 {
			hint += ", or pick a destination that has hosts with -d NAME: " + strings.Join(known, ", ")
		}
		return errs.Usagef(hint, "%s: no [[hosts]]: nowhere to deploy", files)
	}
	seen := map[string]bool{}
	for i := range c.Hosts {
		if err := c.resolveHost(i); err != nil {
			return err
		}
		h := &c.Hosts[i]
		if seen[h.Name] {
			return c.keyError(fmt.Sprintf("hosts.%d.name", i), "%q is used by two hosts: give each host its own name", h.Name)
		}
		seen[h.Name] = true
		if h.User == c.AppUser {
			return c.keyError(fmt.Sprintf("hosts.%d.user", i), "%q is also app_user: the app must run as a user of its own, not as the deploy user (who has sudo)", h.User)
		}
	}
	if err := c.checkBalancers(); err != nil {
		return err
	}
	if err := c.checkStatics(); err != nil {
		return err
	}
	switch c.Secrets.Adapter {
	case "":
		c.Secrets.Adapter = "system"
		c.set("secrets.adapter", "default")
	case "system", "1password", "bitwarden", "doppler":
	default:
		return c.keyError("secrets.adapter", "%q is not an adapter: use system, 1password, bitwarden or doppler", c.Secrets.Adapter)
	}
	if c.Secrets.Adapter == "bitwarden" && c.Secrets.PasswordEnv == "" {
		c.Secrets.PasswordEnv = "BW_PASSWORD"
	}
	if err := c.resolveAliases(); err != nil {
		return err
	}
	return c.resolveVersion()
}

// resolveAliases splits each [aliases] command line into words as a shell
// would (quotes, backslashes, # comments), so that
// say = "app exec 'echo hi there'" passes "echo hi there" as one argument.
func (c *Config) resolveAliases() error {
	if c.Aliases == nil {
		c.Aliases = map[string]string{}
	}
	names := make([]string, 0, len(c.Aliases))
	for name := range c.Aliases {
		names = append(names, name)
	}
	sort.Strings(names) // the first bad one is reported, the same each time
	c.aliasArgs = map[string][]string{}
	for _, name := range names {
		line, key := c.Aliases[name], "aliases."+name
		if name == "" || strings.HasPrefix(name, "-") || strings.ContainsFunc(name, unicode.IsSpace) {
			return c.keyError(key, "%q cannot be typed as a command: use one word that does not start with '-'", name)
		}
		words, err := shlex.Split(line)
		if err != nil {
			return c.keyError(key, "%q: %v: quote as in a shell, and close every quote", line, err)
		}
		if len(words) == 0 {
			return c.keyError(key, "names no command: write the command line it stands for, such as \"app exec -i bash\"")
		}
		c.aliasArgs[name] = words
	}
	return nil
}

// resolveAppUser checks app_user, the system user the app's processes run
// as; by default the app's own name.
func (c *Config) resolveAppUser() error {
	if c.AppUser == "" {
		c.AppUser = c.App
		c.set("app_user", "default (the app's name)")
		if len(c.AppUser) > 32 {
			return errs.Usagef(`set app_user = "NAME" (at most 32 characters)`, "%s: app %q is too long to name its system user", c.File, c.App)
		}
		return nil
	}
	if !userRe.MatchString(c.AppUser) {
		return c.keyError("app_user", "%q is not a user name raijin creates: use [a-z_][a-z0-9_-]{0,31}", c.AppUser)
	}
	if c.AppUser == "root" {
		return c.keyError("app_user", "the app must not run as root: name a user of its own")
	}
	return nil
}

// AppUserExplicit reports whether raijin.toml names app_user (an existing
// user raijin did not create is accepted only then).
func (c *Config) AppUserExplicit() bool {
	return !strings.HasPrefix(c.Sources["app_user"], "default")
}

// StateDir is the app's persistent writable directory on every host
// (systemd's StateDirectory=, relative to /var/lib).
func (c *Config) StateDir() string { return "raijin/" + c.App }

func (c *Config) resolveWebserver() error {
	w := &c.Webserver
	if w.Statics == nil {
		w.Statics = map[string]string{}
	}
	if w.Upstream == "" {
		w.Upstream = "localhost:8000"
		c.set("webserver.upstream", "default")
	}
	if strings.HasPrefix(w.Upstream, "unix/") {
		if !strings.HasPrefix(w.Upstream, "unix//") {
			return c.keyError("webserver.upstream", "a unix socket upstream is written unix//ABSOLUTE/PATH.sock")
		}
	} else if _, port, ok := strings.Cut(w.Upstream, ":"); !ok || port == "" {
		return c.keyError("webserver.upstream", "%q: expected HOST:PORT or unix//PATH", w.Upstream)
	}
	if strings.ContainsAny(w.Upstream, " \t\n{}\"'") {
		return c.keyError("webserver.upstream", "%q contains spaces, quotes or braces", w.Upstream)
	}
	if w.HealthCheck != "" && !strings.HasPrefix(w.HealthCheck, "/") {
		return c.keyError("webserver.health_check", "%q must be a path starting with /", w.HealthCheck)
	}
	if w.HealthCheckTimeout == "" {
		w.HealthCheckTimeout = "30s"
	}
	if d, err := time.ParseDuration(w.HealthCheckTimeout); err != nil || d <= 0 {
		return c.keyError("webserver.health_check_timeout", "%q is not a duration above zero: write it as 30s, 500ms or 1m30s", w.HealthCheckTimeout)
	}
	if w.DrainTimeout == "" {
		w.DrainTimeout = "30s"
	}
	if d, err := time.ParseDuration(w.DrainTimeout); err != nil || d < 0 {
		return c.keyError("webserver.drain_timeout", "%q is not a duration: write it as 30s, 500ms or 1m30s (0s stops the old version at once)", w.DrainTimeout)
	}
	// blue_green defaults to true, unless a file sets it.
	if !c.sets("webserver.blue_green") {
		w.BlueGreen = true
		c.set("webserver.blue_green", "default")
	}
	if !strings.HasPrefix(w.Upstream, "unix/") {
		host, port, _ := strings.Cut(w.Upstream, ":")
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || host == "" {
			return c.keyError("webserver.upstream", "%q: expected HOST:PORT with a port from 1 to 65535", w.Upstream)
		}
		if w.BlueGreen && n == 65535 {
			return c.keyError("webserver.upstream", "%q: the green slot listens on the next port, and 65535 is the last: choose a lower port", w.Upstream)
		}
	} else if !strings.HasSuffix(w.Upstream, ".sock") {
		return c.keyError("webserver.upstream", "%q: a unix socket upstream is written unix//ABSOLUTE/PATH.sock", w.Upstream)
	}
	for k, v := range w.Statics {
		if !strings.HasPrefix(k, "/") || !strings.HasPrefix(v, "/") || strings.ContainsAny(k+v, " \t\n{}\"'") {
			return c.keyError("webserver.statics", "%q = %q: both must be absolute paths without spaces or quotes", k, v)
		}
	}
	return nil
}

// checkStatics refuses a statics directory that would have Caddy serve a
// host's apps directory, which holds every app's code, .env and .appenv:
// the apps directory itself, a directory inside it, or one that contains it.
// Paths are compared cleaned ("/var/www/../../opt/raijin" is /opt/raijin);
// symbolic links on the server are not followed.
func (c *Config) checkStatics() error {
	urls := make([]string, 0, len(c.Webserver.Statics))
	for u := range c.Webserver.Statics {
		urls = append(urls, u)
	}
	sort.Strings(urls) // the first bad one is reported, the same each time
	for _, u := range urls {
		dir := path.Clean(c.Webserver.Statics[u])
		for _, h := range c.Hosts {
			if how := staticsOverlap(dir, h.AppsDir); how != "" {
				return c.keyErrorHint("webserver.statics", fmt.Sprintf("copy the static files to a directory of their own outside %s (release_command can, for example into /var/www/%s/static) and name that one", h.AppsDir, c.App),
					"%q = %q: %s host %s's apps directory %s, which holds the app's code and .env: Caddy would serve them", u, c.Webserver.Statics[u], how, h.Name, h.AppsDir)
			}
		}
	}
	return nil
}

// staticsOverlap says how the cleaned absolute dir overlaps appsDir ("is",
// "is inside", "contains"), or "" when it does not. A relative appsDir is
// below the deploy user's home, which is not known here: dir overlaps it
// when it holds appsDir's segments in a row, ends in the first of them, or
// is a home (/root, /home/USER) or above one.
func staticsOverlap(dir, appsDir string) string {
	if strings.HasPrefix(appsDir, "/") {
		a := path.Clean(appsDir)
		switch {
		case dir == a:
			return "is"
		case strings.HasPrefix(dir, a+"/"):
			return "is inside"
		case dir == "/" || strings.HasPrefix(a, dir+"/"):
			return "contains"
		}
		return ""
	}
	rel := strings.Split(path.Clean(appsDir), "/")
	d := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	if dir == "/" {
		d = nil
	}
	for i := 0; i+len(rel) <= len(d); i++ {
		if slices.Equal(d[i:i+len(rel)], rel) {
			if i+len(rel) == len(d) {
				return "is"
			}
			return "is inside"
		}
	}
	for k := 1; k < len(rel) && k <= len(d); k++ {
		if slices.Equal(d[len(d)-k:], rel[:k]) {
			return "contains"
		}
	}
	if len(d) == 0 || (len(d) == 1 && (d[0] == "home" || d[0] == "root")) || (len(d) == 2 && d[0] == "home") {
		return "contains"
	}
	return ""
}

func (c *Config) resolveHost(i int) error {
	h := &c.Hosts[i]
	key := func(k string) string { return fmt.Sprintf("hosts.%d.%s", i, k) }
	if h.Address == "" {
		return errs.Usagef(`add address = "203.0.113.10" (or a Host alias of ~/.ssh/config)`, "%s: [[hosts]] number %d: missing required key address", c.at(key("address")), i+1)
	}
	if strings.ContainsAny(h.Address, " \t\n'\"`$;&|<>") {
		return c.keyError(key("address"), "%q is not a host name or address", h.Address)
	}
	if h.Name == "" {
		h.Name = h.Address
	}
	if !hostRe.MatchString(h.Name) {
		return c.keyError(key("name"), "%q: use letters, digits, '.', '_' and '-'", h.Name)
	}
	if h.Port < 0 || h.Port > 65535 {
		return c.keyError(key("port"), "%d is not a TCP port", h.Port)
	}
	if h.ProxyJump != "" && !proxyjump.IsNone(h.ProxyJump) {
		if _, err := proxyjump.Parse(h.ProxyJump); err != nil {
			return c.keyErrorHint(key("proxy_jump"), `write jump hosts as [user@]host[:port], comma separated, the first connected to first (or "none")`, "%v", err)
		}
	}
	if err := c.resolveRoles(i); err != nil {
		return err
	}
	if h.Envfile != "" && h.Env != "" {
		return c.keyError(key("env"), "set either envfile or env, not both")
	}
	if h.Envfile != "" {
		if _, err := os.Stat(c.Path(h.Envfile)); err != nil {
			return c.keyError(key("envfile"), "%s: no such file (relative paths are from %s)", h.Envfile, c.Dir)
		}
	}
	if h.AppsDir == "" {
		h.AppsDir = DefaultAppsDir
	}
	if strings.ContainsAny(h.AppsDir, "'\"`$%\\") || strings.ContainsFunc(h.AppsDir, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) || strings.Contains(h.AppsDir, "..") {
		return c.keyError(key("apps_dir"), "%q: no spaces, quotes, '$', '%%', '\\' or '..' in a path", h.AppsDir)
	}
	if h.DomainName != "" && strings.ContainsAny(h.DomainName, " \t\n{}\"'") {
		return c.keyError(key("domain_name"), "%q: a Caddy site address has no spaces, quotes or braces", h.DomainName)
	}
	return nil
}

func (c *Config) resolveVersion() error {
	if c.Version == "" {
		if v := pyprojectVersion(c.Dir); v != "" {
			c.Version = v
			c.VersionSource = "pyproject.toml"
		} else if v := gitDescribe(c.Dir); v != "" {
			c.Version = v
			c.VersionSource = "git describe --tags --always --dirty"
		} else {
			return errs.Usagef(`set version = "1.0.0" in raijin.toml, add [project].version to pyproject.toml, or commit in git`, "%s: no version: none set, no pyproject.toml version, and `git describe` gave nothing", c.File)
		}
		c.set("version", c.VersionSource)
	} else {
		c.VersionSource = c.Sources["version"]
	}
	if err := ValidVersion(c.Version); err != nil {
		return c.keyError("version", "%v", err)
	}
	return nil
}

// SetVersion replaces the version (from the command line), validated.
func (c *Config) SetVersion(v, source string) error {
	if err := ValidVersion(v); err != nil {
		return errs.Usagef("", "%s", err)
	}
	c.Version = v
	c.VersionSource = source
	c.Sources["version"] = source
	return nil
}

func pyprojectVersion(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "pyproject.toml"))
	if err != nil {
		return ""
	}
	var p struct {
		Project struct {
			Version string `toml:"version" luar:"version"`
		} `toml:"project" luar:"project"`
	}
	if toml.Unmarshal(data, &p) != nil {
		return ""
	}
	return p.Project.Version
}

func gitDescribe(dir string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Path resolves p relative to the directory of raijin.toml.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// DistfilePath is the local distfile with {version} replaced.
func (c *Config) DistfilePath() string {
	return c.Path(strings.ReplaceAll(c.Distfile, "{version}", c.Version))
}

// Alias returns the command line an [aliases] entry stands for, split into
// words.
func (c *Config) Alias(name string) ([]string, bool) {
	words, ok := c.aliasArgs[name]
	return append([]string(nil), words...), ok
}

// AliasNames lists the [aliases] names, sorted.
func (c *Config) AliasNames() []string {
	var names []string
	for n := range c.aliasArgs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProcessNames lists the processes, "web" first, then by name.
func (c *Config) ProcessNames() []string {
	var names []string
	for n := range c.Processes {
		if n != "web" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if _, ok := c.Processes["web"]; ok {
		names = append([]string{"web"}, names...)
	}
	return names
}

// UnitName is the systemd unit of a process: {app}-{name}.service (a
// scheduled process's service, started by its timer), and for web and a
// process with replicas the pattern of its units, {app}@*.service (see
// SlotUnit) or {app}-{name}@*.service (see ReplicaUnit), which journalctl
// -u takes.
func (c *Config) UnitName(proc string) string {
	if proc == "web" {
		return c.App + "@*.service"
	}
	if p, ok := c.Process(proc); ok && p.Replicated() {
		return c.App + "-" + proc + "@*.service"
	}
	return c.App + "-" + proc + ".service"
}

// Slots are the two places the web process runs in, in turn, with
// webserver.blue_green: a deploy starts the new version in the slot that
// does not serve, then switches Caddy to it. Without blue/green, it is
// always blue, restarted in place.
var Slots = []string{"blue", "green"}

// SlotUnit is the web process's unit in slot ("blue" or "green").
func (c *Config) SlotUnit(slot string) string { return c.App + "@" + slot + ".service" }

// SlotSocketUnit is the socket unit of slot, with a unix-socket upstream.
func (c *Config) SlotSocketUnit(slot string) string { return c.App + "@" + slot + ".socket" }

// SlotUpstream is where the web process of slot listens: blue on
// webserver.upstream itself, green on the next port (HOST:PORT+1), or on
// the socket beside it (/run/app.sock: /run/app-green.sock).
func (c *Config) SlotUpstream(slot string) string {
	u := c.Webserver.Upstream
	if slot != "green" {
		return u
	}
	if c.SocketActivated() {
		return strings.TrimSuffix(u, ".sock") + "-green.sock"
	}
	host, port, _ := strings.Cut(u, ":")
	n, _ := strconv.Atoi(port)
	return host + ":" + strconv.Itoa(n+1)
}

// SlotPort is the TCP port of slot's upstream (0 with a unix socket).
func (c *Config) SlotPort(slot string) int {
	if c.SocketActivated() {
		return 0
	}
	_, port, _ := strings.Cut(c.SlotUpstream(slot), ":")
	n, _ := strconv.Atoi(port)
	return n
}

// IsBlueGreen reports whether webserver.blue_green is on (the default).
func (c *Config) IsBlueGreen() bool { return c.Webserver.BlueGreen }

// SocketActivated reports whether the web process listens on a unix socket that
// systemd owns.
func (c *Config) SocketActivated() bool {
	return strings.HasPrefix(c.Webserver.Upstream, "unix//")
}

// SocketPath is the unix socket path of a socket upstream.
func (c *Config) SocketPath() string {
	return strings.TrimPrefix(c.Webserver.Upstream, "unix/")
}

// HostByName finds a host.
func (c *Config) HostByName(name string) (*Host, bool) {
	for i := range c.Hosts {
		if c.Hosts[i].Name == name {
			return &c.Hosts[i], true
		}
	}
	return nil, false
}

// SelectHosts returns the hosts named (all when names is empty); an unknown
// name is a usage error that lists the known ones.
func (c *Config) SelectHosts(names []string) ([]Host, error) {
	if len(names) == 0 {
		return c.Hosts, nil
	}
	var out []Host
	for _, n := range names {
		h, ok := c.HostByName(n)
		if !ok {
			var known []string
			for _, h := range c.Hosts {
				known = append(known, h.Name)
			}
			return nil, errs.Usagef("hosts in "+c.HostsFile()+": "+strings.Join(known, ", "), "-H %s: no such host", n)
		}
		out = append(out, *h)
	}
	return out, nil
}

// RoleRelease is the tag that picks the host running release_command
// (once per deploy, see ReleaseHost).
const RoleRelease = "release"

// resolveRoles checks hosts[i].roles and, when the file sets none, gives
// the host every process.
func (c *Config) resolveRoles(i int) error {
	h := &c.Hosts[i]
	if h.Roles == nil {
		h.Roles = c.ProcessNames()
		return nil
	}
	h.RolesSet = true
	seen := map[string]bool{}
	for _, r := range h.Roles {
		if !procRe.MatchString(r) {
			return c.keyError(fmt.Sprintf("hosts.%d.roles", i), "role %q: use [a-z][a-z0-9-]{0,30} (a process name of [processes], or a tag of your own)", r)
		}
		if seen[r] {
			return c.keyError(fmt.Sprintf("hosts.%d.roles", i), "role %q is listed twice", r)
		}
		seen[r] = true
	}
	if h.HasRole(RoleLoadBalancer) {
		if procs := c.HostProcesses(*h); len(procs) > 0 {
			return c.keyErrorHint(fmt.Sprintf("hosts.%d.roles", i), "put the balancer on a host of its own (roles = [\"loadbalancer\"]), or take "+strings.Join(procs, ", ")+" out of its roles",
				"%s has the role loadbalancer and runs %s: a load balancer runs no process of the app", h.Name, strings.Join(procs, ", "))
		}
		return nil
	}
	if len(c.HostProcesses(*h)) == 0 {
		return c.keyErrorHint(fmt.Sprintf("hosts.%d.roles", i), "add the processes it runs to roles (the processes: "+strings.Join(c.ProcessNames(), ", ")+"), or remove the host",
			"%s runs none of the processes: roles %s names no process of [processes]", h.Name, strings.Join(h.Roles, ", "))
	}
	return nil
}

// RoleLoadBalancer is the role of a host that runs no process of the app
// but Caddy's load balancer in front of the web hosts.
const RoleLoadBalancer = "loadbalancer"

// IsBalancer reports whether h is a load balancer (see RoleLoadBalancer).
func (h Host) IsBalancer() bool { return h.HasRole(RoleLoadBalancer) }

// HasRole reports whether h has role r.
func (h Host) HasRole(r string) bool { return slices.Contains(h.Roles, r) }

// HostProcesses are the processes h runs: those of [processes] among its
// roles, in ProcessNames' order (web first).
func (c *Config) HostProcesses(h Host) []string {
	var out []string
	for _, p := range c.ProcessNames() {
		if h.HasRole(p) {
			out = append(out, p)
		}
	}
	return out
}

// Roles lists every role of the hosts, sorted.
func (c *Config) Roles() []string {
	var out []string
	for _, h := range c.Hosts {
		for _, r := range h.Roles {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SelectByRole keeps the hosts of hosts that have one of roles (all of
// them when roles is empty); a role no host of the file has is an error.
func (c *Config) SelectByRole(hosts []Host, roles []string) ([]Host, error) {
	if len(roles) == 0 {
		return hosts, nil
	}
	known := c.Roles()
	for _, r := range roles {
		if !slices.Contains(known, r) {
			return nil, errs.Usagef("roles of the hosts in "+c.HostsFile()+": "+strings.Join(known, ", "), "-R %s: no host has that role", r)
		}
	}
	var out []Host
	for _, h := range hosts {
		for _, r := range roles {
			if h.HasRole(r) {
				out = append(out, h)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errs.Usagef("check -H and -R: a host is selected when -H names it and it has one of the -R roles", "-R %s: none of the hosts selected has that role", strings.Join(roles, ", -R "))
	}
	return out, nil
}

// ReleaseHost is the host of hosts that runs release_command once: the
// first with the role release, else the first.
func ReleaseHost(hosts []Host) string {
	for _, h := range hosts {
		if h.HasRole(RoleRelease) {
			return h.Name
		}
	}
	if len(hosts) == 0 {
		return ""
	}
	return hosts[0].Name
}

// URL is what the user opens for host h: the Caddy site address as a URL.
func (h Host) URL() string {
	d := h.DomainName
	switch {
	case d == "":
		return "http://" + h.Address + "/"
	case strings.HasPrefix(d, "http://"), strings.HasPrefix(d, "https://"):
		return strings.TrimSuffix(d, "/") + "/"
	case strings.HasPrefix(d, ":"):
		return "http://" + h.Address + d + "/"
	default:
		return "https://" + d + "/"
	}
}

// SiteAddress is the Caddy site address for host h.
func (h Host) SiteAddress() string {
	if h.DomainName == "" {
		return "http://" + h.Address
	}
	return h.DomainName
}

// Source says where the value of key (dotted: "webserver.upstream",
// "hosts.0.address") came from: FILE:LINE when the file sets it, else what
// the resolution recorded (pyproject.toml, git describe, --set-version), else
// "default".
func (c *Config) Source(key string) string {
	if s := c.Sources[key]; s != "" && s != "default" {
		return s
	}
	if w := c.written(key); w != "" {
		return w
	}
	return "default"
}
