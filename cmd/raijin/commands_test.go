package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/config"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// project writes raijin.toml (and files) into a new directory and makes it
// the working directory.
func project(t *testing.T, toml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	files["raijin.toml"] = toml
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const opsTOML = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"
[processes]                 # a comment after a table header
web = "shop serve"
worker = "shop work"
[[hosts]]
name = "alpha"
address = "127.0.0.1"
port = 1
envfile = ".env.prod"
[[hosts]]
address = "beta.example.com"
envfile = ".env.prod"
[secrets]
adapter = "1password"
[aliases]
sh = "app exec -i bash"
`

// A secret that cannot be resolved fails the command before any connection
// (the hosts here are unreachable: a connection attempt would say so), and
// resolved values appear nowhere in raijin's output.
func TestSecretsFailBeforeConnecting(t *testing.T) {
	fake, _ := filepath.Abs("../../secrets/testdata/fakecli")
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKECLI_LOG", filepath.Join(t.TempDir(), "calls"))
	t.Setenv("FAKE_STATE", "")
	project(t, opsTOML, map[string]string{".env.prod": "PORT=8000\nDB_PASSWORD=$op://prod/db/password\nAPI=$op://prod/api/nope\n", "dist/shop": "bin"})

	for _, cmd := range [][]string{{"deploy"}, {"up"}, {"printenv"}} {
		code, out, errOut := run(t, cmd...)
		if code != 1 || !strings.Contains(errOut, ".env.prod:3: API:") || !strings.Contains(errOut, "could not find item") {
			t.Errorf("raijin %s: want exit 1 naming .env.prod:3 API: %d\n%s%s", cmd, code, out, errOut)
		}
		if strings.Contains(errOut, "cannot reach") || strings.Contains(errOut, "connect") {
			t.Errorf("raijin %s tried to connect before resolving secrets:\n%s", cmd, errOut)
		}
	}
	t.Setenv("FAKE_STATE", "locked")
	if code, _, errOut := run(t, "deploy"); code != 1 || !strings.Contains(errOut, "not currently signed in") {
		t.Errorf("a locked vault: %d %s", code, errOut)
	}
	t.Setenv("PATH", t.TempDir())
	if code, _, errOut := run(t, "deploy"); code != 1 || !strings.Contains(errOut, `needs the "op" command, which is not on PATH`) {
		t.Errorf("a missing CLI: %d %s", code, errOut)
	}

	// Resolvable: printenv and the dry run never show the value.
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_STATE", "")
	os.WriteFile(".env.prod", []byte("PORT=8000\nDB_PASSWORD=$op://prod/db/password\n"), 0o600)
	for _, cmd := range [][]string{{"printenv"}, {"deploy", "--dry-run", "-v"}, {"deploy", "--dry-run", "--json", "-v"}} {
		code, out, errOut := run(t, cmd...)
		if code != 0 || strings.Contains(out+errOut, "op-secret-Vq7w") {
			t.Errorf("raijin %s: exit %d, or the secret in its output:\n%s%s", cmd, code, out, errOut)
		}
	}
	if _, out, _ := run(t, "printenv", "-H", "alpha", "--reveal"); !strings.Contains(out, "op-secret-Vq7w") {
		t.Errorf("printenv --reveal should show the value:\n%s", out)
	}
}

func TestConfigSources(t *testing.T) {
	project(t, opsTOML, map[string]string{".env.prod": "PORT=8000\n"})
	code, out, errOut := run(t, "config")
	if code != 0 {
		t.Fatal(errOut)
	}
	for _, want := range []string{
		`app                              = "shop"                                   # raijin.toml:1`,
		`installation_mode                = "binary"                                 # default`,
		`processes.worker                 = "shop work  (unit shop-worker.service)"  # raijin.toml:6`,
		`hosts.0.port                     = "1"                                      # raijin.toml:10`,
		`hosts.1.name                     = "beta.example.com"                       # default`,
		`secrets.adapter                  = "1password"                              # raijin.toml:16`,
		`aliases.sh                       = "app exec -i bash"                       # raijin.toml:18`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("config lacks\n%s\n in:\n%s", want, out)
		}
	}
	if code, out, _ := run(t, "config", "--version-source-check", "x"); code != 2 {
		t.Errorf("an unknown flag: %d %s", code, out)
	}
	code, out, _ = run(t, "config", "--json")
	if code != 0 || !strings.Contains(out, `"webserver.upstream": "default"`) || !strings.Contains(out, `"hosts.0.address": "raijin.toml:9"`) {
		t.Errorf("config --json sources:\n%s", out)
	}
}

