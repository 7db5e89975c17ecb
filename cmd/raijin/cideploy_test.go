package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRaijin stands for raijin in examples/ci/deploy.sh's tests: it checks
// what the script set up while it runs (the key file's mode, no key in the
// environment, the config, the umask) and exits 3.
const fakeRaijin = `#!/bin/sh
ssh="$HOME/.ssh"
fail() { echo "fake raijin: $*" >&2; exit 90; }
[ "$*" = "deploy --json -d staging" ] || fail "arguments: $*"
[ -n "$(find "$ssh/raijin_deploy_key" -perm 600)" ] || fail "the key file's mode is not 0600"
grep -q '^-----BEGIN' "$ssh/raijin_deploy_key" || fail "the key file does not hold the key"
if env | grep -q '^RAIJIN_SSH_KEY='; then fail "RAIJIN_SSH_KEY is in the environment"; fi
[ "$(umask)" = 0022 ] || fail "umask $(umask)"
grep -qx '    IdentityFile ~/.ssh/raijin_deploy_key' "$ssh/config" || fail "no IdentityFile"
grep -qx '    UserKnownHostsFile ~/.ssh/raijin_known_hosts' "$ssh/config" || fail "no UserKnownHostsFile"
grep -q '^203.0.113.10 ' "$ssh/raijin_known_hosts" || fail "no host key copy"
echo "fake raijin ran"
exit 3
`

// ciDeploy runs examples/ci/deploy.sh from a project whose path holds a
// space, with the fake raijin first on PATH and an empty HOME.
func ciDeploy(t *testing.T, knownHosts string) (home string, out string, code int) {
	t.Helper()
	for _, tool := range []string{"sh", "find", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: this test runs it (scripts/test.sh runs on Debian, which has it)", tool)
		}
	}
	dir := t.TempDir()
	project := filepath.Join(dir, "my project")
	bin := filepath.Join(dir, "bin")
	home = filepath.Join(dir, "home")
	script, err := os.ReadFile("../../examples/ci/deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(project, "ci"), bin, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, f := range map[string]struct {
		data string
		mode os.FileMode
	}{
		filepath.Join(project, "ci", "deploy.sh"):   {string(script), 0o755},
		filepath.Join(project, "ci", "known_hosts"): {knownHosts, 0o644},
		filepath.Join(bin, "raijin"):                {fakeRaijin, 0o755},
	} {
		if err := os.WriteFile(name, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", "umask 022; exec sh ci/deploy.sh -d staging")
	cmd.Dir = project
	cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home,
		"RAIJIN_SSH_KEY=-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----"}
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return home, string(b), code
}

// TestCIDeployScript: the CI deploy step passes raijin's exit code through
// and removes the key, the config and the host keys' copy when raijin
// ends, which a self-hosted runner, that keeps its HOME, needs.
func TestCIDeployScript(t *testing.T) {
	home, out, code := ciDeploy(t, "# the servers\n203.0.113.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLE\n")
	if code != 3 || !strings.Contains(out, "fake raijin ran") {
		t.Fatalf("deploy.sh: exit %d, want raijin's 3\n%s", code, out)
	}
	left, _ := filepath.Glob(filepath.Join(home, ".ssh", "*"))
	if len(left) > 0 {
		t.Errorf("deploy.sh left %v", left)
	}
}

// TestCIDeployScriptRefuses: a known_hosts with comments only stops the
// step before raijin runs.
func TestCIDeployScriptRefuses(t *testing.T) {
	_, out, code := ciDeploy(t, "# ssh-keyscan's output goes here\n\n")
	if code != 2 || strings.Contains(out, "fake raijin ran") || !strings.Contains(out, "no host key") {
		t.Errorf("comments-only known_hosts: exit %d\n%s", code, out)
	}
}
