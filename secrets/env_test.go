package secrets

import (
	"os/exec"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []EnvVar // Key, Value, Secret, Line
		err        string
	}{
		{name: "empty", text: "\n# only a comment\n\n", want: nil},
		{name: "plain", text: "A=1\nexport B = two words \nC=\n", want: []EnvVar{{"A", "1", "", 1}, {"B", "two words", "", 2}, {"C", "", "", 3}}},
		{name: "comment after value", text: "A=x # note\nB=x#y\n", want: []EnvVar{{"A", "x", "", 1}, {"B", "x#y", "", 2}}},
		{name: "single quotes are literal", text: `A='$x \n "y"' # c`, want: []EnvVar{{"A", `$x \n "y"`, "", 1}}},
		{name: "double quote escapes", text: `A="a\nb \"q\" \\ \$ \` + "`" + ` \t"`, want: []EnvVar{{"A", "a\nb \"q\" \\ $ ` \\t", "", 1}}},
		{name: "multi-line values", text: "K='-----BEGIN\nabc\n-----END'\nD=\"x\ny\"\nE=3", want: []EnvVar{{"K", "-----BEGIN\nabc\n-----END", "", 1}, {"D", "x\ny", "", 4}, {"E", "3", "", 6}}},
		{name: "secret references", text: "DB=$DATABASE_URL\nT=${TOKEN}\n", want: []EnvVar{{"DB", "", "DATABASE_URL", 1}, {"T", "", "TOKEN", 2}}},
		{name: "quoted dollar is not a secret", text: `P="$NOT"` + "\nQ='$NOT'", want: []EnvVar{{"P", "$NOT", "", 1}, {"Q", "$NOT", "", 2}}},
		{name: "later wins, keeps place", text: "A=1\nB=2\nA=3", want: []EnvVar{{"A", "3", "", 3}, {"B", "2", "", 2}}},
		{name: "CRLF", text: "A=1\r\nB=2\r\n", want: []EnvVar{{"A", "1", "", 1}, {"B", "2", "", 2}}},
		{name: "no equals", text: "A=1\nJUSTAWORD\n", err: ".env:2: expected KEY=VALUE"},
		{name: "bad key", text: "1A=x", err: ".env:1: expected KEY=VALUE"},
		{name: "unterminated single", text: "A=1\nB='open\nmore", err: ".env:2: B: unterminated single quote"},
		{name: "unterminated double", text: `A="open`, err: ".env:1: A: unterminated double quote"},
		{name: "text after quote", text: `A="x" y`, err: `.env:1: A: unexpected text after the closing quote: "y"`},
		{name: "bare dollar", text: "A=$", err: ".env:1: A: '$' must be followed by a secret name"},
	} {
		env, err := ParseEnv(".env", tc.text)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v; want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(env.Vars) != len(tc.want) {
			t.Errorf("%s: got %+v; want %+v", tc.name, env.Vars, tc.want)
			continue
		}
		for i, v := range env.Vars {
			if v != tc.want[i] {
				t.Errorf("%s: var %d = %+v; want %+v", tc.name, i, v, tc.want[i])
			}
		}
	}
}

func TestEnvRenderIsReadBackByShellAndParser(t *testing.T) {
	env := &Env{Source: "x", Vars: []EnvVar{
		{Key: "PLAIN", Value: "abc"},
		{Key: "SPACES", Value: "a b  c"},
		{Key: "TRICKY", Value: "q\" d$HOME b` s\\ '"},
		{Key: "LINES", Value: "one\ntwo"},
		{Key: "EMPTY", Value: ""},
		{Key: "SECRET", Value: "hunter22", Secret: "PW"},
	}}
	text := env.Render()
	want := "PLAIN=\"abc\"\nSPACES=\"a b  c\"\nTRICKY=\"q\\\" d\\$HOME b\\` s\\\\ '\"\nLINES=\"one\ntwo\"\nEMPTY=\"\"\nSECRET=\"hunter22\"\n"
	if text != want {
		t.Errorf("Render =\n%s\nwant\n%s", text, want)
	}
	back, err := ParseEnv("rendered", text)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range env.Vars {
		if got, _ := back.Get(v.Key); got != v.Value {
			t.Errorf("parser read %s back as %q; want %q", v.Key, got, v.Value)
		}
	}
	// A POSIX shell sourcing the file reads the same values.
	for _, v := range env.Vars {
		cmd := exec.Command("sh", "-c", "set -a; eval \"$1\"; printf %s \"$"+v.Key+"\"", "sh", text)
		out, err := cmd.Output()
		if err != nil || string(out) != v.Value {
			t.Errorf("sh read %s as %q (%v); want %q", v.Key, out, err, v.Value)
		}
	}
	if r := env.Redacted(); strings.Contains(r, "hunter22") || !strings.Contains(r, "SECRET=****** (secret PW)") {
		t.Errorf("Redacted shows:\n%s", r)
	}
	if s := env.String(); strings.Contains(s, "hunter22") || s != "env(x: EMPTY, LINES, PLAIN, SECRET, SPACES, TRICKY)" {
		t.Errorf("String = %s", s)
	}
	if sv := env.SecretValues(); len(sv) != 1 || sv[0] != "hunter22" {
		t.Errorf("SecretValues = %q", sv)
	}
}

// A double-quoted value that goes on on the next line keeps the blanks at
// the end of its first line; blanks after a closing quote are fine.
func TestParseEnvKeepsTrailingBlanksInsideQuotes(t *testing.T) {
	env, err := ParseEnv("t.env", "A=\" \nb\"  \nB='x \ny'\t\nC=plain   \n")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{" \nb", "x \ny", "plain"} {
		if env.Vars[i].Value != want {
			t.Errorf("%s = %q, want %q", env.Vars[i].Key, env.Vars[i].Value, want)
		}
	}
}
