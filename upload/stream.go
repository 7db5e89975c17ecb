package upload

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Stream is bytes that one maker writes once and any number of readers
// read as they come: a patch goes out to the first server while zstd is
// still making it, and to every other server from the same bytes. A reader
// waits for more bytes until the maker finishes; then it sees io.EOF, or
// the error the maker finished with.
type Stream struct {
	mu   sync.Mutex
	buf  []byte
	more chan struct{} // closed when bytes come or the stream ends
	done bool
	err  error
}

// NewStream is an empty stream, open for writing.
func NewStream() *Stream { return &Stream{more: make(chan struct{})} }

// Write adds p at the end.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, io.ErrClosedPipe
	}
	s.buf = append(s.buf, p...)
	s.wake()
	return len(p), nil
}

func (s *Stream) wake() {
	close(s.more)
	s.more = make(chan struct{})
}

// Finish ends the stream: readers see err at the end, io.EOF when nil.
func (s *Stream) Finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done, s.err = true, err
	s.wake()
}

// Len is how many bytes were made so far.
func (s *Stream) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.buf))
}

// Wait waits for the end and returns every byte, or the error it ended
// with.
func (s *Stream) Wait(ctx context.Context) ([]byte, error) {
	for {
		s.mu.Lock()
		done, err, buf, more := s.done, s.err, s.buf, s.more
		s.mu.Unlock()
		if done {
			if err != nil {
				return nil, err
			}
			return buf, nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Reader reads the stream from its first byte, waiting for bytes still to
// be made; ctx ends the wait.
func (s *Stream) Reader(ctx context.Context) io.Reader {
	return &gatedReader{s: s, ctx: ctx, open: true}
}

// ErrCut ends a gated reader that was cut before its gate opened.
var ErrCut = errors.New("the stream was cut before it was let through")

// GatedReader reads the stream as Reader does, but until release is
// closed it passes at most limit bytes and never the last byte made so far
// nor the end: whatever the reader's side has then received is not a
// whole stream (a zstd frame cut short fails to decode). When cut is
// closed before release, it ends with ErrCut at once, even while it waits.
func (s *Stream) GatedReader(ctx context.Context, limit int64, release, cut <-chan struct{}) io.Reader {
	return &gatedReader{s: s, ctx: ctx, limit: limit, release: release, cut: cut}
}

type gatedReader struct {
	s            *Stream
	ctx          context.Context
	limit        int64
	release, cut <-chan struct{}
	open         bool
	off          int
}

func (r *gatedReader) Read(p []byte) (int, error) {
	for {
		if !r.open {
			select {
			case <-r.cut:
				return 0, ErrCut
			case <-r.release:
				r.open, r.release, r.cut = true, nil, nil // nil: the waits below no longer see them
			default:
			}
		}
		r.s.mu.Lock()
		end := len(r.s.buf)
		if !r.open {
			end = min(end-1, int(r.limit))
		}
		n := 0
		if end > r.off {
			n = copy(p, r.s.buf[r.off:end])
		}
		r.off += n
		done, err, more := r.s.done, r.s.err, r.s.more
		r.s.mu.Unlock()
		switch {
		case n > 0 || len(p) == 0:
			return n, nil
		case r.open && done && err != nil:
			return 0, err
		case r.open && done:
			return 0, io.EOF
		}
		select {
		case <-more:
		case <-r.release:
		case <-r.cut:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}
