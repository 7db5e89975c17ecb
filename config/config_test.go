package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/errs"
)

// minimal is the smallest valid raijin.toml.
const minimal = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"

[processes]
web = "shop serve"

[[hosts]]
address = "203.0.113.10"
`

// project writes raijin.toml (and any other files) into a new directory and
// returns the path of raijin.toml.
func project(t *testing.T, toml string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(files); i += 2 {
		p := filepath.Join(dir, files[i])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "raijin.toml")
	if err := os.WriteFile(p, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, toml string, files ...string) (*Config, error) {
	t.Helper()
	return Load(project(t, toml, files...))
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		toml  string
		files []string
		want  string // after "DIR/raijin.toml"
		hint  string
	}{
		{name: "unknown keys, each with its line",
			toml: strings.Replace(minimal, `distfile = "dist/shop"`, "distfile = \"dist/shop\"\nbuild_comand = \"make\"", 1) + "domain = \"x\"\n",
			want: ":4: unknown key \"build_comand\"\n{FILE}:11: unknown key \"hosts.domain\"", hint: "check the spelling"},
		{name: "unknown table", toml: minimal + "[webservr]\nupstream = \"x:1\"\n", want: `:10: unknown key "webservr"`},
		{name: "syntax error", toml: "app = [\n", want: ":1:8: toml: array is incomplete", hint: "fix the TOML syntax"},
		{name: "string expected", toml: "app = 3\n", want: ":1:7: key app: expected a string, got an integer"},
		{name: "integer expected at top", toml: "versions_to_keep = \"five\"\n" + minimal, want: ":1:20: key versions_to_keep: expected an integer, got a string"},
		{name: "table expected", toml: "processes = \"web\"\n", want: ":1:13: key processes: expected a table, got a string"},
		{name: "nested type", toml: minimal + "[webserver]\nupstream = 8000\n", want: ":11:12: key webserver.upstream: expected a string, got an integer"},
		{name: "missing app", toml: strings.Replace(minimal, `app = "shop"`, "", 1), want: ": missing required key app", hint: `app = "bookstore"`},
		{name: "missing distfile", toml: strings.Replace(minimal, `distfile = "dist/shop"`, "", 1), want: ": missing required key distfile", hint: "distfile ="},
		{name: "missing processes", toml: strings.Replace(minimal, "[processes]\nweb = \"shop serve\"", "", 1), want: ": missing [processes]: nothing to run", hint: "web ="},
		{name: "missing hosts", toml: strings.Replace(minimal, "[[hosts]]\naddress = \"203.0.113.10\"", "", 1), want: ": no [[hosts]]: nowhere to deploy", hint: "[[hosts]]"},
		{name: "missing host address", toml: minimal + "\n[[hosts]]\nname = \"two\"\n", want: ":11: [[hosts]] number 2: missing required key address", hint: "address ="},
		{name: "bad app name", toml: strings.Replace(minimal, `"shop"`, `"Shop_1"`, 1), want: `:1: app: "Shop_1" is not a valid app name`},
		{name: "app name with a slash", toml: strings.Replace(minimal, `"shop"`, `"../x"`, 1), want: `:1: app: "../x" is not a valid app name`},
		{name: "bad version", toml: strings.Replace(minimal, `"1.0.0"`, `"1.0 beta"`, 1), want: `:2: version: version "1.0 beta" is not usable as a directory name`},
		{name: "dotdot version", toml: strings.Replace(minimal, `"1.0.0"`, `"1..2"`, 1), want: `:2: version: version "1..2" is not usable`},
		{name: "bad mode at top", toml: "installation_mode = \"docker\"\n" + minimal, want: `:1: installation_mode: "docker" is not a mode: use "binary" or "python-package"`},
		{name: "requirements in binary mode", toml: "requirements = \"r.txt\"\n" + minimal, want: `:1: requirements: only applies to installation_mode = "python-package"`},
		{name: "python_version in binary mode", toml: "python_version = \"3.12\"\n" + minimal, want: `:1: python_version: only applies to installation_mode = "python-package"`},
		{name: "bad python_version", toml: "installation_mode = \"python-package\"\npython_version = \"3.12; rm -rf /\"\n" + minimal, want: `:2: python_version: "3.12; rm -rf /": write a version such as "3.12"`},
		{name: "versions_to_keep below 1", toml: "versions_to_keep = -1\n" + minimal, want: ":1: versions_to_keep: must be at least 1"},
		{name: "recipe missing", toml: "recipe = \"my.lua\"\n" + minimal, want: ":1: recipe: my.lua: no such file"},
		{name: "upstream without port", toml: minimal + "[webserver]\nupstream = \"localhost\"\n", want: `:11: webserver.upstream: "localhost": expected HOST:PORT or unix//PATH`},
		{name: "upstream relative socket", toml: minimal + "[webserver]\nupstream = \"unix/run/app.sock\"\n", want: ":11: webserver.upstream: a unix socket upstream is written unix//ABSOLUTE/PATH.sock"},
		{name: "upstream with braces", toml: minimal + "[webserver]\nupstream = \"a:1 {\"\n", want: `:11: webserver.upstream: "a:1 {" contains spaces, quotes or braces`},
		{name: "upstream port not a number", toml: minimal + "[webserver]\nupstream = \"localhost:http\"\n", want: `:11: webserver.upstream: "localhost:http": expected HOST:PORT with a port from 1 to 65535`},
		{name: "upstream on the last port", toml: minimal + "[webserver]\nupstream = \"localhost:65535\"\n", want: `:11: webserver.upstream: "localhost:65535": the green slot listens on the next port, and 65535 is the last`},
		{name: "socket upstream without .sock", toml: minimal + "[webserver]\nupstream = \"unix//run/app\"\n", want: `:11: webserver.upstream: "unix//run/app": a unix socket upstream is written unix//ABSOLUTE/PATH.sock`},
		{name: "blue_green not a boolean", toml: minimal + "[webserver]\nblue_green = \"no\"\n", want: `:11:14: key webserver.blue_green: expected true or false, got a string`},
		{name: "web command with the upstream's port", toml: strings.Replace(minimal, `web = "shop serve"`, `web = "shop serve --port 8000"`, 1), want: `:6: processes.web: "shop serve --port 8000" names port 8000 itself: with blue/green (webserver.blue_green, the default) the new version starts beside the old one, on port 8001`, hint: "$PORT"},
		{name: "health check not a path", toml: minimal + "[webserver]\nhealth_check = \"up\"\n", want: `:11: webserver.health_check: "up" must be a path starting with /`},
		{name: "health check timeout not a duration", toml: minimal + "[webserver]\nhealth_check_timeout = \"30\"\n", want: `:11: webserver.health_check_timeout: "30" is not a duration above zero`},
		{name: "drain timeout not a duration", toml: minimal + "[webserver]\ndrain_timeout = \"soon\"\n", want: `:11: webserver.drain_timeout: "soon" is not a duration`},
		{name: "statics not absolute", toml: minimal + "[webserver.statics]\n\"/static\" = \"static\"\n", want: `:10: webserver.statics: "/static" = "static": both must be absolute paths`},
		{name: "statics the app directory", toml: minimal + "[webserver.statics]\n\"/static/*\" = \"/opt/raijin/shop\"\n", want: `:10: webserver.statics: "/static/*" = "/opt/raijin/shop": is inside host 203.0.113.10's apps directory /opt/raijin, which holds the app's code and .env: Caddy would serve them`, hint: "outside /opt/raijin"},
		{name: "statics dotdot into the app directory", toml: minimal + "[webserver.statics]\n\"/static/*\" = \"/var/www/../../opt/raijin/shop/v1.0.0/\"\n", want: `:10: webserver.statics: "/static/*" = "/var/www/../../opt/raijin/shop/v1.0.0/": is inside host 203.0.113.10's apps directory`, hint: "/var/www/shop/static"},
		{name: "statics above the apps directory", toml: minimal + "[webserver.statics]\n\"/\" = \"/opt/\"\n", want: `:10: webserver.statics: "/" = "/opt/": contains host 203.0.113.10's apps directory /opt/raijin`},
		{name: "statics in a legacy apps directory", toml: minimal + "apps_dir = \".local/share/raijin\"\n[webserver.statics]\n\"/static/*\" = \"/home/deploy/.local/share/raijin/shop/static\"\n", want: `:11: webserver.statics: "/static/*" = "/home/deploy/.local/share/raijin/shop/static": is inside host 203.0.113.10's apps directory .local/share/raijin`},
		{name: "process name with capitals", toml: strings.Replace(minimal, "web = ", "Web = ", 1), want: `:6: processes.Web: process name "Web": use [a-z][a-z0-9-]{0,30}`},
		{name: "process command empty", toml: strings.Replace(minimal, `web = "shop serve"`, "web = \"shop\"\nworker = \" \"", 1), want: ":7: processes.worker: the command must be one non-empty line"},
		{name: "process command two lines", toml: strings.Replace(minimal, `web = "shop serve"`, `web = "a\nb"`, 1), want: ":6: processes.web: the command must be one non-empty line"},
		{name: "duplicate host names", toml: strings.Replace(minimal, "[[hosts]]\n", "[[hosts]]\nname = \"a\"\n", 1) + "\n[[hosts]]\nname = \"a\"\naddress = \"203.0.113.11\"\n", want: `:13: hosts.1.name: "a" is used by two hosts`},
		{name: "duplicate addresses without names", toml: minimal + "\n[[hosts]]\naddress = \"203.0.113.10\"\n", want: `:11: hosts.1.name: "203.0.113.10" is used by two hosts: give each host its own name`},
		{name: "bad host name", toml: strings.Replace(minimal, "[[hosts]]\n", "[[hosts]]\nname = \"web 1\"\n", 1), want: `:9: hosts.0.name: "web 1": use letters, digits, '.', '_' and '-'`},
		{name: "address with shell characters", toml: strings.Replace(minimal, "203.0.113.10", "a;b", 1), want: `:9: hosts.0.address: "a;b" is not a host name or address`},
		{name: "bad port", toml: minimal + "port = 70000\n", want: ":10: hosts.0.port: 70000 is not a TCP port"},
		{name: "env and envfile", toml: minimal + "envfile = \".env\"\nenv = \"A=1\"\n", files: []string{".env", "A=1"}, want: ":11: hosts.0.env: set either envfile or env, not both"},
		{name: "envfile missing", toml: minimal + "envfile = \".env.prod\"\n", want: ":10: hosts.0.envfile: .env.prod: no such file (relative paths are from {DIR})"},
		{name: "apps_dir with dotdot", toml: minimal + "apps_dir = \"../x\"\n", want: `:10: hosts.0.apps_dir: "../x": no spaces, quotes, '$', '%', '\' or '..' in a path`},
		{name: "apps_dir with a percent sign", toml: minimal + "apps_dir = \"/srv/a%b\"\n", want: `:10: hosts.0.apps_dir: "/srv/a%b": no spaces`},
		{name: "app_user root", toml: strings.Replace(minimal, "distfile", "app_user = \"root\"\ndistfile", 1), want: `:3: app_user: the app must not run as root`},
		{name: "app_user not a user name", toml: strings.Replace(minimal, "distfile", "app_user = \"Bad User\"\ndistfile", 1), want: `:3: app_user: "Bad User" is not a user name`},
		{name: "app_user is the deploy user", toml: strings.Replace(minimal, "distfile", "app_user = \"deploy\"\ndistfile", 1) + "user = \"deploy\"\n", want: `:11: hosts.0.user: "deploy" is also app_user`},
		{name: "proxy_jump with a shell character", toml: minimal + "proxy_jump = \"bastion;reboot\"\n", want: `:10: hosts.0.proxy_jump: "bastion;reboot" is not [user@]host[:port]`},
		{name: "proxy_jump with a bad port", toml: minimal + "proxy_jump = \"deploy@bastion:22,inner:x\"\n", want: `:10: hosts.0.proxy_jump: "inner:x": x is not a port number`},
		{name: "domain with a space", toml: minimal + "domain_name = \"a b\"\n", want: `:10: hosts.0.domain_name: "a b": a Caddy site address has no spaces`},
		{name: "unknown secrets adapter", toml: minimal + "[secrets]\nadapter = \"vault\"\n", want: `:11: secrets.adapter: "vault" is not an adapter`},
		{name: "alias with an unclosed quote", toml: minimal + "[aliases]\nshell = \"app exec -i bash\"\nsay = \"app exec 'echo hi\"\n", want: `:12: aliases.say: "app exec 'echo hi": EOF found when expecting closing quote: quote as in a shell`},
		{name: "alias ending in a backslash", toml: minimal + "[aliases]\nx = 'app exec echo \\'\n", want: `:11: aliases.x: "app exec echo \\": EOF found after escape character`},
		{name: "alias of nothing", toml: minimal + "[aliases]\nnothing = \"  \"\n", want: `:11: aliases.nothing: names no command`},
		{name: "alias named like a flag", toml: minimal + "[aliases]\n\"-x\" = \"config\"\n", want: `:11: aliases.-x: "-x" cannot be typed as a command`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := project(t, tc.toml, tc.files...)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			if c := errs.Code(err); c != errs.CodeUsage {
				t.Errorf("exit code %d, want %d", c, errs.CodeUsage)
			}
			want := p + strings.ReplaceAll(strings.ReplaceAll(tc.want, "{FILE}", p), "{DIR}", filepath.Dir(p))
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n  %s\nwant prefix:\n  %s", err, want)
			}
			if !strings.Contains(errs.Hint(err), tc.hint) {
				t.Errorf("hint %q does not contain %q", errs.Hint(err), tc.hint)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "raijin.toml")
	_, err := Load(p)
	if err == nil || err.Error() != p+": no such file" || errs.Code(err) != errs.CodeUsage || !strings.Contains(errs.Hint(err), "raijin init") {
		t.Errorf("err = %v (hint %q)", err, errs.Hint(err))
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Hosts[0]
	for _, tc := range []struct{ what, got, want string }{
		{"installation_mode", c.InstallationMode, ModeBinary},
		{"local_config_dir", c.LocalConfigDir, ".raijin"},
		{"upstream", c.Webserver.Upstream, "localhost:8000"},
		{"health_check_timeout", c.Webserver.HealthCheckTimeout, "30s"},
		{"phase_timeout", c.PhaseTimeout, "10m"},
		{"secrets adapter", c.Secrets.Adapter, "system"},
		{"recipe", c.Recipe, ""},
		{"host name", h.Name, "203.0.113.10"},
		{"apps_dir", h.AppsDir, "/opt/raijin"},
		{"app_user", c.AppUser, c.App},
		{"source of app_user", c.Sources["app_user"], "default (the app's name)"},
		{"version source", c.VersionSource, c.File + ":2"},
		{"source of versions_to_keep", c.Sources["versions_to_keep"], "default"},
		{"source of upstream", c.Sources["webserver.upstream"], "default"},
		{"source of app", c.Sources["app"], c.File + ":1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q; want %q", tc.what, tc.got, tc.want)
		}
	}
	if c.VersionsToKeep != 5 {
		t.Errorf("versions_to_keep = %d; want 5", c.VersionsToKeep)
	}
	if c.Dir != filepath.Dir(c.File) {
		t.Errorf("Dir = %s", c.Dir)
	}
	if c.Webserver.Statics == nil || c.Aliases == nil {
		t.Error("empty maps are nil")
	}
}

