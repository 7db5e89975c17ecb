package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/config"
)

// ShopTOML is the raijin.toml of the engine's and the recipe's tests: one
// web process, one host; its [[hosts]] table comes last, so a test may add
// keys to it.
const ShopTOML = `app = "shop"
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

// WriteFiles writes files (name: content) under dir, making directories; a
// file that starts with "#!" is executable.
func WriteFiles(t TB, dir string, files map[string]string) {
	t.Helper()
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
}

// Project writes a project into a temporary directory, its raijin.toml
// being toml followed by files["raijin.toml"], and loads its configuration.
func Project(t testing.TB, toml string, files map[string]string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	files["raijin.toml"] = toml + files["raijin.toml"]
	WriteFiles(t, dir, files)
	cfg, err := config.Load(filepath.Join(dir, "raijin.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
