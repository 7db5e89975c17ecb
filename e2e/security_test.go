package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// useEnvFile replaces the project's inline env with envfile = NAME holding text.
func (p *Project) useEnvFile(name, text string) {
	p.t.Helper()
	p.Write(name, text, 0o600)
	toml := readFile(p.t, filepath.Join(p.Dir, "raijin.toml"))
	re := regexp.MustCompile(`(?s)env = """.*?"""`)
	p.Write("raijin.toml", re.ReplaceAllString(toml, fmt.Sprintf("envfile = %q", name)), 0o644)
}

// Env values full of quotes, $(), backticks, newlines and spaces reach the app
// verbatim under systemd (EnvironmentFile=) and in a shell that sources
// .appenv (release_command); process commands and Lua hook arguments are
// quoted too; nothing extra runs.
func TestHostileValuesReachTheAppVerbatim(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "hostile", Hosts: []*TestHost{h}})
	pwned := fmt.Sprintf("/tmp/PWNED-%s", p.App)
	want := map[string]string{
		"DQ":   `say "hi" and \ backslash`,
		"SQ":   `it's 'quoted'`,
		"SUB":  `$(touch ` + pwned + `) ${HOME} $HOME`,
		"TICK": "`touch " + pwned + "`",
		"NL":   "line one\nline two",
		"SP":   "  two  spaces  ",
		"MIX":  `a'b"c$d` + "`e`" + `\f ; touch ` + pwned + ` & 100%`,
	}
	p.useEnvFile(".env.hostile", fmt.Sprintf(`PORT=%d
GREETING=hi
DQ='say "hi" and \ backslash'
SQ="it's 'quoted'"
SUB='$(touch %[2]s) ${HOME} $HOME'
TICK='`+"`touch %[2]s`"+`'
NL="line one\nline two"
SP='  two  spaces  '
MIX="a'b\"c\$d\`+"`e\\`"+`\\f ; touch %[2]s & 100%%"
`, p.Port, pwned))
	var release []string
	for k := range want {
		release = append(release, fmt.Sprintf(`printf %%s "$%s" > "$STATE_DIRECTORY/env-%s.out"`, k, k))
	}
	p.setRelease(strings.Join(release, " && "))
	hostile := "a 'b' \"c\" $(touch " + pwned + ") `touch " + pwned + "` ; & | > 100%"
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	toml = strings.Replace(toml, "[processes]\n", fmt.Sprintf("[processes]\nworker = %q\n",
		`sleep 3600 & printf '%s|%s' "$GREETING" '100% $(touch `+pwned+`) `+"`touch "+pwned+"`"+` ; &' > "$STATE_DIRECTORY/worker.out"; wait`), 1)
	p.Write("raijin.toml", toml, 0o644)
	p.Write("deploy.lua", fmt.Sprintf(`local raijin = require("raijin")
raijin.after("release", function(ctx)
  ctx.host:run("printf %%s " .. raijin.quote(%q) .. " > hook.out", { cwd = ctx.paths.app_dir })
end)
`, hostile), 0o644)

	p.MustRaijin("deploy")
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	for k, v := range want {
		if _, got := Get(t, url+"env/"+k); got != v {
			t.Errorf("under systemd the app sees %s=%q, want %q", k, got, v)
		}
		if got := h.Run(t, "sudo cat "+p.StateDir(h)+"/env-"+k+".out"); got != v {
			t.Errorf("release_command (through .apprun) sees %s=%q, want %q", k, got, v)
		}
	}
	if got := h.Run(t, "cat "+dir+"/hook.out"); got != hostile {
		t.Errorf("a hook argument quoted with raijin.quote arrived as %q, want %q", got, hostile)
	}
	waitFor(t, h, "sudo test -s "+p.StateDir(h)+"/worker.out", 20*time.Second)
	if got, want := h.Run(t, "sudo cat "+p.StateDir(h)+"/worker.out"), "hi|100% $(touch "+pwned+") `touch "+pwned+"` ; &"; got != want {
		t.Errorf("the worker process command ran as %q, want %q", got, want)
	}
	// The app's processes have a /tmp of their own (PrivateTmp).
	if out, ok := h.Try("sudo sh -c 'ls " + pwned + " /tmp/systemd-private-*/tmp/" + filepath.Base(pwned) + "'"); ok {
		t.Errorf("a hostile value ran a command on the server: %s", out)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("a hostile value ran a command on this machine")
	}
}

// Versions and app names that would escape the app directory or need quoting
// are refused with exit 2 before anything is connected to.
func TestBadNamesAndVersionsRefused(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "badnames", Hosts: []*TestHost{h}})
	for _, v := range []string{"../escape", "1 2", "$(id)", "`id`", "a/b", "1..2", ".hidden", "-rf", "1;id", "1\nid"} {
		r := p.Raijin("deploy", "--set-version="+v)
		if r.Code != 2 || !strings.Contains(r.Stderr, "not usable as a directory name") {
			t.Errorf("--set-version %q: want exit 2 naming the rule: %s", v, r)
		}
	}
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	for _, app := range []string{"../etc", "a b", "$(id)", "App", "a;b", "a/b", "a\\nb"} {
		p.Write("raijin.toml", strings.Replace(toml, fmt.Sprintf("app = %q", p.App), fmt.Sprintf("app = %q", app), 1), 0o644)
		r := p.Raijin("deploy")
		if r.Code != 2 || !strings.Contains(r.Stderr, "raijin.toml:1") || !strings.Contains(r.Stderr, "not a valid app name") {
			t.Errorf("app = %q: want exit 2 naming raijin.toml:1: %s", app, r)
		}
	}
	if out, ok := h.Try("test -e " + p.AppDir(h)); ok {
		t.Errorf("a refused deploy touched the host: %s", out)
	}
}

// Host keys: an unknown server is refused (naming --accept-new-host-key and
// the fingerprint); the flag records it; a changed key is refused even with
// the flag, showing the new fingerprint.
func TestHostKeys(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "hostkey", Hosts: []*TestHost{h}})
	khFile := filepath.Join(p.Home, ".ssh", "known_hosts")
	out, err := exec.Command("ssh-keygen", "-lf", h.KnownHosts).Output()
	must(t, err)
	fp := strings.Fields(string(out))[1] // SHA256:...

	must(t, os.Remove(khFile))
	r := p.Raijin("deploy")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not known") || !strings.Contains(r.Stderr, "--accept-new-host-key") || !strings.Contains(r.Stderr, " key SHA256:") {
		t.Fatalf("an unknown host key should be refused naming the flag and the fingerprint: %s", r)
	}
	if _, err := os.Stat(khFile); err == nil && strings.Contains(readFile(t, khFile), h.Addr) {
		t.Errorf("a refused host key was recorded")
	}

	p.MustRaijin("deploy", "--accept-new-host-key")
	if kh := readFile(t, khFile); !strings.HasPrefix(kh, h.Addr+" ") {
		t.Errorf("--accept-new-host-key did not record the key: %q", kh)
	}
	p.MustRaijin("deploy", "--set-version", "1.0.1")

	tmp := t.TempDir()
	must(t, exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(tmp, "k")).Run())
	pub := strings.Fields(readFile(t, filepath.Join(tmp, "k.pub")))
	must(t, os.WriteFile(khFile, []byte(h.Addr+" "+pub[0]+" "+pub[1]+"\n"), 0o600))
	r = p.Raijin("deploy", "--set-version", "1.0.2", "--accept-new-host-key")
	if r.Code == 0 || !strings.Contains(r.Stderr, "CHANGED") || !strings.Contains(r.Stderr, fp) {
		t.Fatalf("a changed host key must be refused with its fingerprint %s, even with --accept-new-host-key: %s", fp, r)
	}
	p.serving(h, "1.0.1", "after the refused connection")
}

// The secret's value never appears in raijin's output (plain, -v, --json,
// printenv, a failing release command's error) nor in the server's process
// list during a deploy; the .env holding it is 0600 and the deploy user's.
func TestSecretsNeverShown(t *testing.T) {
	h := host(t, 0)
	secret := fmt.Sprintf("s3cr3t-%d-value", time.Now().UnixNano())
	p := NewProject(t, ProjectSpec{App: "secret", Hosts: []*TestHost{h}, HostEnv: "API_TOKEN=$E2E_API_TOKEN"})
	p.Env = append(p.Env, "E2E_API_TOKEN="+secret)

	// ps on the server in a loop, for as long as the deploys run.
	ps := exec.Command("ssh", "-i", h.Key, "-o", "UserKnownHostsFile="+h.KnownHosts, "-o", "BatchMode=yes",
		"root@"+h.Addr, "while :; do ps -eo args; sleep 0.02; done")
	var psOut bytes.Buffer
	ps.Stdout = &psOut
	must(t, ps.Start())
	time.Sleep(300 * time.Millisecond)

	var all strings.Builder
	for i, args := range [][]string{{"deploy"}, {"deploy", "-v", "--set-version", "1.1.0"}, {"deploy", "--json", "--set-version", "1.2.0"}, {"printenv"}, {"printenv", "--json"}} {
		r := p.MustRaijin(args...)
		all.WriteString(r.Stdout + r.Stderr)
		if i == 1 && !strings.Contains(r.Stderr, "] upload ") {
			t.Errorf("-v echoed no commands: %s", r)
		}
	}
	p.setRelease(`echo "the token is $API_TOKEN" >&2; exit 5`)
	for _, args := range [][]string{{"deploy", "--set-version", "1.3.0"}, {"deploy", "-v", "--set-version", "1.3.0"}, {"deploy", "--json", "--set-version", "1.3.0"}} {
		r := p.Raijin(args...)
		if r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "the token is ******") {
			t.Errorf("%v: want exit 1 with the release command's stderr, token redacted: %s", args, r)
		}
		all.WriteString(r.Stdout + r.Stderr)
	}
	// A recipe that would put the secret on a command line (here read back
	// from the server: Lua never gets secrets from raijin) is stopped.
	p.setRelease(p.App + " migrate")
	p.Write("deploy.lua", `local raijin = require("raijin")
raijin.after("release", function(ctx)
  local env = ctx.host:read(ctx.paths.app_dir .. "/.env")
  ctx.host:run("echo " .. raijin.quote(env) .. " > leaked.txt", { cwd = ctx.paths.app_dir })
end)
`, 0o644)
	r := p.Raijin("deploy", "-v", "--set-version", "1.4.0")
	all.WriteString(r.Stdout + r.Stderr)
	if r.Code != 1 || !strings.Contains(r.Stderr, "holds a secret value, which would show in the server's process list") {
		t.Errorf("a recipe putting the secret on a command line: want exit 1 and a refusal: %s", r)
	}
	if out, ok := h.Try("test -e " + p.AppDir(h) + "/leaked.txt"); ok {
		t.Errorf("the command with the secret ran: %s", out)
	}
	os.Remove(filepath.Join(p.Dir, "deploy.lua"))
	ps.Process.Kill()
	ps.Wait()

	if strings.Contains(all.String(), secret) {
		t.Errorf("the secret appears in raijin's output")
	}
	if n := strings.Count(psOut.String(), "\n"); n < 1000 {
		t.Errorf("the ps loop saw only %d lines: it did not watch the deploys", n)
	}
	if strings.Contains(psOut.String(), secret) {
		t.Errorf("the secret appears in the server's process list")
	}
	if _, got := Get(t, p.SiteURL(h)+"env/API_TOKEN"); got != secret {
		t.Errorf("the app sees API_TOKEN=%q, want the secret", got)
	}
	if got := h.Run(t, "cd "+p.AppDir(h)+" && stat -c '%a %U %G' .env v1.2.0/.env"); got != "640 "+h.User+" "+p.App+"\n640 "+h.User+" "+p.App+"\n" {
		t.Errorf(".env modes and owners: %q, want 640 %s:%s", got, h.User, p.App)
	}
	// .versions and the audit log are the deploy user's alone too.
	if got := h.Run(t, "cd "+p.AppDir(h)+" && stat -c '%a %U' .versions .audit.jsonl"); got != "600 "+h.User+"\n600 "+h.User+"\n" {
		t.Errorf(".versions and .audit.jsonl modes and owners: %q, want 600 %s", got, h.User)
	}

	// app exec and server exec hide it in what they print, on stdout and
	// stderr; app exec --raw prints it as it comes.
	for _, args := range [][]string{
		{"app", "exec", "printenv API_TOKEN; printenv API_TOKEN >&2"},
		{"server", "exec", "cat " + p.AppDir(h) + "/.env"},
	} {
		r := p.MustRaijin(args...)
		if strings.Contains(r.Stdout+r.Stderr, secret) || !strings.Contains(r.Stdout, "******") {
			t.Errorf("%v shows the secret, or nothing in its place: %s", args, r)
		}
	}
	if r := p.MustRaijin("app", "exec", "--raw", "printenv API_TOKEN"); r.Stdout != secret+"\n" {
		t.Errorf("app exec --raw: %s", r)
	}
}

// Without a terminal (stdin closed, no ssh-agent) raijin never waits: each
// case fails at once naming the flag or setting to use.
func TestNoTerminalNeverWaits(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "noterm", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	p.MustRaijin("deploy", "--set-version", "1.1.0")

	check := func(name string, want []string, args ...string) {
		t.Helper()
		start := time.Now()
		r := p.Raijin(args...) // stdin: /dev/null; SSH_AUTH_SOCK empty
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: took %s without a terminal", name, d)
		}
		if r.Code == 0 {
			t.Errorf("%s: exited 0: %s", name, r)
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: the message lacks %q: %s", name, w, r)
			}
		}
	}
	check("rollback without -y", []string{"no terminal", "-y"}, "rollback")

	key := filepath.Join(p.Home, ".ssh", "id_ed25519")
	plain := readFile(t, key)
	must(t, exec.Command("ssh-keygen", "-q", "-p", "-N", "a passphrase", "-f", key).Run())
	check("an encrypted key without an agent", []string{"is encrypted", "ssh-agent", "never asks for a passphrase"}, "deploy")
	must(t, os.WriteFile(key, []byte(plain), 0o600))

	kh := filepath.Join(p.Home, ".ssh", "known_hosts")
	khData := readFile(t, kh)
	must(t, os.Remove(kh))
	check("an unknown host key", []string{"--accept-new-host-key"}, "deploy")
	must(t, os.WriteFile(kh, []byte(khData), 0o600))
	p.serving(h, "1.1.0", "after the refusals")
}

// A broken project recipe: a syntax error, a phase that loops forever
// (stopped by phase_timeout: 8 s, which a build on a busy machine stays
// under), a phase that raises. Each gives a clear error
// and leaves the previous version serving.
func TestBrokenRecipes(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "badlua", Hosts: []*TestHost{h}, Extra: `phase_timeout = "8s"`})
	p.MustRaijin("deploy")

	cases := []struct {
		name, lua string
		want      []string
	}{
		{"syntax error", "local raijin = require(\"raijin\")\nraijin.after(\"install\", function(ctx)\n  ctx.host:run(\"true\"\nend)\n", []string{"deploy.lua:4: syntax error near 'end'"}},
		{"endless loop", "local raijin = require(\"raijin\")\nraijin.after(\"install\", function(ctx)\n  while true do end\nend)\n", []string{"phase install:", "the phase ran longer than phase_timeout (8s)", "1.0.0 was restored"}},
		{"remote command that hangs", "local raijin = require(\"raijin\")\nraijin.after(\"install\", function(ctx)\n  ctx.host:run(\"touch hung && sleep 600\", { cwd = ctx.paths.app_dir })\nend)\n", []string{"phase install:", "the phase ran longer than phase_timeout (8s)", "1.0.0 was restored"}},
		{"raise", "local raijin = require(\"raijin\")\nraijin.after(\"install\", function(ctx)\n  error(\"refusing on purpose\")\nend)\n", []string{"phase install:", "deploy.lua:3: refusing on purpose", "1.0.0 was restored"}},
	}
	for _, c := range cases {
		p.Write("deploy.lua", c.lua, 0o644)
		start := time.Now()
		r := p.Raijin("deploy", "--set-version", "2.0.0")
		if r.Code == 0 {
			t.Errorf("%s: exited 0", c.name)
		}
		if d := time.Since(start); d > 60*time.Second {
			t.Errorf("%s: took %s", c.name, d)
		}
		for _, w := range c.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: the error lacks %q: %s", c.name, w, r)
			}
		}
		p.serving(h, "1.0.0", "after the "+c.name)
		if c.name == "remote command that hangs" {
			out := h.Run(t, "test -e "+p.AppDir(h)+"/hung && { pgrep -u "+h.User+" -f '[s]leep 600'; echo rc=$?; }")
			if !strings.HasSuffix(out, "rc=1\n") {
				t.Errorf("the timed-out remote command should be gone (pgrep: no match): %q", out)
			}
		}
		if got := p.current(h); got != "v1.0.0/goapp\n1.0.0\n" {
			t.Errorf("%s: the app dir says %q, want 1.0.0", c.name, got)
		}
		if out, ok := h.Try("test -e " + p.AppDir(h) + "/.lock"); ok {
			t.Errorf("%s: the lock was left behind: %s", c.name, out)
		}
	}
}

// A health_check path with shell syntax in it is only ever a path: the failed
// check quotes it back, and nothing runs (the check's script runs as root).
func TestHealthCheckPathIsQuoted(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "hcquote", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	pwned := "/tmp/PWNED-" + p.App
	path := "/up?x=$(touch${IFS}" + pwned + ")`touch${IFS}" + pwned + "`"
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	toml = strings.Replace(toml, `health_check = "/up"`, fmt.Sprintf("health_check = %q\nhealth_check_timeout = \"3s\"", path), 1)
	toml = strings.Replace(toml, "env = \"\"\"\n", "env = \"\"\"\nFAIL_HEALTH=1\n", 1)
	p.Write("raijin.toml", toml, 0o644)
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 4 || !strings.Contains(r.Stderr, "health check GET "+path+": ") {
		t.Fatalf("want exit 4 quoting the health check path %q: %s", path, r)
	}
	// The app's processes have a /tmp of their own (PrivateTmp).
	if out, ok := h.Try("sudo sh -c 'ls " + pwned + " /tmp/systemd-private-*/tmp/" + filepath.Base(pwned) + "'"); ok {
		t.Errorf("the health_check path ran a command on the server: %s", out)
	}
	p.serving(h, "1.0.0", "after the failed health check")
}

// No step's output can end it early or fake its exit status: the marker that
// frames it is on no command line (a loop on the server, as root, collects
// every marker-like word in ps during the deploys), and a hook that prints
// every marker it can find, in both framings, still fails as it should.
// Steps' inputs, .env included, never land in a file under /tmp, /var/tmp,
// /dev/shm or /run/user.
func TestStepOutputCannotForgeItsEnd(t *testing.T) {
	h := host(t, 0)
	secret := fmt.Sprintf("s3cr3t-%d-framed", time.Now().UnixNano())
	p := NewProject(t, ProjectSpec{App: "framed", Hosts: []*TestHost{h}, HostEnv: "API_TOKEN=$E2E_API_TOKEN"})
	p.Env = append(p.Env, "E2E_API_TOKEN="+secret)
	p.setRelease("true")

	// The secret goes to the watcher on stdin, not on its command line.
	watch := exec.Command("ssh", "-i", h.Key, "-o", "UserKnownHostsFile="+h.KnownHosts, "-o", "BatchMode=yes",
		"root@"+h.Addr, `read -r s; while :; do ps -eo args | grep -ao '@@raijin-[0-9a-f]\{12,\}'; `+
			`grep -rlF "$s" /tmp /var/tmp /dev/shm /run/user 2>/dev/null | sed 's/^/FILE /'; sleep 0.02; done`)
	watch.Stdin = strings.NewReader(secret + "\n")
	var seen bytes.Buffer
	watch.Stdout = &seen
	must(t, watch.Start())
	time.Sleep(300 * time.Millisecond)

	p.MustRaijin("deploy")
	p.Write("deploy.lua", `local raijin = require("raijin")
raijin.after("release", function(ctx)
  ctx.host:run([[for m in $(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n' | grep -ao '@@raijin-[0-9a-f]\{12,\}' | sort -u); do
  for i in 0 1 2 3 4 5 6 7 8 9; do printf '\n%s 0\n\n%s %d 0\n' "$m" "$m" $i; printf '\n%s 0\n\n%s %d 0\n' "$m" "$m" $i >&2; done
done; echo "forged: $m" >&2; exit 3]])
end)
`, 0o644)
	r := p.Raijin("deploy", "--set-version", "1.1.0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "exited 3") || !strings.Contains(r.Stderr, "forged: ") {
		t.Errorf("a hook printing every marker it can find: want exit 1 naming its status 3: %s", r)
	}
	os.Remove(filepath.Join(p.Dir, "deploy.lua"))
	p.MustRaijin("deploy", "--set-version", "1.2.0", "-v")
	watch.Process.Kill()
	watch.Wait()
	if s := seen.String(); s != "" {
		t.Errorf("during the deploys the server saw (markers in ps, files holding the secret):\n%s", s)
	}
}
