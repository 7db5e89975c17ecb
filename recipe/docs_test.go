package recipe_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/secrets"
)

const recipesDoc = "../docs/recipes.md"

// apiNames lists what a recipe deploying to a host can reach.
func apiNames(t *testing.T) []string {
	t.Helper()
	cfg := project(t, map[string]string{})
	names, err := recipe.APINames(
		recipe.Config{Project: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Events: &events{}, Redactor: &secrets.Redactor{}},
		recipe.Target{Name: "web1", Host: (&fakeHost{name: "web1"}).session(), Config: cfg.Hosts[0], User: "deploy",
			Paths:    engine.Paths(cfg, cfg.Hosts[0], "/home/deploy", cfg.Version),
			Versions: []string{"1.0.0"}, Previous: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// docs/recipes.md documents every function and field a recipe can reach, and
// nothing that is not there: the reference cannot drift from the code.
func TestRecipeDocsCoverTheAPI(t *testing.T) {
	data, err := os.ReadFile(recipesDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	names := apiNames(t)
	if len(names) < 40 {
		t.Fatalf("found only %d names: %q", len(names), names)
	}
	known := map[string]bool{}
	for _, n := range names {
		known[strings.TrimRight(n, "(`")] = true
		if !strings.Contains(doc, "`"+n) {
			t.Errorf("%s is not documented in docs/recipes.md (write `%s ...` in the API reference)", strings.TrimRight(n, "(`"), n)
		}
	}
	// The other way: every API name the document mentions exists.
	re := regexp.MustCompile("`((?:raijin|ctx\\.host|ctx\\.local)[.:][a-z_.:]+)\\(")
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		if !known[m[1]] {
			t.Errorf("docs/recipes.md documents %s(, which recipes cannot call", m[1])
		}
	}
}
