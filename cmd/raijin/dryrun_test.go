package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testkit"
)

// dryRunProject is a project with every kind of recipe change: a deploy.lua
// override and after hook, a Lua hook file and an executable hook, and a
// secret in the env.
var dryRunProject = map[string]string{
	"raijin.toml": `app = "shop"
version = "1.4.0"
build_command = "go build -o dist/shop ."
distfile = "dist/shop"
release_command = "shop migrate"

[webserver]
upstream = "localhost:8000"
health_check = "/up"

[processes]
web = "shop serve --port $PORT"

[[hosts]]
name = "prod"
address = "203.0.113.10"
user = "deploy"
domain_name = "shop.example.com"
env = """
PORT=8000
DB_PASSWORD=$RAIJIN_DRYRUN_DB_PASSWORD
"""

[[hosts]]
name = "prod2"
address = "203.0.113.11"
user = "deploy"
domain_name = "shop2.example.com"
env = """
PORT=8000
DB_PASSWORD=$RAIJIN_DRYRUN_DB_PASSWORD
"""
`,
	"deploy.lua": `local raijin = require("raijin")

raijin.override("release", function(ctx, default)
  default(ctx)
  ctx.host:run("./shop warm-cache", { app = true })
end)

raijin.after("services", function(ctx)
  ctx.host:write(ctx.paths.app_dir .. "/DEPLOYED_BY", "raijin " .. ctx.version .. "\n")
end)
`,
	".raijin/hooks/before_release.lua": `local ctx = ...
ctx.host:run("echo before release of " .. ctx.version)
`,
	".raijin/hooks/after_release": "#!/bin/sh\necho released\n",
}

// `raijin deploy --dry-run -v` prints, per host and phase, every command and
// file (with contents), connects to nothing and shows no secret.
func TestDeployDryRunGolden(t *testing.T) {
	dir := t.TempDir()
	testkit.WriteFiles(t, dir, dryRunProject)
	const secret = "pa55-w0rd-never-shown"
	t.Setenv("RAIJIN_DRYRUN_DB_PASSWORD", secret)
	t.Setenv("NO_COLOR", "1")
	var out, errb bytes.Buffer
	code := Run([]string{"-c", filepath.Join(dir, "raijin.toml"), "deploy", "--dry-run", "-v"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), secret) {
		t.Errorf("the secret is in the dry run's output")
	}
	if _, err := os.Stat(filepath.Join(dir, "dist")); err == nil {
		t.Errorf("the dry run ran the build")
	}
	// Without -v: the same commands and files, without their contents.
	var short, shortErr bytes.Buffer
	if code := Run([]string{"-c", filepath.Join(dir, "raijin.toml"), "deploy", "--dry-run"}, strings.NewReader(""), &short, &shortErr); code != 0 {
		t.Fatalf("without -v: exit %d\n%s", code, shortErr.String())
	}
	var withoutContent []string
	for _, l := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(l, "         | ") {
			withoutContent = append(withoutContent, l)
		}
	}
	if normalize(short.String(), dir) != normalize(strings.Join(withoutContent, "\n"), dir) {
		t.Errorf("without -v the dry run should list the same actions without file contents:\n%s", short.String())
	}

	got := normalize(out.String(), dir)
	golden := filepath.Join("testdata", "deploy-dry-run.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDeployDryRunGolden -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("dry run output differs from %s (rerun with -update if the change is meant):\n%s", golden, lineDiff(string(want), got))
	}
}

// normalize takes out of a dry run what changes from run to run: the
// project's directory, and the lock's and the audit line's who, when and
// token.
func normalize(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "$PROJECT")
	for _, r := range []struct{ re, with string }{
		{`"user":"[^"]*","machine":"[^"]*"`, `"user":"USER","machine":"MACHINE"`},
		{`"pid":\d+`, `"pid":PID`},
		{`"(since|time)":"[^"]*"`, `"$1":"TIME"`},
		{`"duration_s":[0-9.e-]+`, `"duration_s":SECONDS`},
		{`"token":"[a-z0-9]+"`, `"token":"TOKEN"`},
		{`grep -qF [a-z0-9]+ `, `grep -qF TOKEN `},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.with)
	}
	return s
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + itoa(i+1) + ":\n  want " + wl + "\n  got  " + gl + "\n")
			if shown++; shown == 5 {
				break
			}
		}
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// writeProject writes the dry-run project with deploy.lua replaced.
func writeProject(t *testing.T, deployLua string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"raijin.toml": dryRunProject["raijin.toml"], "deploy.lua": deployLua}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("RAIJIN_DRYRUN_DB_PASSWORD", "x")
	return filepath.Join(dir, "raijin.toml")
}

// A recipe error names host, phase, file and line; the Lua traceback comes
// only with -v.
func TestRecipeErrorTracebackOnlyWithVerbose(t *testing.T) {
	cfg := writeProject(t, `local raijin = require("raijin")
local function check(ctx)
  error("no deploys on Friday")
end
raijin.before("release", function(ctx) check(ctx) end)
`)
	for _, verbose := range []bool{false, true} {
		args := []string{"-c", cfg, "deploy", "--dry-run"}
		if verbose {
			args = append(args, "-v")
		}
		var out, errb bytes.Buffer
		if code := Run(args, strings.NewReader(""), &out, &errb); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, errb.String())
		}
		if !strings.Contains(errb.String(), "raijin: host prod: phase release: deploy.lua:3: no deploys on Friday\n") {
			t.Errorf("error line missing:\n%s", errb.String())
		}
		hasTrace := strings.Contains(errb.String(), "stack traceback:\n") && strings.Contains(errb.String(), "deploy.lua:5: in ")
		if hasTrace != verbose {
			t.Errorf("-v=%v: traceback shown=%v:\n%s", verbose, hasTrace, errb.String())
		}
	}
}

// An override of a phase that does not exist stops raijin before anything
// runs: exit 2, the file and line, the phases there are.
func TestRecipeUnknownPhaseExit2(t *testing.T) {
	cfg := writeProject(t, "local raijin = require('raijin')\n\nraijin.override('migrate', function(ctx, default) end)\n")
	var out, errb bytes.Buffer
	if code := Run([]string{"-c", cfg, "deploy", "--dry-run"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, errb.String())
	}
	for _, want := range []string{`deploy.lua:3: raijin.override: no phase "migrate"; the phases are: apps_dir, balancer, build, `, "hint: name one of the phases listed"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(out.String(), "== ") {
		t.Errorf("phases ran:\n%s", out.String())
	}
}
