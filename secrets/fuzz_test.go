package secrets

import (
	"testing"
	"unicode/utf8"
)

// Whatever ParseEnv accepts, Render writes in a form ParseEnv reads back to the
// same variables, and a POSIX shell sourcing it (as .appenv does) sees the
// same values.
func FuzzEnvRoundTrip(f *testing.F) {
	for _, s := range []string{
		"A=1\nB=two words\n",
		"# comment\nexport KEY=value # trailing\n",
		"Q='it''s'\nD=\"say \\\"hi\\\" \\$HOME \\`id\\`\"\n",
		"M=\"line one\nline two\"\n",
		"S=$secret-name\nT=${other}\n",
		"X=\"\\n\\\\n\"\nY='$(touch /tmp/pwned)'\n",
		"CRLF=1\r\nNEXT=2\r\n",
		"BAD LINE\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		env, err := ParseEnv("fuzz.env", text)
		if err != nil {
			return
		}
		for _, v := range env.Vars {
			if v.Secret != "" {
				return // secrets are resolved before rendering
			}
		}
		rendered := env.Render()
		again, err := ParseEnv("rendered.env", rendered)
		if err != nil {
			t.Fatalf("ParseEnv(%q) accepted, but its rendering does not parse: %v\n%s", text, err, rendered)
		}
		if len(again.Vars) != len(env.Vars) {
			t.Fatalf("round trip changed the variables: %q -> %q", text, rendered)
		}
		for i, v := range env.Vars {
			w := again.Vars[i]
			if v.Key != w.Key || v.Value != w.Value {
				t.Fatalf("round trip changed %s=%q into %s=%q (rendered %q)", v.Key, v.Value, w.Key, w.Value, rendered)
			}
			if !utf8.ValidString(v.Value) {
				t.Fatalf("ParseEnv accepted a value that is not UTF-8: %q", v.Value)
			}
		}
	})
}
