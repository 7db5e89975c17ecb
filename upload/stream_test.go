package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Readers started before, during and after the writing all read every
// byte, in order, and then the end the maker gave.
func TestStreamReadersSeeEveryByte(t *testing.T) {
	s := NewStream()
	want := randomBytes(7, 1<<20)
	var wg sync.WaitGroup
	got := make([][]byte, 3)
	read := func(i int) {
		defer wg.Done()
		got[i], _ = io.ReadAll(s.Reader(context.Background()))
	}
	wg.Add(1)
	go read(0)
	for off := 0; off < len(want); off += 4096 {
		if off == len(want)/2 {
			wg.Add(1)
			go read(1)
		}
		s.Write(want[off:min(off+4096, len(want))])
	}
	s.Finish(nil)
	wg.Add(1)
	go read(2)
	wg.Wait()
	for i, g := range got {
		if !bytes.Equal(g, want) {
			t.Errorf("reader %d read %d bytes, not the %d written", i, len(g), len(want))
		}
	}
	if all, err := s.Wait(context.Background()); err != nil || !bytes.Equal(all, want) {
		t.Errorf("Wait: %d bytes, %v", len(all), err)
	}
}

func TestStreamEndsWithTheMakersError(t *testing.T) {
	s := NewStream()
	s.Write([]byte("half a patch"))
	bad := errors.New("bad")
	go func() { time.Sleep(20 * time.Millisecond); s.Finish(bad) }()
	got, err := io.ReadAll(s.Reader(context.Background()))
	if string(got) != "half a patch" || !errors.Is(err, bad) {
		t.Errorf("read %q, %v; want the bytes, then the maker's error", got, err)
	}
	if _, err := s.Wait(context.Background()); !errors.Is(err, bad) {
		t.Errorf("Wait: %v", err)
	}
	if _, err := s.Write([]byte("more")); err == nil {
		t.Error("a finished stream took more bytes")
	}
}

func TestStreamReaderStopsWithItsContext(t *testing.T) {
	s := NewStream()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := io.ReadAll(s.Reader(ctx)); !errors.Is(err, context.Canceled) {
		t.Errorf("a reader waiting for bytes that never come ended with %v", err)
	}
}

// A patch that does not rebuild the file (here: checked against another
// file's SHA-256) ends its stream with ErrBadPatch, after its bytes.
func TestPatchThatDoesNotRebuildEndsWithAnError(t *testing.T) {
	if LocalZstd() == "" {
		t.Fatal("this machine has no zstd with --patch-from (1.4.5 or later); scripts/test.sh installs it")
	}
	dir := t.TempDir()
	c := &Cache{Dir: filepath.Join(dir, "cache"), Keep: 4}
	basis := randomBytes(3, 200_000)
	target := append([]byte{}, basis...)
	copy(target[5000:], "version 2")
	os.MkdirAll(c.Dir, 0o700)
	os.WriteFile(c.path(SHA256Hex(basis)), basis, 0o600)
	tg := filepath.Join(dir, "target")
	os.WriteFile(tg, target, 0o644)
	p := c.Patch(context.Background(), SHA256Hex(basis), tg, SHA256Hex([]byte("another file")))
	if p == nil {
		t.Fatal("no patch started")
	}
	if _, err := p.Wait(context.Background()); !errors.Is(err, ErrBadPatch) {
		t.Errorf("Wait: %v, want ErrBadPatch", err)
	}
	if p.Len() == 0 {
		t.Error("the stream had no bytes before its error")
	}
	// The same pair again is the same stream: made once per run.
	if again := c.Patch(context.Background(), SHA256Hex(basis), tg, SHA256Hex([]byte("another file"))); again != p {
		t.Error("the patch was made twice")
	}
	if c.Patch(context.Background(), SHA256Hex([]byte("not cached")), tg, SHA256Hex(target)) != nil {
		t.Error("a patch was started against a basis the cache lacks")
	}
}

// The note of the last file sent from a path names the basis to guess.
func TestCacheLastNamesTheLastFileSent(t *testing.T) {
	dir := t.TempDir()
	c := &Cache{Dir: filepath.Join(dir, "cache"), Keep: 4}
	local := filepath.Join(dir, "app")
	if c.Last(local) != "" {
		t.Error("a guess before anything was sent")
	}
	for i := int64(1); i <= 2; i++ {
		data := randomBytes(i, MinDeltaSize)
		os.WriteFile(local, data, 0o644)
		c.Put(local, SHA256Hex(data))
		if got := c.Last(local); got != SHA256Hex(data) {
			t.Errorf("after upload %d Last is %q", i, got)
		}
	}
	os.RemoveAll(c.Dir)
	os.MkdirAll(c.Dir, 0o700)
	c.noteLast(local, SHA256Hex([]byte("gone")))
	if c.Last(local) != "" {
		t.Error("Last named a file the cache no longer holds")
	}
}

// Before its release a gated reader passes at most its limit, never the
// last byte made so far and never the end; released, it reads the rest.
func TestGatedReaderHoldsBackUntilReleased(t *testing.T) {
	s := NewStream()
	want := randomBytes(9, 100_000)
	s.Write(want)
	s.Finish(nil)
	release, cut := make(chan struct{}), make(chan struct{})
	r := s.GatedReader(context.Background(), 1<<20, release, cut)
	buf := make([]byte, 200_000)
	n, err := r.Read(buf)
	if err != nil || n != len(want)-1 {
		t.Fatalf("before the release: %d bytes, %v; want all but the last", n, err)
	}
	got := make(chan []byte)
	go func() {
		rest, _ := io.ReadAll(r)
		got <- rest
	}()
	select {
	case <-got:
		t.Fatal("the reader went on before its release")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if rest := <-got; !bytes.Equal(append(buf[:n:n], rest...), want) {
		t.Error("released, the reader did not read the rest")
	}

	// The limit, and a cut while waiting.
	release, cut = make(chan struct{}), make(chan struct{})
	r = s.GatedReader(context.Background(), 1000, release, cut)
	if b, _ := io.ReadAll(io.LimitReader(r, 1000)); len(b) != 1000 {
		t.Fatalf("read %d bytes before the release, want the limit", len(b))
	}
	go func() { time.Sleep(20 * time.Millisecond); close(cut) }()
	if _, err := r.Read(buf); !errors.Is(err, ErrCut) {
		t.Errorf("a cut reader ended with %v", err)
	}
}

func TestZstdGetsHugePagesAndKeepsTheUsersTunables(t *testing.T) {
	for _, c := range []struct{ env, want []string }{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", HugePages}},
		{[]string{"GLIBC_TUNABLES=", "PATH=/bin"}, []string{HugePages, "PATH=/bin"}},
		// The user's own settings come last, so theirs win.
		{[]string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}, []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0"}},
	} {
		in := append([]string(nil), c.env...)
		got := withHugePages(in)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("withHugePages(%q) = %q, want %q", c.env, got, c.want)
		}
		if strings.Join(in, "\n") != strings.Join(c.env, "\n") {
			t.Errorf("withHugePages changed its argument: %q", in)
		}
	}
}
