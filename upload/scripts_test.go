package upload

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sh runs a script as the server would, with stdin.
func sh(t *testing.T, script string, stdin []byte) (stdout, stderr string, err error) {
	t.Helper()
	c := exec.Command("sh", "-c", script)
	c.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.String(), e.String(), err
}

// replaceKeepingMtime gives f new content and sets its modification time
// back to what it was: what someone hiding a change on the server does.
func replaceKeepingMtime(t *testing.T, f string, data []byte) {
	t.Helper()
	st, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// The check hashes the server's file each time: a file changed behind
// raijin's back is neither "same" nor offered as a basis under the sum it
// had, whatever its mtime and whatever note an older raijin left next to it.
func TestUploadCheckHashesTheServersFile(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "v1", "app")
	os.MkdirAll(filepath.Dir(live), 0o755)
	build1, forged := []byte("build 1\n"), []byte("build X\n")
	os.WriteFile(live, build1, 0o755)
	sum1, sumForged := SHA256Hex(build1), SHA256Hex(forged)
	// The note an older raijin trusted while the file was not newer than it.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(live, old, old)
	os.WriteFile(filepath.Join(dir, "v1", ".app.sha256"), []byte(sum1+"\n"), 0o644)
	check := func(remote, sum, basis string) string {
		out, stderr, err := sh(t, CheckScript(remote, sum, 0o755, basis), nil)
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		return out
	}

	if got := check(live, sum1, ""); got != "same\n" {
		t.Errorf("the unchanged file: %q, want same", got)
	}
	// send, then what the server takes: the basis's hash among it.
	basisOf := func(got string) string {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if lines[0] != "send" {
			t.Fatalf("%q, want send first", got)
		}
		return ParseOffer(lines[1:]).Basis
	}
	if got := check(filepath.Join(dir, "v2", "app"), sum1, live); basisOf(got) != sum1 {
		t.Errorf("a new version: %q, want send and the basis's hash", got)
	}
	if got := check(filepath.Join(dir, "v2", "app"), sum1, filepath.Join(dir, "v0", "app")); basisOf(got) != "" {
		t.Errorf("a missing basis: %q, want no basis", got)
	}

	replaceKeepingMtime(t, live, forged)
	if got := check(live, sum1, ""); !strings.HasPrefix(got, "send\n") {
		t.Errorf("a file changed with its mtime set back: %q, want it sent again", got)
	}
	if got := check(filepath.Join(dir, "v2", "app"), sum1, live); basisOf(got) != sumForged {
		t.Errorf("a basis changed with its mtime set back: %q, want its real hash %s", got, sumForged)
	}
}

