package ui

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable is s made safe to print on a terminal: control characters
// other than tab and newline (C0, DEL, C1), the bidirectional overrides and
// isolates that reorder what is shown (U+202A-U+202E, U+2066-U+2069) and
// bytes that are not UTF-8 are shown as escapes (\u001b, \xff), so that
// text a server sent (an error's stderr, the lock's holder, the audit log)
// cannot move the cursor, rewrite the screen or hide part of a line. The
// \u escapes are JSON's too: a JSON document stays valid.
func Printable(s string) string {
	i := strings.IndexFunc(s, unprintable)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unprintable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func unprintable(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
