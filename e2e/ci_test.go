package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ciStep is one step of the example workflow: its run line and the names of
// the environment variables it is given.
type ciStep struct {
	run string
	env []string
}

// workflowStep reads the step named name of a GitHub Actions workflow: just
// enough YAML for the example's flat steps (name, env, run on one line each).
func workflowStep(t *testing.T, file, name string) ciStep {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	var st ciStep
	in, inEnv := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "- "):
			if in {
				return st
			}
			in = l == "- name: "+name
		case !in:
		case l == "env:":
			inEnv = true
		case strings.HasPrefix(l, "run:"):
			inEnv = false
			st.run = strings.TrimSpace(strings.TrimPrefix(l, "run:"))
		case inEnv && strings.Contains(l, ":"):
			k, _, _ := strings.Cut(l, ":")
			st.env = append(st.env, k)
		}
	}
	if !in || st.run == "" {
		t.Fatalf("%s: no step %q with a run line", file, name)
	}
	return st
}

// ciRun runs the workflow's deploy step as the runner would: in the project
// directory, with ci/deploy.sh and ci/known_hosts of the example layout, a
// HOME of its own with nothing in it, and the step's environment (the CI
// secrets) taken from env.
func ciRun(t *testing.T, p *Project, knownHosts []byte, env map[string]string) (Result, string) {
	t.Helper()
	return ciRunIn(t, p, knownHosts, env, t.TempDir())
}

// ciRunIn is ciRun with the runner's HOME given.
func ciRunIn(t *testing.T, p *Project, knownHosts []byte, env map[string]string, home string) (Result, string) {
	t.Helper()
	step := workflowStep(t, filepath.Join(repoRoot, "examples/ci/github-actions/deploy.yml"), "Deploy")
	script, err := os.ReadFile(filepath.Join(repoRoot, "examples/ci/deploy.sh"))
	must(t, err)
	p.Write("ci/deploy.sh", string(script), 0o755)
	p.Write("ci/known_hosts", string(knownHosts), 0o644)
	cmd := exec.Command("sh", "-c", step.run)
	cmd.Dir = p.Dir
	cmd.Env = append([]string{"PATH=" + filepath.Dir(raijinBin) + ":" + os.Getenv("PATH"), "HOME=" + home, "CI=true", "NO_COLOR=1"}, goEnv...)
	for _, k := range step.env {
		v, ok := env[k]
		if !ok {
			t.Fatalf("the workflow's deploy step takes %s, which the test does not give", k)
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r, home
}

// TestCIWorkflowDeploys runs the example GitHub Actions workflow's deploy
// step (examples/ci) as a runner would: a fresh HOME, the deploy key and
// the app's secret from the environment, the host keys pinned in the
// repository. The deploy succeeds, the app answers, stdout is raijin's JSON
// events, and the secret's value appears nowhere in the output.
func TestCIWorkflowDeploys(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "ci", Hosts: []*TestHost{h}, HostEnv: "DB_PASSWORD=$prod-db-password"})
	key, err := os.ReadFile(h.Key)
	must(t, err)
	pinned, err := os.ReadFile(h.KnownHosts)
	must(t, err)
	// Characters a shell, a .env file or JSON would have to escape.
	secret := fmt.Sprintf(`ci-secret-%d " \ ' < & > value`, os.Getpid())
	r, home := ciRun(t, p, pinned, map[string]string{"RAIJIN_SSH_KEY": string(key), "PROD_DB_PASSWORD": secret})
	if r.Code != 0 {
		t.Fatalf("the workflow's deploy step: %s", r)
	}
	var last map[string]any
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["event"] == nil {
			t.Fatalf("stdout line is not a JSON event: %q", l)
		}
		last = e
	}
	if last["event"] != "result" || last["ok"] != true {
		t.Errorf("the last event is not a successful result: %v", last)
	}
	output := r.Stdout + r.Stderr
	for _, form := range jsonForms(secret) {
		if strings.Contains(output, form) {
			t.Errorf("the secret's value is in the output (as %q):\n%s", form, r)
		}
	}
	for _, line := range strings.Split(string(key), "\n") {
		if line = strings.TrimSpace(line); line != "" && strings.Contains(output, line) {
			t.Errorf("a line of the private key is in the output: %q", line)
		}
	}
	if code, body := Get(t, p.SiteURL(h)); code != 200 || !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("the app after the CI deploy: %d %q", code, body)
	}
	want := `DB_PASSWORD="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(secret) + `"`
	if got := h.Root(t, "cat "+p.AppDir(h)+"/v1.0.0/.env"); !strings.Contains(got, want) {
		t.Errorf("the secret did not reach the server's .env as %s", want)
	}
	ciLeftNothing(t, home)
}

