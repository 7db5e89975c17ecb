package secrets

import (
	"io"
	"strings"
	"sync"
)

// Writer hides a Redactor's values in a stream on its way to another
// writer, such as a remote command's output. A value split across writes is
// hidden too: the end of a write that could be the beginning of a value is
// held back until the next write shows whether it is one, or until Close.
type Writer struct {
	r       *Redactor
	w       io.Writer
	mu      sync.Mutex
	pending []byte
}

// Writer returns a Writer that writes to w what it is given, r's values
// hidden. Close it to write what it holds back.
func (r *Redactor) Writer(w io.Writer) *Writer {
	return &Writer{r: r, w: w}
}

// Write passes on p, with what came before it and was held back, except the
// end that could begin a value.
func (x *Writer) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.r == nil {
		_, err := x.w.Write(p)
		return len(p), err
	}
	buf := string(x.pending) + string(p)
	x.r.mu.RLock()
	spans := x.r.spans(buf)
	cut := x.r.openEnd(buf)
	x.r.mu.RUnlock()
	// A stretch to hide that reaches past cut may grow with what comes
	// next: it is held back whole.
	var done [][2]int
	for _, sp := range spans {
		if sp[0] >= cut {
			break
		}
		if sp[1] > cut {
			cut = sp[0]
			break
		}
		done = append(done, sp)
	}
	x.pending = append(x.pending[:0], buf[cut:]...)
	if cut == 0 {
		return len(p), nil
	}
	if _, err := io.WriteString(x.w, hide(buf[:cut], done)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what was held back. It does not close the writer underneath.
func (x *Writer) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.pending) == 0 {
		return nil
	}
	rest := x.r.Redact(string(x.pending))
	x.pending = x.pending[:0]
	_, err := io.WriteString(x.w, rest)
	return err
}

// openEnd is where the end of s begins that is the beginning of a
// registered value but not all of it (len(s) when there is none): a value
// can start there and go on in the next write. It is at most the longest
// value's length minus one from the end. r.mu is held.
func (r *Redactor) openEnd(s string) int {
	longest := 0
	for _, v := range r.values {
		longest = max(longest, len(v))
	}
	for i := max(0, len(s)-longest+1); i < len(s); i++ {
		for _, v := range r.values {
			if len(v) > len(s)-i && strings.HasPrefix(v, s[i:]) {
				return i
			}
		}
	}
	return len(s)
}