func TestSetValuesWin(t *testing.T) {
	c, err := load(t, `app = "shop"
version = "2.0"
installation_mode = "python-package"
distfile = "dist/shop-{version}-py3-none-any.whl"
requirements = "requirements.txt"
versions_to_keep = 2
local_config_dir = "deploy"
recipe = "custom.lua"

[webserver]
upstream = "unix//run/shop/web.sock"

[webserver.statics]
"/static" = "/srv/static"

[processes]
web = "gunicorn shop:app"
worker = "celery -A shop worker"
beat = "celery -A shop beat"

[[hosts]]
name = "prod"
address = "shop.example"
user = "deploy"
port = 2222
apps_dir = "/srv/apps"

[secrets]
adapter = "bitwarden"
`, "custom.lua", "-- recipe")
	if err != nil {
		t.Fatal(err)
	}
	if c.VersionsToKeep != 2 || c.LocalConfigDir != "deploy" || c.Recipe != "custom.lua" || c.Hosts[0].AppsDir != "/srv/apps" || c.Hosts[0].Port != 2222 {
		t.Errorf("values not kept: %+v", c)
	}
	if !c.SocketActivated() || c.SocketPath() != "/run/shop/web.sock" {
		t.Errorf("socket: %v %s", c.SocketActivated(), c.SocketPath())
	}
	if got := c.DistfilePath(); got != filepath.Join(c.Dir, "dist/shop-2.0-py3-none-any.whl") {
		t.Errorf("DistfilePath = %s", got)
	}
	if got := strings.Join(c.ProcessNames(), " "); got != "web beat worker" {
		t.Errorf("ProcessNames = %s", got)
	}
	if c.UnitName("web") != "shop@*.service" || c.UnitName("worker") != "shop-worker.service" {
		t.Errorf("units: %s %s", c.UnitName("web"), c.UnitName("worker"))
	}
	if c.SlotUnit("green") != "shop@green.service" || c.SlotSocketUnit("blue") != "shop@blue.socket" {
		t.Errorf("slot units: %s %s", c.SlotUnit("green"), c.SlotSocketUnit("blue"))
	}
	if c.SlotUpstream("blue") != "unix//run/shop/web.sock" || c.SlotUpstream("green") != "unix//run/shop/web-green.sock" || c.SlotPort("green") != 0 {
		t.Errorf("slot upstreams: %s %s", c.SlotUpstream("blue"), c.SlotUpstream("green"))
	}
	if !c.IsBlueGreen() {
		t.Errorf("blue_green is on by default")
	}
	if c.Secrets.PasswordEnv != "BW_PASSWORD" {
		t.Errorf("bitwarden password_env default = %q", c.Secrets.PasswordEnv)
	}
}