// The basis's sum comes from the sum note written when the file was put in
// place, while the note's stat line is still the file's: the check does not
// read a large basis whole. A file changed since (even with its mtime set
// back) is hashed again.
func TestUploadCheckTakesTheBasisSumFromItsNote(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "v1", "app")
	os.MkdirAll(filepath.Dir(live), 0o755)
	build1, forged := []byte("build 1\n"), []byte("build X\n")
	sum1 := SHA256Hex(build1)
	if _, stderr, err := sh(t, ReceiveScript(Target{live, sum1, int64(len(build1)), 0o755, true}, int64(len(build1)), Plain), build1); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	note := filepath.Join(dir, "v1", ".app.sum")
	b, err := os.ReadFile(note)
	if err != nil || !strings.HasPrefix(string(b), sum1+" ") {
		t.Fatalf("sum note %q (%v), want it to start with %s", b, err, sum1)
	}
	if st, err := os.Stat(note); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("sum note mode %v (%v), want 0600", st.Mode(), err)
	}
	basisOf := func() string {
		t.Helper()
		out, stderr, err := sh(t, CheckScript(filepath.Join(dir, "v2", "app"), sum1, 0o755, live), nil)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || lines[0] != "send" {
			t.Fatalf("%q %v: %s", out, err, stderr)
		}
		return ParseOffer(lines[1:]).Basis
	}
	if got := basisOf(); got != sum1 {
		t.Errorf("basis %q, want %s", got, sum1)
	}
	// A note that names another sum for the same stat line is believed: the
	// file was not read.
	fake := strings.Repeat("ab", 32)
	os.WriteFile(note, []byte(fake+strings.TrimPrefix(string(b), sum1)), 0o644)
	if got := basisOf(); got != fake {
		t.Errorf("basis %q, want the note's %s: the check hashed the file", got, fake)
	}
	// Deploying the same build again ("same", the mode as it was) leaves
	// the note valid: no chmod moves the file's change time.
	time.Sleep(10 * time.Millisecond)
	if out, stderr, err := sh(t, CheckScript(live, sum1, 0o755, ""), nil); err != nil || out != "same\n" {
		t.Fatalf("%q %v: %s", out, err, stderr)
	}
	if got := basisOf(); got != fake {
		t.Errorf("basis %q after a same-build check, want the note's %s still", got, fake)
	}
	// Unless the file changed since, mtime set back or not.
	time.Sleep(10 * time.Millisecond)
	replaceKeepingMtime(t, live, forged)
	if got := basisOf(); got != SHA256Hex(forged) {
		t.Errorf("a basis changed with its mtime set back: %q, want its real hash", got)
	}
	// An upload without a note (not one of a series) leaves none.
	other := filepath.Join(dir, "v1", "other")
	if _, stderr, err := sh(t, ReceiveScript(Target{other, sum1, int64(len(build1)), 0o755, false}, int64(len(build1)), Plain), build1); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "v1", ".other.sum")); err == nil {
		t.Error("a sum note beside a file uploaded without one")
	}
}

// What the server receives (whole, or rebuilt from a basis) is renamed into
// place only when its SHA-256 is the one sent; otherwise the file in place
// stays and no temporary file is left.
func TestUploadRefusesAFileThatIsNotTheOneSent(t *testing.T) {
	want := []byte("build 2\n")
	sum := SHA256Hex(want)
	basis := randomBytes(1, 300_000)
	target := append([]byte{}, basis...)
	copy(target[4000:], "version 2.0.0")
	changedBasis := append([]byte{}, basis...)
	copy(changedBasis[100_000:], "changed on the server")
	ops := computeDelta(basis, target)
	if ops == nil {
		t.Fatal("no delta for a small change")
	}
	n := int64(len(want))
	zWant, _ := zstdCompress(want)
	zOther, _ := zstdCompress([]byte("build 3\n"))
	gWant, _ := gzipCompress(want)
	patch := zstdPatch(t, basis, target)

	cases := map[string]struct {
		script func(remote, basisPath string) string
		stdin  []byte
		basis  []byte
		want   []byte // the file in place afterwards; nil: the old one
	}{
		"whole": {func(r, _ string) string { return ReceiveScript(Target{r, sum, n, 0o750, false}, n, Plain) }, want, nil, want},
		"damaged": {func(r, _ string) string { return ReceiveScript(Target{r, sum, n, 0o750, false}, n, Plain) },
			[]byte("build 3\n"), nil, nil},
		"cut short": {func(r, _ string) string { return ReceiveScript(Target{r, sum, n, 0o750, false}, n, Plain) },
			[]byte("build"), nil, nil},
		"zstd": {func(r, _ string) string {
			return ReceiveScript(Target{r, sum, n, 0o750, false}, int64(len(zWant)), Zstd)
		}, zWant, nil, want},
		"gzip": {func(r, _ string) string {
			return ReceiveScript(Target{r, sum, n, 0o750, false}, int64(len(gWant)), Gzip)
		}, gWant, nil, want},
		"zstd of another file": {func(r, _ string) string {
			return ReceiveScript(Target{r, sum, n, 0o750, false}, int64(len(zOther)), Zstd)
		},
			zOther, nil, nil},
		"patched": {func(r, b string) string {
			return PatchScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true})
		}, patch, basis, target},
		"patch cut short": {func(r, b string) string {
			return PatchScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true})
		}, patch[:len(patch)/2], basis, nil},
		"patch without its last byte": {func(r, b string) string {
			return PatchScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true})
		}, patch[:len(patch)-1], basis, nil},
		"patched from a changed basis": {func(r, b string) string {
			return PatchScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true})
		}, patch, changedBasis, nil},
		"rebuilt": {func(r, b string) string {
			return DeltaScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true}, ops)
		}, DeltaStdin(ops), basis, target},
		"rebuilt from a changed basis": {func(r, b string) string {
			return DeltaScript(b, Target{r, SHA256Hex(target), int64(len(target)), 0o750, true}, ops)
		}, DeltaStdin(ops), changedBasis, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			remote, basisPath := filepath.Join(dir, "app"), filepath.Join(dir, "basis")
			os.WriteFile(remote, []byte("the old file\n"), 0o755)
			os.WriteFile(basisPath, tc.basis, 0o755)
			_, stderr, err := sh(t, tc.script(remote, basisPath), tc.stdin)
			got, _ := os.ReadFile(remote)
			if tc.want != nil {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("%v: %s; the server has %d bytes, want %d", err, stderr, len(got), len(tc.want))
				}
				if st, _ := os.Stat(remote); st.Mode().Perm() != 0o750 {
					t.Errorf("mode %v", st.Mode())
				}
			} else {
				if err == nil {
					t.Fatal("the script accepted a file that is not the one sent")
				}
				if string(got) != "the old file\n" {
					t.Errorf("the file in place became %q", got)
				}
				if !strings.Contains(stderr, remote+" is left as it was") {
					t.Errorf("the error says %q", stderr)
				}
			}
			note, noteErr := os.ReadFile(filepath.Join(dir, ".app.sum"))
			switch {
			case tc.want == nil && noteErr == nil:
				t.Errorf("a sum note %q after a refused file", note)
			case tc.want != nil && (name == "patched" || name == "rebuilt") && !strings.HasPrefix(string(note), SHA256Hex(tc.want)+" "):
				t.Errorf("sum note %q (%v), want the new file's sum first", note, noteErr)
			}
			if tmp, _ := filepath.Glob(filepath.Join(dir, "*.raijin-*")); len(tmp) > 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
		})
	}
}

