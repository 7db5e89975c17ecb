package engine_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
)

const recipesDoc = "../docs/recipes.md"

// The worked examples of docs/recipes.md load and run (in a dry run).
func TestRecipeDocsExamplesRun(t *testing.T) {
	data, err := os.ReadFile(recipesDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```lua\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 3 {
		t.Fatalf("want three worked examples in Lua, found %d", len(blocks))
	}
	t.Setenv("RAIJIN_TEST_TOKEN", "tok")
	for i, b := range blocks {
		cfg := project(t, map[string]string{"deploy.lua": b[1]})
		if _, err := engine.Plan(engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, "")}); err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, b[1])
			continue
		}
		h := &fakeHost{name: "web1"}
		if _, err := run(context.Background(), t, cfg, h, func(o *engine.Options) { o.DryRun = true }); err != nil {
			t.Errorf("example %d fails in a dry run: %v", i+1, err)
		}
		if len(h.commands()) == 0 {
			t.Errorf("example %d did nothing on the host", i+1)
		}
	}
}
