package secrets

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The rendered .env, sourced by a POSIX shell the way .appenv does it, gives
// every value back byte for byte and runs nothing. (systemd's reading of the
// same file is checked end to end, in e2e.)
func TestRenderedEnvReadsBackInShell(t *testing.T) {
	values := map[string]string{
		"SQ":    `it's 'quoted'`,
		"DQ":    `say "hi"`,
		"SUB":   `$(touch PWNED) and ${HOME}`,
		"TICK":  "`touch PWNED`",
		"NL":    "line one\nline two\n",
		"SP":    "  spaces  around  ",
		"BS":    `C:\path\n\\ end\`,
		"MIX":   `a'b"c$d` + "`e`\\f # not a comment; rm -rf / &",
		"EMPTY": "",
		"UTF":   "héllo ✓\ttab",
	}
	env := &Env{Source: "test"}
	for k, v := range values {
		env.Vars = append(env.Vars, EnvVar{Key: k, Value: v})
	}
	dir := t.TempDir()
	file := filepath.Join(dir, ".env")
	if err := os.WriteFile(file, []byte(env.Render()), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		cmd := exec.Command("sh", "-c", `set -a; . ./.env; set +a; printf %s "$`+k+`"`)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sourcing the rendered .env: %v\n%s", err, out)
		}
		if string(out) != want {
			t.Errorf("%s: the shell read %q, want %q", k, out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
		t.Errorf("sourcing the .env ran a command substitution")
	}
	again, err := ParseEnv("rendered", env.Render())
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		if got, _ := again.Get(k); got != want {
			t.Errorf("%s: parsed back as %q, want %q", k, got, want)
		}
	}
}

// Values systemd would drop or read differently are refused with file, line
// and key.
func TestParseEnvRefusesControlCharacters(t *testing.T) {
	for _, text := range []string{"A='x\ry'\n", "A=\"\x1b[31m\"\n", "A=\xff\xfe\n"} {
		_, err := ParseEnv("prod.env", text)
		if err == nil || !strings.Contains(err.Error(), "prod.env:1: A:") {
			t.Errorf("ParseEnv(%q) = %v, want an error naming prod.env:1: A", text, err)
		}
	}
}

// A server's env is shown with only the local file's own plain values:
// secrets (in any quoting), changed values and unknown keys are hidden.
func TestRedactedAgainst(t *testing.T) {
	local, err := ParseEnv(".env.prod", "MODE=prod\nDB_PASSWORD=$db\nOLD=x\n")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ParseEnv(".env", "MODE=\"prod\"\nDB_PASSWORD=\"s3cr\\$et\"\nOLD=\"changed-secret\"\nEXTRA='leaked'\n")
	if err != nil {
		t.Fatal(err)
	}
	got := server.RedactedAgainst(local)
	want := "MODE=prod\nDB_PASSWORD=****** (secret db)\nOLD=****** (not the value of .env.prod)\nEXTRA=****** (not in .env.prod)\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, s := range []string{"s3cr", "changed-secret", "leaked"} {
		if strings.Contains(got, s) {
			t.Errorf("%q shown", s)
		}
	}
}
