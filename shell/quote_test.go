package shell

import (
	"os/exec"
	"testing"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/srv/app-1.0/v1.2+b_3:x@y,z=%", "/srv/app-1.0/v1.2+b_3:x@y,z=%"},
		{"two words", "'two words'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a;rm -rf /", "'a;rm -rf /'"},
		{"`id`", "'`id`'"},
		{"line\nbreak", "'line\nbreak'"},
		{"ünï", "'ünï'"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s; want %s", tc.in, got, tc.want)
		}
		// The shell gives back exactly the input.
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(tc.in)).Output()
		if err != nil || string(out) != tc.in {
			t.Errorf("sh read Quote(%q) back as %q (%v)", tc.in, out, err)
		}
	}
	if got := QuoteAll("a b", "c", ""); got != "'a b' c ''" {
		t.Errorf("QuoteAll = %s", got)
	}
}
