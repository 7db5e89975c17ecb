package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestReleaseScript runs scripts/release.sh as a release would and checks what
// a user downloads: the binary, checksums that `sha256sum -c` verifies, and
// the stamped version printed by the binary. It builds for this machine
// only (RAIJIN_RELEASE_TARGETS): a cold cross-build of the four targets
// took minutes on a fresh clone; the script's default list is checked to
// hold the four.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds raijin once more, static and trimmed")
	}
	for _, tool := range []string{"bash", "sha256sum", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: this test runs it (scripts/test.sh runs on Debian, which has it)", tool)
		}
	}
	script, err := os.ReadFile("../../scripts/release.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`RAIJIN_RELEASE_TARGETS:-([^}]*)}`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/release.sh: no default for RAIJIN_RELEASE_TARGETS")
	}
	defaults := strings.Fields(string(m[1]))
	for _, want := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		if !slices.Contains(defaults, want) {
			t.Errorf("release.sh builds by default %v, without %s", defaults, want)
		}
	}

	const version = "v0.0.0-releasetest"
	dist := t.TempDir()
	cmd := exec.Command("bash", "../../scripts/release.sh", version)
	cmd.Env = append(os.Environ(), "RAIJIN_DIST="+dist, "RAIJIN_RELEASE_TARGETS="+runtime.GOOS+"/"+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	dir := filepath.Join(dist, version)
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	name := "raijin-" + version + "-" + runtime.GOOS + "-" + runtime.GOARCH
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("missing %s: %v", name, err)
	}
	if !strings.Contains(string(sums), "  "+name+"\n") {
		t.Errorf("SHA256SUMS has no line for %s:\n%s", name, sums)
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if runtime.GOOS == "linux" {
		// Static (CGO_ENABLED=0): no program interpreter to load it.
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a PT_INTERP header: not a static binary", name)
			}
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("raijin --version: %v", err)
	}
	want := "raijin " + version
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		want += " (commit " + string(head[:12])
	}
	if line := strings.TrimSpace(string(out)); !strings.HasPrefix(line, want) {
		t.Errorf("raijin --version = %q, want it to start with %q", line, want)
	}
	t.Logf("%s", out)
}