// zstdPatch makes target's patch against basis as raijin does, with the
// zstd command, and checks it.
func zstdPatch(t *testing.T, basis, target []byte) []byte {
	t.Helper()
	if LocalZstd() == "" {
		t.Fatal("this machine has no zstd with --patch-from (1.4.5 or later); scripts/test.sh installs it")
	}
	dir := t.TempDir()
	c := &Cache{Dir: filepath.Join(dir, "cache"), Keep: 4}
	b, tg := filepath.Join(dir, "basis"), filepath.Join(dir, "target")
	os.WriteFile(b, basis, 0o644)
	os.WriteFile(tg, target, 0o644)
	os.MkdirAll(c.Dir, 0o700)
	os.WriteFile(c.path(SHA256Hex(basis)), basis, 0o600)
	p := c.Patch(context.Background(), SHA256Hex(basis), tg, SHA256Hex(target))
	if p == nil {
		t.Fatal("no patch made")
	}
	patch, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return patch
}

// The server's zstd gets huge pages, and keeps the server's own tunables
// after them (so theirs win), in a real shell.
func TestServerZstdKeepsTheServersTunables(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"", "glibc.malloc.hugetlb=1"},
		{"glibc.pthread.rseq=0", "glibc.malloc.hugetlb=1:glibc.pthread.rseq=0"},
	} {
		cmd := exec.Command("sh", "-c", hugePagesPrefix+` sh -c 'printf %s "$GLIBC_TUNABLES"'`)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		if c.env != "" {
			cmd.Env = append(cmd.Env, "GLIBC_TUNABLES="+c.env)
		}
		out, err := cmd.Output()
		if err != nil || string(out) != c.want {
			t.Errorf("with GLIBC_TUNABLES=%q the command sees %q (%v), want %q", c.env, out, err, c.want)
		}
	}
	if !strings.HasPrefix(Zstd.DecompressCommand(), hugePagesPrefix+" zstd ") {
		t.Errorf("DecompressCommand() = %q, want zstd with huge pages", Zstd.DecompressCommand())
	}
}

