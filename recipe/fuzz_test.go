package recipe_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
)

// Whatever a deploy.lua holds, loading it never panics or hangs, and a
// failure is a configuration error (exit 2) that names the file.
func FuzzRecipeLoad(f *testing.F) {
	for _, seed := range []string{
		"local raijin = require('raijin')\nraijin.override('release', function(ctx, default) default(ctx) end)\n",
		"require('raijin').phases { 'build', 'nope' }\n",
		"local s = \"abc\n",
		"return {\n",
		"while true do end\n",
		"error({})\n",
		"error(nil)\n",
		"require('raijin').phase('x', { where = 'mars' }, function() end)\n",
		"io.open('x')\n",
		"require('deploy')\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "raijin.toml"), []byte(testTOML), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "raijin.toml"))
	if err != nil {
		f.Fatal(err)
	}
	defer recipe.SetLoadTimeout(500 * time.Millisecond)()
	f.Fuzz(func(t *testing.T, src string) {
		if err := os.WriteFile(filepath.Join(dir, "deploy.lua"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		c := *cfg
		c.Recipe = "deploy.lua"
		st, err := load(&c, recipe.Target{Name: "plan"})
		if err == nil {
			st.Close()
			return
		}
		if errs.Code(err) == errs.CodeUsage && strings.Contains(err.Error(), "took longer than") {
			return // a loop, or a busy machine
		}
		if errs.Code(err) != errs.CodeUsage || !strings.Contains(err.Error(), "deploy.lua") {
			t.Errorf("loading %q: exit %d: %v", src, errs.Code(err), err)
		}
	})
}
