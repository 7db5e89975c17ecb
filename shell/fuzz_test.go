package shell

import (
	"os/exec"
	"strings"
	"testing"
)

// Quote's output, given to a real POSIX shell as one word, must come back as
// exactly the input: nothing expanded, split or run.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "two words", "it's", `"double"`, "$(touch /tmp/pwned)", "`id`",
		"a\nb", "back\\slash", "$HOME", "*", "-n", "'", "''", "\t", "~root", "a;b|c&d>e<f", "é ü"} {
		f.Add(s)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Fatal("no sh on PATH")
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no shell word or process argument can hold NUL
		}
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh -c 'printf %%s %s': %v", Quote(s), err)
		}
		if string(out) != s {
			t.Fatalf("Quote(%q) = %s; the shell read it back as %q", s, Quote(s), out)
		}
	})
}
