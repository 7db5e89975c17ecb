package secrets

import (
	"strings"
	"testing"
)

// writeSplit writes text to a Writer over r in the pieces that cuts make,
// closes it, and returns what came out.
func writeSplit(t *testing.T, r *Redactor, text string, cuts ...int) string {
	t.Helper()
	var out strings.Builder
	w := r.Writer(&out)
	at := 0
	for _, c := range append(cuts, len(text)) {
		if n, err := w.Write([]byte(text[at:c])); err != nil || n != c-at {
			t.Fatalf("Write = %d, %v", n, err)
		}
		at = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// A stream comes out as Redact makes the whole text, however it is cut into
// writes: a value split across writes, in any of its forms, is hidden too.
func TestWriterHidesValuesAcrossWrites(t *testing.T) {
	var r Redactor
	r.Add(`pa$$"w'o\rd`+"\nsecond-line", "tok-123456", "tok-1234567890", "abcabc")
	for _, text := range []string{
		"db password: pa$$\"w'o\\rd\nsecond-line\nnext\n",
		"DB=\"pa\\$\\$\\\"w'o\\\\rd\nsecond-line\"\n",
		"export DB='pa$$\"w'\\''o\\rd\nsecond-line'; true\n",
		"Jan 01 web[1]: second-line\n",
		"tok-1234567890 and tok-123456 and tok-12345 end",
		"xabcabcabcx abcab",
		"nothing to hide here\n",
		"ends in the beginning of a value: tok-12",
	} {
		want := r.Redact(text)
		for c := 0; c <= len(text); c++ {
			if got := writeSplit(t, &r, text, c); got != want {
				t.Fatalf("cut at %d of %q:\n got %q\nwant %q", c, text, got, want)
			}
		}
		var each []int
		for c := 1; c < len(text); c++ {
			each = append(each, c)
		}
		if got := writeSplit(t, &r, text, each...); got != want {
			t.Fatalf("byte by byte %q:\n got %q\nwant %q", text, got, want)
		}
	}
}

// Only what could begin a value is held back, and Close writes it.
func TestWriterHoldsBackOnlyAPossibleValue(t *testing.T) {
	var r Redactor
	r.Add("tok-123456")
	var out strings.Builder
	w := r.Writer(&out)
	w.Write([]byte("line one\nready> "))
	if out.String() != "line one\nready> " {
		t.Errorf("a write that begins no value was held back: %q", out.String())
	}
	w.Write([]byte("tok-12"))
	if out.String() != "line one\nready> " {
		t.Errorf("the beginning of a value was written: %q", out.String())
	}
	w.Write([]byte("x\n"))
	if out.String() != "line one\nready> tok-12x\n" {
		t.Errorf("after it turned out no value: %q", out.String())
	}
	w.Write([]byte("tok-1"))
	w.Close()
	if out.String() != "line one\nready> tok-12x\ntok-1" {
		t.Errorf("Close did not write what was held back: %q", out.String())
	}
}

// A form of a value that holds another form (or another value) is hidden
// whole, not as ****** with the rest of the longer one around it.
func TestRedactHidesTheLongestFormWhole(t *testing.T) {
	var r Redactor
	r.Add("it's-a-secret", "secret-and-more")
	for text, want := range map[string]string{
		"export X='it'\\''s-a-secret'":   "export X='******'",
		"X=it's-a-secret-and-more; done": "X=******; done",
		"two: secret-and-more":           "two: ******",
	} {
		if got := r.Redact(text); got != want {
			t.Errorf("Redact(%q) = %q, want %q", text, got, want)
		}
	}
}

// An empty Redactor's Writer passes everything on as it comes.
func TestWriterWithoutValues(t *testing.T) {
	var r Redactor
	var out strings.Builder
	w := r.Writer(&out)
	w.Write([]byte("\x00binary\xff"))
	if out.String() != "\x00binary\xff" {
		t.Errorf("got %q", out.String())
	}
}