func complete1(t *testing.T, line string) []string {
	t.Helper()
	t.Setenv("COMP_LINE", line)
	t.Setenv("COMP_POINT", "")
	code, out, errOut := run(t, "--completion", "complete")
	if code != 0 {
		t.Fatalf("complete %q: %d %s", line, code, errOut)
	}
	return strings.Fields(out)
}

func TestCompletion(t *testing.T) {
	project(t, opsTOML, map[string]string{".env.prod": "PORT=8000\n"})
	cases := []struct {
		line string
		want []string
		not  []string
	}{
		{"raijin ", []string{"deploy", "init", "up", "app", "server", "printenv", "config"}, nil},
		{"raijin se", []string{"server"}, []string{"deploy"}},
		{"raijin app ", []string{"status", "logs", "exec", "shell", "start", "stop", "restart", "export-config"}, []string{"deploy"}},
		{"raijin server ", []string{"bootstrap", "info", "exec", "create-user"}, nil},
		{"raijin app logs ", []string{"web", "worker"}, nil},
		{"raijin app restart w", []string{"web", "worker"}, nil},
		{"raijin app logs --f", []string{"--follow"}, nil},
		{"raijin init --p", []string{"--profile"}, nil},
		{"raijin -H ", []string{"alpha", "beta.example.com"}, nil},
		{"raijin app status --host a", []string{"alpha"}, []string{"beta.example.com"}},
		{"raijin deploy --", []string{"--dry-run", "--host", "--config"}, nil},
	}
	for _, c := range cases {
		got := complete1(t, c.line)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q completes to %v, missing %s", c.line, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("%q completes to %v, should not offer %s", c.line, got, w)
			}
		}
	}
	// COMP_POINT cuts the line where the cursor is.
	t.Setenv("COMP_LINE", "raijin app lo --follow")
	t.Setenv("COMP_POINT", "13")
	if _, out, _ := run(t, "--completion", "complete"); strings.TrimSpace(out) != "logs" {
		t.Errorf("with COMP_POINT: %q", out)
	}
}