func TestAliasesAreSplitAsAShellWould(t *testing.T) {
	c, err := load(t, minimal+`[aliases]
shell = "app exec -i bash"
say = "app exec 'echo hi there'"
grep = 'app exec grep "" log.txt'
it = "app exec echo it\\'s   # a comment"
`)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"shell": {"app", "exec", "-i", "bash"},
		"say":   {"app", "exec", "echo hi there"},
		"grep":  {"app", "exec", "grep", "", "log.txt"},
		"it":    {"app", "exec", "echo", "it's"},
	} {
		got, ok := c.Alias(name)
		if !ok || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("Alias(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := c.Alias("nope"); ok {
		t.Error("Alias(\"nope\") found")
	}
	if got := strings.Join(c.AliasNames(), " "); got != "grep it say shell" {
		t.Errorf("AliasNames = %s", got)
	}
	if c.Aliases["say"] != "app exec 'echo hi there'" {
		t.Errorf("the alias as written is not kept: %q", c.Aliases["say"])
	}
}

func TestRecipeDefaultsToDeployLua(t *testing.T) {
	c, err := load(t, minimal, "deploy.lua", "-- mine")
	if err != nil {
		t.Fatal(err)
	}
	if c.Recipe != "deploy.lua" || c.Sources["recipe"] != "default (deploy.lua exists)" {
		t.Errorf("recipe %q from %q", c.Recipe, c.Sources["recipe"])
	}
}

