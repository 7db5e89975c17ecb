package recipes

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// venvScript is the shell text of `local NAME = [[...]]` in steps/venv.lua,
// with the scripts it is made of (NAME .. [[...]]) joined in.
func venvScript(t *testing.T, name string) string {
	t.Helper()
	src, err := FS.ReadFile("steps/venv.lua")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nlocal ` + name + ` = \[\[(.*?)\]\]\n`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("no local %s = [[...]] in steps/venv.lua", name)
	}
	return string(m[1])
}

// run runs script with sh in dir and returns its output.
func run(t *testing.T, dir, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// The prune of .deps deletes the environments no version uses, and only
// real directories in .deps: a symbolic link, in .deps or as .deps, is
// never followed out of the app directory.
func TestPruneDepsFollowsNoLink(t *testing.T) {
	script := venvScript(t, "PRUNE_DEPS")
	root := t.TempDir()
	app, outside := filepath.Join(root, "app"), filepath.Join(root, "outside")
	mkdirs(t, filepath.Join(app, ".deps", "aaaa"), filepath.Join(app, ".deps", "bbbb"), filepath.Join(app, "v1"),
		filepath.Join(outside, "precious"))
	os.WriteFile(filepath.Join(app, "v1", ".deps"), []byte("aaaa\n"), 0o644)
	os.Symlink(outside, filepath.Join(app, ".deps", "cccc"))
	if out, err := run(t, app, script); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !exists(filepath.Join(app, ".deps", "aaaa")) || exists(filepath.Join(app, ".deps", "bbbb")) {
		t.Error("the used environment went, or the unused one stayed")
	}
	if !exists(filepath.Join(outside, "precious")) || !exists(filepath.Join(app, ".deps", "cccc")) {
		t.Error("the prune followed a link in .deps")
	}

	// .deps itself a link out of the app directory.
	app2 := filepath.Join(root, "app2")
	mkdirs(t, app2, filepath.Join(outside, "dddd"))
	os.Symlink(outside, filepath.Join(app2, ".deps"))
	if out, err := run(t, app2, script); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !exists(filepath.Join(outside, "dddd")) || !exists(filepath.Join(outside, "precious")) {
		t.Error("the prune followed .deps, a link")
	}
}

// A fresh environment is never made through a .deps that is a link.
func TestMakeDepsRefusesALink(t *testing.T) {
	root := t.TempDir()
	app, outside := filepath.Join(root, "app"), filepath.Join(root, "outside")
	mkdirs(t, app, filepath.Join(outside, "k1", "keep"))
	os.Symlink(outside, filepath.Join(app, ".deps"))
	out, err := run(t, app, venvScript(t, "NO_DEPS_LINK")+`rm -rf -- ".deps/$KEY"`, "KEY=k1")
	if err == nil || !strings.Contains(out, ".deps in "+app+" is a symbolic link") {
		t.Errorf("made it: %v %q", err, out)
	}
	if !exists(filepath.Join(outside, "k1", "keep")) {
		t.Error("deleted through the link")
	}
}