// The generated scripts are valid for their shells and call raijin back with
// the command line.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, _ := run(t, "--completion", "generate", shell)
		if code != 0 || !strings.Contains(out, "raijin --completion complete") || !strings.Contains(out, "COMP_LINE") {
			t.Errorf("%s script:\n%s", shell, out)
		}
		if _, err := exec.LookPath(shell); err != nil {
			continue // the shell is not installed here; bash is checked below
		}
		f := filepath.Join(t.TempDir(), "comp."+shell)
		os.WriteFile(f, []byte(out), 0o644)
		if b, err := exec.Command(shell, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n on the script: %v\n%s", shell, err, b)
		}
	}
	// bash for real: source the script and ask it, with raijin on PATH.
	bin := filepath.Join(t.TempDir(), "raijin")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building raijin: %v\n%s", err, b)
	}
	project(t, opsTOML, map[string]string{".env.prod": "PORT=8000\n"})
	script := `eval "$(raijin --completion generate bash)"
COMP_LINE="raijin app logs w"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(raijin app logs w); COMP_CWORD=3
_raijin; printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "web\nworker" {
		t.Errorf("bash completion of `raijin app logs w`: %v %q", err, out)
	}
}

func TestInitProfilesAndRefusal(t *testing.T) {
	for _, profile := range []string{"binary", "python", "django"} {
		dir := filepath.Join(t.TempDir(), "My Shop_2")
		os.MkdirAll(dir, 0o755)
		t.Chdir(dir)
		if code, _, errOut := run(t, "init", "--profile", profile); code != 0 {
			t.Fatalf("init --profile %s: %s", profile, errOut)
		}
		toml, _ := os.ReadFile("raijin.toml")
		if !strings.Contains(string(toml), `app = "my-shop-2"`) {
			t.Errorf("%s: the app name from the directory:\n%s", profile, toml)
		}
		if st, err := os.Stat(".env.prod"); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: .env.prod should be 0600: %v", profile, err)
		}
		os.WriteFile("raijin.toml", []byte(strings.NewReplacer(`address = ""`, `address = "203.0.113.10"`).Replace(string(toml))), 0o644)
		if code, out, errOut := run(t, "config"); code != 0 || !strings.Contains(out, "my-shop-2") {
			t.Errorf("%s: config after filling in the address: %d %s%s", profile, code, out, errOut)
		}
		if profile == "binary" {
			if code, out, errOut := run(t, "recipe", "show"); code != 0 || !strings.Contains(out, "after     .raijin/hooks/after_done.lua") {
				t.Errorf("%s: recipe show should list the example hook: %s%s", profile, out, errOut)
			}
		}
		os.Remove(".raijin/deploy.lua")
		code, _, errOut := run(t, "init", "--profile", profile)
		if code != 2 || !strings.Contains(errOut, "writes nothing over existing files: raijin.toml, .env.prod, .raijin/hooks/after_done.lua") {
			t.Errorf("%s: a second init: %d %s", profile, code, errOut)
		}
		if _, err := os.Stat(".raijin/deploy.lua"); err == nil {
			t.Errorf("%s: a refused init wrote deploy.lua", profile)
		}
	}
	if code, _, errOut := run(t, "init", "--app", "Bad_Name"); code != 2 || !strings.Contains(errOut, "not a valid app name") {
		t.Errorf("init --app Bad_Name: %d %s", code, errOut)
	}
}

func TestAppName(t *testing.T) {
	for in, want := range map[string]string{"bookstore": "bookstore", "My Shop_2": "my-shop-2", "42things": "things", "--": "app", "Ünïcode app": "n-code-app"} {
		if got := appName(in); got != want {
			t.Errorf("appName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Usage errors of the app and server commands stop before any connection
// (the hosts here are unreachable: a connection attempt would say so).
func TestOperateUsageErrors(t *testing.T) {
	project(t, opsTOML, map[string]string{".env.prod": "PORT=8000\n"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"app", "shell"}, "an interactive session needs one host; raijin.toml has 2 (alpha, beta.example.com)"},
		{[]string{"app", "exec", "-i", "bash"}, "pick one with -H NAME"},
		{[]string{"sh"}, "an interactive session needs one host"}, // the alias
		{[]string{"app", "logs", "-f"}, "an interactive session needs one host"},
		{[]string{"app", "logs", "nosuch"}, `raijin.toml has no process "nosuch"`},
		{[]string{"app", "restart", "nosuch"}, "the processes are: web, worker"},
		{[]string{"server", "create-user", "Bad$Name"}, `user name "Bad$Name" is not valid`},
		{[]string{"-H", "gamma", "app", "status"}, "gamma"},
		{[]string{"app", "exec"}, "expected"},
	} {
		code, out, errOut := run(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "cannot reach") {
			t.Errorf("raijin %s: want exit 2 with %q: %d\n%s%s", strings.Join(c.args, " "), c.want, code, out, errOut)
		}
	}
}

// TestInitSchemaLine: raijin init's #:schema line names main's schema for
// a build that is not a release, and the release's own copy, at its tag,
// for a release.
func TestInitSchemaLine(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	for stamped, want := range map[string]string{
		"":                                   config.SchemaURL,
		"v0.0.0-20261206065000-7d57ab604c5b": config.SchemaURL,
		"v1.2.3":                             "https://raw.githubusercontent.com/raijin-deploy/raijin/v1.2.3/docs/raijin.schema.json",
	} {
		version = stamped
		path := filepath.Join(t.TempDir(), "raijin.toml")
		if code, _, errOut := run(t, "init", "-c", path); code != 0 {
			t.Fatalf("init (version %q): %s", stamped, errOut)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(data), "\n"); first != "#:schema "+want {
			t.Errorf("version %q: first line %q, want #:schema %s", stamped, first, want)
		}
	}
}