func TestVersionSources(t *testing.T) {
	noVersion := strings.Replace(minimal, "version = \"1.0.0\"\n", "", 1)
	t.Run("pyproject.toml", func(t *testing.T) {
		c, err := load(t, noVersion, "pyproject.toml", "[project]\nname = \"shop\"\nversion = \"2.3.4\"\n")
		if err != nil {
			t.Fatal(err)
		}
		if c.Version != "2.3.4" || c.VersionSource != "pyproject.toml" || c.Sources["version"] != "pyproject.toml" {
			t.Errorf("version %q from %q", c.Version, c.VersionSource)
		}
	})
	t.Run("raijin.toml wins over pyproject.toml", func(t *testing.T) {
		c, err := load(t, minimal, "pyproject.toml", "[project]\nversion = \"2.3.4\"\n")
		if err != nil || c.Version != "1.0.0" {
			t.Errorf("version %q, %v", c.Version, err)
		}
	})
	t.Run("git describe", func(t *testing.T) {
		if _, err := exec.LookPath("git"); err != nil {
			t.Fatal("git is needed by raijin and by this test")
		}
		p := project(t, noVersion)
		dir := filepath.Dir(p)
		git := func(args ...string) {
			cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		git("init", "-q")
		git("add", "raijin.toml")
		git("commit", "-qm", "first")
		git("tag", "v1.4.0")
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Version != "v1.4.0" || c.VersionSource != "git describe --tags --always --dirty" {
			t.Errorf("version %q from %q", c.Version, c.VersionSource)
		}
		// A change to a tracked file makes it dirty.
		os.WriteFile(p, []byte(noVersion+"# edit\n"), 0o644)
		c, err = Load(p)
		if err != nil || c.Version != "v1.4.0-dirty" {
			t.Errorf("dirty: version %q, %v", c.Version, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		_, err := load(t, noVersion)
		if err == nil || !strings.Contains(err.Error(), "no version") || !strings.Contains(errs.Hint(err), "pyproject.toml") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad pyproject version", func(t *testing.T) {
		_, err := load(t, noVersion, "pyproject.toml", "[project]\nversion = \"1 2\"\n")
		if err == nil || !strings.Contains(err.Error(), `version "1 2" is not usable`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSetVersion(t *testing.T) {
	c, err := load(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetVersion("1.0/../../etc", "--version"); err == nil || errs.Code(err) != errs.CodeUsage {
		t.Errorf("bad version accepted: %v", err)
	}
	if err := c.SetVersion("3.0", "--version"); err != nil || c.Version != "3.0" || c.Sources["version"] != "--version" {
		t.Errorf("SetVersion: %v, %q from %q", err, c.Version, c.Sources["version"])
	}
}

func TestValidVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.0.0": true, "v2": true, "1.0+build.5": true, "2026-01-01_a": true, "abc1234-dirty": true,
		"": false, ".hidden": false, "-x": false, "a/b": false, "1..2": false, "1 0": false, "$(id)": false, "a'b": false,
		strings.Repeat("1", 128): true, strings.Repeat("1", 129): false,
	} {
		if err := ValidVersion(v); (err == nil) != ok {
			t.Errorf("ValidVersion(%q) = %v; want ok=%v", v, err, ok)
		}
	}
}

func TestSelectHosts(t *testing.T) {
	c, err := load(t, minimal+"\n[[hosts]]\nname = \"b\"\naddress = \"203.0.113.11\"\n")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := c.SelectHosts(nil)
	if len(all) != 2 {
		t.Errorf("all hosts: %v", all)
	}
	one, err := c.SelectHosts([]string{"b"})
	if err != nil || len(one) != 1 || one[0].Address != "203.0.113.11" {
		t.Errorf("-H b: %v, %v", one, err)
	}
	_, err = c.SelectHosts([]string{"c"})
	if err == nil || err.Error() != "-H c: no such host" || !strings.Contains(errs.Hint(err), "203.0.113.10, b") || errs.Code(err) != errs.CodeUsage {
		t.Errorf("-H c: %v (hint %q)", err, errs.Hint(err))
	}
}

func TestURLAndSiteAddress(t *testing.T) {
	for _, tc := range []struct{ address, domain, url, site string }{
		{"203.0.113.10", "", "http://203.0.113.10/", "http://203.0.113.10"},
		{"203.0.113.10", "shop.example", "https://shop.example/", "shop.example"},
		{"203.0.113.10", "http://shop.example", "http://shop.example/", "http://shop.example"},
		{"203.0.113.10", "https://shop.example/", "https://shop.example/", "https://shop.example/"},
		{"203.0.113.10", ":8080", "http://203.0.113.10:8080/", ":8080"},
	} {
		h := Host{Address: tc.address, DomainName: tc.domain}
		if got := h.URL(); got != tc.url {
			t.Errorf("URL(%q, %q) = %s; want %s", tc.address, tc.domain, got, tc.url)
		}
		if got := h.SiteAddress(); got != tc.site {
			t.Errorf("SiteAddress(%q, %q) = %s; want %s", tc.address, tc.domain, got, tc.site)
		}
	}
}

func TestPlainDecodeError(t *testing.T) {
	for in, want := range map[string]string{
		"toml: cannot decode TOML integer into struct field config.Config.App of type string":                  "expected a string, got an integer",
		"toml: cannot decode TOML string into struct field config.Config.VersionsToKeep of type int":           "expected an integer, got a string",
		"toml: cannot decode TOML string into struct field config.Config.Hosts of type []config.Host":          "expected an array of tables, got a string",
		"toml: cannot decode TOML boolean into struct field config.Config.Processes of type map[string]string": "expected a table, got true or false",
		"toml: array is incomplete": "toml: array is incomplete",
	} {
		if got := plainDecodeError(in); got != want {
			t.Errorf("plainDecodeError(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestStaticsOverlap(t *testing.T) {
	for _, tc := range []struct{ dir, appsDir, want string }{
		{"/var/www/shop/static", "/opt/raijin", ""},
		{"/opt/raijin-static", "/opt/raijin", ""},
		{"/var/lib/raijin/shop/media", "/opt/raijin", ""},
		{"/opt/raijin", "/opt/raijin", "is"},
		{"/opt/raijin/shop", "/opt/raijin/", "is inside"},
		{"/opt/raijin/other/static", "/opt/raijin", "is inside"},
		{"/opt", "/opt/raijin", "contains"},
		{"/", "/opt/raijin", "contains"},
		{"/home/deploy/.local/share/raijin", ".local/share/raijin", "is"},
		{"/home/deploy/.local/share/raijin/shop/v1", ".local/share/raijin", "is inside"},
		{"/srv/u/.local/share", ".local/share/raijin", "contains"},
		{"/home/deploy", ".local/share/raijin", "contains"},
		{"/root", ".local/share/raijin", "contains"},
		{"/home", "apps", "contains"},
		{"/", "apps", "contains"},
		{"/home/deploy/static", ".local/share/raijin", ""},
		{"/var/www/apps-static", "apps", ""},
	} {
		if got := staticsOverlap(tc.dir, tc.appsDir); got != tc.want {
			t.Errorf("staticsOverlap(%q, %q) = %q, want %q", tc.dir, tc.appsDir, got, tc.want)
		}
	}
}

// proxy_jump is kept as written: a chain of jump hosts, or none.
func TestProxyJump(t *testing.T) {
	for _, v := range []string{"deploy@bastion:2222", "outer,ops@inner", "none"} {
		c, err := load(t, minimal+"proxy_jump = \""+v+"\"\n")
		if err != nil {
			t.Fatalf("proxy_jump %q: %v", v, err)
		}
		if got := c.Hosts[0].ProxyJump; got != v {
			t.Errorf("proxy_jump = %q; want %q", got, v)
		}
	}
}
