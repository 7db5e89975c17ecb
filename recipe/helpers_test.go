package recipe_test

import (
	"context"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
)

// fakeHost stands in for a server: it records every command and file.
type fakeHost struct {
	name     string
	commands []string
}

// session is what a recipe acts on: a Session over a Recorder that logs
// each step as f's commands.
func (f *fakeHost) session() *remote.Session {
	rec := &remote.Recorder{HostName: f.name, Respond: func(_ context.Context, st remote.Step) (remote.Result, error) {
		switch st.Kind {
		case "write":
			f.commands = append(f.commands, "write "+st.Path+" "+string(st.Content))
		case "check":
			f.commands = append(f.commands, "upload "+st.Local+" "+st.Path)
		case "run":
			f.commands = append(f.commands, st.Line)
		}
		return remote.DefaultAnswer(st), nil
	}}
	return remote.NewSession(rec, nil, nil, nil)
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

const testTOML = testkit.ShopTOML

// project writes raijin.toml and the given files into a temporary directory
// and loads the configuration.
func project(t testing.TB, files map[string]string) *config.Config {
	t.Helper()
	return testkit.Project(t, testTOML, files)
}

// load loads cfg's recipe for target.
func load(cfg *config.Config, target recipe.Target) (*recipe.State, error) {
	return recipe.Load(context.Background(), recipe.Config{Project: cfg, Sources: recipe.SourcesFor(cfg, ""),
		Command: "deploy", Events: &events{}, Redactor: &secrets.Redactor{}}, target)
}

// runPhase loads cfg's recipe for host and runs one phase on it.
func runPhase(t *testing.T, cfg *config.Config, host *fakeHost, phase string) error {
	t.Helper()
	st, err := load(cfg, recipe.Target{Name: host.name, Host: host.session(), Config: cfg.Hosts[0], User: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return st.RunPhase(ctx, phase)
}
