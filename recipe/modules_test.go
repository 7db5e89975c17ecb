package recipe

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/recipes"
)

// Every module of the built-in recipes loads on its own, and requiring it
// declares nothing: declarations happen where a recipe calls a function
// that says it declares (raijin.deploy.declare, raijin.server.declare).
// Their remote scripts are fixed and get their values in env = {...}: no
// shell string is put together with raijin.quote.
func TestBuiltinModules(t *testing.T) {
	names := builtinModuleNames()
	if len(names) < 10 || names[0] != "raijin.deploy" {
		t.Fatalf("modules %q", names)
	}
	for _, name := range names {
		reg := newRegistry()
		L := newState("", (&hostState{}).module(reg))
		if err := L.DoString(`require("` + name + `")`); err != nil {
			t.Errorf("require(%q): %v", name, err)
		}
		L.Close()
		if len(reg.phases) > 0 || len(reg.flows) > 0 {
			t.Errorf("require(%q) declared phases %s or flows %v", name, reg.knownPhases(), reg.flows)
		}
		src, chunk, _ := builtinModule(name)
		if strings.Contains(src, "raijin.quote") {
			t.Errorf("%s builds a shell string with raijin.quote: pass the value in env = {...}", chunk)
		}
	}
	for _, recipe := range []string{"binary.lua", "python.lua"} {
		src, err := fs.ReadFile(recipes.FS, recipe)
		if err != nil || strings.Contains(string(src), "raijin.quote") {
			t.Errorf("recipes/%s: %v, or it uses raijin.quote", recipe, err)
		}
	}
}
