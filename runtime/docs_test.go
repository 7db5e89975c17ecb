package runtime

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	lua "github.com/yuin/gopher-lua"
)

const recipesDoc = "../docs/recipes.md"

// apiNames lists what a recipe can reach, as docs/recipes.md spells it:
// "raijin.override(" for a function of the raijin module,
// "ctx.host:run(" for a method, "ctx.host.name`" for a field.
func apiNames(t *testing.T) []string {
	t.Helper()
	cfg := project(t, map[string]string{})
	r := &runner{opts: Options{Config: cfg, Redactor: &secrets.Redactor{}, Events: &events{}, Command: "deploy"}, envs: map[string]*secrets.Env{}}
	s := &hostState{r: r, name: "web1", host: remote.NewSession((&fakeHost{name: "web1"}).conn(), nil, nil, nil), user: "deploy",
		paths: Paths(cfg, cfg.Hosts[0], "/home/deploy", cfg.Version)}
	reg := newRegistry()
	L := newState(cfg.Dir, s.module(reg))
	defer L.Close()
	var names []string
	var walk func(prefix, sep string, t *lua.LTable)
	walk = func(prefix, sep string, t *lua.LTable) {
		t.ForEach(func(k, v lua.LValue) {
			switch x := v.(type) {
			case *lua.LFunction:
				names = append(names, prefix+sep+k.String()+"(")
			case *lua.LTable:
				walk(prefix+"."+k.String(), ".", x)
			default:
				names = append(names, prefix+"."+k.String()+"`")
			}
		})
	}
	walk("raijin", ".", s.module(reg)(L))
	ctx := r.newCtx(L, s, cfg.Hosts[0], []string{"1.0.0"}, "1.0.0")
	ctx.RawSetString("shared", L.NewTable())
	ctx.RawSetString("hosts", L.NewTable())
	ctx.ForEach(func(k, v lua.LValue) {
		key := k.String()
		switch key {
		case "host", "local":
			walk("ctx."+key, ":", v.(*lua.LTable))
		case "paths":
			walk("ctx.paths", ".", v.(*lua.LTable))
		}
		names = append(names, "ctx."+key+"`")
	})
	sort.Strings(names)
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
		if _, err := Plan(Options{Config: cfg, Sources: SourcesFor(cfg, "")}); err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, b[1])
			continue
		}
		h := &fakeHost{name: "web1"}
		if _, err := run(context.Background(), t, cfg, h, func(o *Options) { o.DryRun = true }); err != nil {
			t.Errorf("example %d fails in a dry run: %v", i+1, err)
		}
		if len(h.commands()) == 0 {
			t.Errorf("example %d did nothing on the host", i+1)
		}
	}
}
