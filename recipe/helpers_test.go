package recipe_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/recipe"
)

// fakeHost stands in for a server: it records every command and file.
type fakeHost struct {
	name     string
	commands []string
}

func (f *fakeHost) Name() string { return f.name }

func (f *fakeHost) Run(_ context.Context, cmd string, o builtins.RunOpts) (builtins.Result, error) {
	f.commands = append(f.commands, builtins.ShellCommand(cmd, o))
	return builtins.Result{}, nil
}

func (f *fakeHost) Upload(_ context.Context, local, remote string, _ os.FileMode) (bool, error) {
	f.commands = append(f.commands, "upload "+local+" "+remote)
	return true, nil
}

func (f *fakeHost) Write(_ context.Context, remote string, data []byte, _ builtins.WriteOpts) (bool, error) {
	f.commands = append(f.commands, "write "+remote+" "+string(data))
	return true, nil
}

// events records what a recipe reports.
type events struct{ lines []string }

func (e *events) Log(host, phase, msg string) {
	e.lines = append(e.lines, "log "+host+" "+phase+": "+msg)
}
func (e *events) Command(host, cmd string) {}
func (e *events) DryRun(host, kind, what, content string) {
	e.lines = append(e.lines, "dry "+host+" "+kind+" "+what)
}

const testTOML = `app = "shop"
version = "2.0.0"
build_command = "true"
distfile = "dist/shop"
release_command = "shop migrate"

[webserver]
upstream = "localhost:8000"

[processes]
web = "shop serve"

[[hosts]]
name = "web1"
address = "192.0.2.1"
user = "deploy"
`

// project writes raijin.toml and the given files into a temporary directory
// and loads the configuration.
func project(t testing.TB, files map[string]string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	files["raijin.toml"] = testTOML + files["raijin.toml"]
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "raijin.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// load loads cfg's recipe for target.
func load(cfg *config.Config, target recipe.Target) (*recipe.State, error) {
	return recipe.Load(context.Background(), recipe.Config{Project: cfg, Sources: recipe.SourcesFor(cfg, ""),
		Command: "deploy", Events: &events{}, Redactor: &builtins.Redactor{}}, target)
}

// runPhase loads cfg's recipe for host and runs one phase on it.
func runPhase(t *testing.T, cfg *config.Config, host *fakeHost, phase string) error {
	t.Helper()
	st, err := load(cfg, recipe.Target{Name: host.name, Host: host, Config: cfg.Hosts[0], User: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return st.RunPhase(ctx, phase)
}
