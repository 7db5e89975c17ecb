package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/shell"
)

// Any bytes given as raijin.toml: an error or a config whose names are safe to
// put in paths and shell commands; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`app = "bookstore"
version = "1.4.0"
build_command = "go build -o dist/bookstore ."
distfile = "dist/bookstore"
release_command = "bookstore migrate"
[webserver]
upstream = "localhost:8000"
health_check = "/up"
[processes]
web = "bookstore serve"
[[hosts]]
address = "203.0.113.10"
user = "deploy"
env = """
A=1
"""
`))
	f.Add([]byte(`app = "../etc"` + "\nversion = \"1\"\ndistfile = \"d\"\n"))
	f.Add([]byte("app = \"a\"\nversion = \"$(id)\"\ndistfile = \"d\"\n[[hosts]]\naddress = \"h\"\n"))
	f.Add([]byte("app = \"a\"\nversion = \"1\"\ndistfile = \"d\"\n[processes]\n\"web;rm\" = \"x\"\n[[hosts]]\naddress = \"h\"\n"))
	f.Add([]byte("app = 1\n"))
	f.Add([]byte("[[hosts]\n"))
	// A pyproject.toml version for inputs without one, so that no input
	// makes Parse run git.
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pyproject.toml"), []byte("[project]\nversion = \"0.0.0-fuzz\"\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(filepath.Join(dir, "raijin.toml"), data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error with no message")
			}
			return
		}
		if !appRe.MatchString(c.App) {
			t.Fatalf("accepted app name %q", c.App)
		}
		if c.Version != "" {
			if err := ValidVersion(c.Version); err != nil {
				t.Fatalf("accepted version %q: %v", c.Version, err)
			}
		}
		for _, p := range c.ProcessNames() {
			if shell.Quote(p) != p || strings.Contains(p, "/") {
				t.Fatalf("accepted process name %q", p)
			}
		}
	})
}

// What ValidVersion accepts is a single safe path element that needs no
// quoting in a shell.
func FuzzValidVersion(f *testing.F) {
	for _, s := range []string{"1.4.0", "v1.0.0-rc.1+build.5", "..", "../x", "a/b", "1 2", "$(id)", "`id`", "-rf", ".hidden", "1..2", "a\nb", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if ValidVersion(v) != nil {
			return
		}
		switch {
		case v == "" || len(v) > 128:
			t.Fatalf("accepted %q (length %d)", v, len(v))
		case strings.ContainsAny(v, "/\\ \t\n\r'\"`$;&|<>()*?[]{}~!#"):
			t.Fatalf("accepted %q with a separator, space or shell metacharacter", v)
		case strings.Contains(v, ".."), strings.HasPrefix(v, "."), strings.HasPrefix(v, "-"):
			t.Fatalf("accepted %q (.., or a leading . or -)", v)
		case shell.Quote(v) != v, shell.Quote("v"+v) != "v"+v:
			t.Fatalf("accepted %q, which needs shell quoting", v)
		}
	})
}