// jsonForms are a value as it is and as JSON writes it, with and without
// HTML escaping (<, &, > as \u003c, \u0026, \u003e).
func jsonForms(v string) []string {
	forms := []string{v}
	for _, html := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(v); err == nil {
			forms = append(forms, strings.Trim(strings.TrimSpace(b.String()), `"`))
		}
	}
	return forms
}

// ciLeftNothing: the deploy step removed the key, the config and the host
// keys' copy it wrote, as a self-hosted runner, which keeps its HOME,
// needs.
func ciLeftNothing(t *testing.T, home string) {
	t.Helper()
	for _, f := range []string{"raijin_deploy_key", "config", "raijin_known_hosts"} {
		if _, err := os.Stat(filepath.Join(home, ".ssh", f)); !os.IsNotExist(err) {
			t.Errorf("~/.ssh/%s is left after the deploy step (%v)", f, err)
		}
	}
}

// TestCIWorkflowRefusesUnpinnedHostKey: a server whose host key is not the
// one pinned in the repository is refused, changed or unknown, and nothing
// is deployed.
func TestCIWorkflowRefusesUnpinnedHostKey(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "cibad", Hosts: []*TestHost{h}})
	key, err := os.ReadFile(h.Key)
	must(t, err)
	pinned, err := os.ReadFile(h.KnownHosts)
	must(t, err)
	hostField := strings.Fields(string(pinned))[0]
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub, err := os.ReadFile(other + ".pub")
	must(t, err)
	pub := strings.Fields(string(otherPub))
	for name, kh := range map[string]string{
		"changed": hostField + " " + pub[0] + " " + pub[1] + "\n",
		"unknown": "203.0.113.99 " + pub[0] + " " + pub[1] + "\n",
	} {
		r, home := ciRun(t, p, []byte(kh), map[string]string{"RAIJIN_SSH_KEY": string(key), "PROD_DB_PASSWORD": "unused"})
		ciLeftNothing(t, home)
		if r.Code == 0 {
			t.Fatalf("%s host key: the deploy went through:\n%s", name, r)
		}
		if !strings.Contains(strings.ToLower(r.Stdout+r.Stderr), "host key") {
			t.Errorf("%s host key: the error does not say so:\n%s", name, r)
		}
		if !strings.Contains(r.Stderr, "ci/known_hosts (as ~/.ssh/raijin_known_hosts for the run)") {
			t.Errorf("%s host key: ci/deploy.sh does not name the file to fix:\n%s", name, r)
		}
		t.Logf("%s host key: exit %d\n%s%s", name, r.Code, r.Stdout, r.Stderr)
	}
	if _, ok := h.Try("test -e " + p.AppDir(h)); ok {
		t.Errorf("%s exists after refused deploys", p.AppDir(h))
	}

	// A runner whose ~/.ssh/config exists (a self-hosted one, say): the
	// step refuses to run rather than overwrite or remove it.
	home := t.TempDir()
	mineConfig := "Host build-cache\n    User me\n"
	must(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	must(t, os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(mineConfig), 0o600))
	r, _ := ciRunIn(t, p, pinned, map[string]string{"RAIJIN_SSH_KEY": string(key), "PROD_DB_PASSWORD": "unused"}, home)
	if r.Code != 2 || !strings.Contains(r.Stderr, "config exists; this script writes its own") {
		t.Errorf("with an existing ~/.ssh/config: exit %d, want 2 and the reason:\n%s", r.Code, r)
	}
	if b, err := os.ReadFile(filepath.Join(home, ".ssh", "config")); err != nil || string(b) != mineConfig {
		t.Errorf("the runner's ~/.ssh/config became %q (%v)", b, err)
	}
	for _, f := range []string{"raijin_deploy_key", "raijin_known_hosts"} {
		if _, err := os.Stat(filepath.Join(home, ".ssh", f)); !os.IsNotExist(err) {
			t.Errorf("~/.ssh/%s written although the step refused to run (%v)", f, err)
		}
	}
	if _, ok := h.Try("test -e " + p.AppDir(h)); ok {
		t.Errorf("%s exists after a refused step", p.AppDir(h))
	}
}