// The patch is rebuilt as it comes, in pieces with pauses between them (the
// link); without GNU tail from stdin; a write that fails says so; and the
// script ends as soon as zstd fails (its basis is gone), not when the patch
// ends: stdin stays open here until the script has ended.
func TestPatchScriptReadsThePatchAsItComes(t *testing.T) {
	basis := randomBytes(2, 400_000)
	target := append([]byte{}, basis...)
	copy(target[200_000:], "version 3.0.0")
	patch := zstdPatch(t, basis, target)
	run := func(t *testing.T, basisPath string, feed func(w *os.File), fakes ...string) (string, error, time.Duration) {
		dir := t.TempDir()
		remote := filepath.Join(dir, "app")
		if basisPath == "" {
			basisPath = filepath.Join(dir, "basis")
			os.WriteFile(basisPath, basis, 0o755)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c := exec.Command("sh", "-c", PatchScript(basisPath, Target{remote, SHA256Hex(target), int64(len(target)), 0o755, false}))
		c.Stdin = r
		if len(fakes) > 0 {
			// fakes: name, script, ...: commands that stand in for the
			// server's, first on its PATH.
			bin := t.TempDir()
			for i := 0; i+1 < len(fakes); i += 2 {
				os.WriteFile(filepath.Join(bin, fakes[i]), []byte("#!/bin/sh\n"+fakes[i+1]+"\n"), 0o755)
			}
			c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		}
		var e bytes.Buffer
		c.Stderr = &e
		start := time.Now()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		go feed(w)
		err = c.Wait()
		w.Close()
		took := time.Since(start)
		if got, _ := os.ReadFile(remote); err == nil && !bytes.Equal(got, target) {
			t.Errorf("the rebuilt file is %d bytes, not the target's %d", len(got), len(target))
		}
		if tmp, _ := filepath.Glob(filepath.Join(dir, "*.raijin-*")); len(tmp) > 0 {
			t.Errorf("temporary files left: %q", tmp)
		}
		return e.String(), err, took
	}
	t.Run("in pieces", func(t *testing.T) {
		stderr, err, _ := run(t, "", func(w *os.File) {
			for i := 0; i < len(patch); i += len(patch)/5 + 1 {
				w.Write(patch[i:min(i+len(patch)/5+1, len(patch))])
				time.Sleep(50 * time.Millisecond)
			}
			w.Close()
		})
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
	})
	whole := func(w *os.File) { w.Write(patch); w.Close() }
	// Another tail (uutils', BusyBox's) is never used: zstd reads stdin.
	t.Run("without GNU tail", func(t *testing.T) {
		stderr, err, _ := run(t, "", whole, "tail", `[ "$1" = --version ] && echo "tail (uutils coreutils) 0.0.17" && exit 0; echo "tail used: $*" >&2; exit 3`)
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
	})
	t.Run("the write fails", func(t *testing.T) {
		stderr, err, _ := run(t, "", whole, "tee", `cat > /dev/null; echo "tee: write error: No space left on device" >&2; exit 1`)
		if err == nil || !strings.Contains(stderr, "could not write the rebuilt file") || !strings.Contains(stderr, "is left as it was") {
			t.Fatalf("err %v, stderr %q: want the write's failure", err, stderr)
		}
	})
	t.Run("zstd fails", func(t *testing.T) {
		stderr, err, took := run(t, "/nonexistent/basis", func(w *os.File) {
			w.Write(patch[:len(patch)/2]) // and the rest never comes
		})
		if err == nil || !strings.Contains(stderr, "zstd could not rebuild") {
			t.Fatalf("err %v, stderr %q: want zstd's failure", err, stderr)
		}
		if took > 3*time.Second {
			t.Errorf("the script ended %s after it started, with its stdin still open: it waited for the patch's end", took)
		}
	})
}
