package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/raijin-deploy/raijin/errs"
)

func TestExpandAlias(t *testing.T) {
	root := kong.Must(&CLI{}).Model.Node
	project(t, opsTOML+"say = \"app exec 'echo hi there'\"\n", map[string]string{
		".env.prod":  "PORT=8000\n",
		"other.toml": strings.Replace(opsTOML, `sh = "app exec -i bash"`, `st = "app status"`, 1),
	})
	for _, tc := range []struct {
		args, want []string
		read       string // the file read for the alias, "" for none
	}{
		{[]string{"-H", "alpha", "sh"}, []string{"-H", "alpha", "app", "exec", "-i", "bash"}, "raijin.toml"},
		{[]string{"say", "-v"}, []string{"app", "exec", "echo hi there", "-v"}, "raijin.toml"},
		{[]string{"-c", "other.toml", "st"}, []string{"-c", "other.toml", "app", "status"}, "other.toml"},
		{[]string{"--config=other.toml", "sh"}, []string{"--config=other.toml", "sh"}, "other.toml"},
		{[]string{"nosuch"}, []string{"nosuch"}, "raijin.toml"},
		// A command is never an alias, and the configuration is left to it.
		{[]string{"-v", "deploy", "sh"}, []string{"-v", "deploy", "sh"}, ""},
		{[]string{"--", "sh"}, []string{"--", "sh"}, ""},
		{nil, nil, ""},
	} {
		got, cfg, err := expandAlias(root, tc.args)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("expandAlias(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
		if read := ""; cfg != nil && cfg.File != tc.read || cfg == nil && tc.read != read {
			t.Errorf("expandAlias(%q) read %v; want %q", tc.args, cfg, tc.read)
		}
	}

	// No configuration: no alias, and kong names the unknown command.
	t.Chdir(t.TempDir())
	if got, cfg, err := expandAlias(root, []string{"sh"}); err != nil || cfg != nil || !slices.Equal(got, []string{"sh"}) {
		t.Errorf("without raijin.toml: %q, %v, %v", got, cfg, err)
	}
	code, _, errOut := run(t, "sh")
	if code != errs.CodeUsage || !strings.Contains(errOut, `unexpected argument sh`) {
		t.Errorf("an unknown command without raijin.toml: %d %s", code, errOut)
	}

	// A configuration that does not load is the error, with its line.
	os.WriteFile(".env.prod", []byte("PORT=8000\n"), 0o644)
	os.WriteFile("raijin.toml", []byte(opsTOML+"bad = \"app exec 'echo\"\n"), 0o644)
	code, _, errOut = run(t, "bad")
	if code != errs.CodeUsage || !strings.HasPrefix(errOut, `raijin: raijin.toml:19: aliases.bad: "app exec 'echo": EOF found when expecting closing quote`) {
		t.Errorf("a badly quoted alias: %d %s", code, errOut)
	}
}
