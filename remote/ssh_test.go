package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/internal/testsession"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/upload"
)

func writeLocal(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".*raijin*"))
	return m
}

type recObserver struct {
	mu       sync.Mutex
	commands []string
	skipped  []bool
	onCmd    func(cmd string) // called as each command is shown, before it runs
}

func (o *recObserver) Command(host, cmd string) {
	o.mu.Lock()
	o.commands = append(o.commands, cmd)
	hook := o.onCmd
	o.mu.Unlock()
	if hook != nil {
		hook(cmd)
	}
}

func (o *recObserver) Upload(host, local, remote string, sent, total int64, skipped bool) {
	o.mu.Lock()
	if skipped || sent == total {
		o.skipped = append(o.skipped, skipped)
	}
	o.mu.Unlock()
}

func remoteHost(t *testing.T) (*remote.Session, *recObserver) {
	obs := &recObserver{}
	r := &secrets.Redactor{}
	r.Add("s3cret-value")
	return testsession.New(t, obs, r), obs
}

func TestSessionUploadSkipsSameContent(t *testing.T) {
	h, obs := remoteHost(t)
	ctx := context.Background()
	local := writeLocal(t, t.TempDir(), "app", []byte("binary v1"))
	dst := filepath.Join(t.TempDir(), "new", "sub", "app") // Upload makes the directory
	sent, err := h.Upload(ctx, local, dst, 0o755)
	if err != nil || !sent {
		t.Fatalf("first upload: sent=%v err=%v", sent, err)
	}
	sent, err = h.Upload(ctx, local, dst, 0o700)
	if err != nil || sent {
		t.Fatalf("same content: sent=%v err=%v; want skipped", sent, err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o700 {
		t.Errorf("a skipped upload still sets the mode: got %o", st.Mode().Perm())
	}
	os.WriteFile(local, []byte("binary v2"), 0o644)
	sent, err = h.Upload(ctx, local, dst, 0o755)
	if err != nil || !sent {
		t.Fatalf("changed content: sent=%v err=%v", sent, err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "binary v2" {
		t.Errorf("dst has %q", got)
	}
	skips := 0
	for _, s := range obs.skipped {
		if s {
			skips++
		}
	}
	if skips != 1 {
		t.Errorf("observer saw skipped=%v; want one skipped upload", obs.skipped)
	}
	// A directory that cannot be made is an error, not a silent skip.
	blocker := writeLocal(t, t.TempDir(), "file", nil)
	_, err = h.Upload(ctx, local, filepath.Join(blocker, "app"), 0o644)
	testkit.WantErr(t, err, "preparing "+blocker+" failed")
}

func TestSessionWrite(t *testing.T) {
	h, obs := remoteHost(t)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "site.caddy")
	for i, step := range []struct {
		data    string
		mode    os.FileMode
		changed bool
	}{
		{"a {\n}\n", 0, true},                  // new file, default mode
		{"a {\n}\n", 0, false},                 // same
		{"b with s3cret-value\n", 0o600, true}, // different
		{"b with s3cret-value\n", 0o640, false},
	} {
		changed, err := h.Write(ctx, p, []byte(step.data), remote.WriteOpts{Mode: step.mode})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if changed != step.changed {
			t.Errorf("step %d: changed=%v, want %v", i, changed, step.changed)
		}
		got, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		want := step.mode
		if want == 0 {
			want = 0o644
		}
		if string(got) != step.data || st.Mode().Perm() != want {
			t.Errorf("step %d: file %q mode %o; want %q mode %o", i, got, st.Mode().Perm(), step.data, want)
		}
	}
	if l := leftovers(t, filepath.Dir(p)); len(l) != 0 {
		t.Errorf("left behind %v", l)
	}
	for _, c := range obs.commands {
		if strings.Contains(c, "s3cret-value") {
			t.Errorf("echoed a secret: %s", c)
		}
	}
	_, err := h.Write(ctx, filepath.Join(t.TempDir(), "no", "dir"), []byte("x"), remote.WriteOpts{})
	testkit.WantErr(t, err, "writing ", "failed")
}

func TestSessionRunOpts(t *testing.T) {
	h, obs := remoteHost(t)
	dir := t.TempDir()
	appenv := writeLocal(t, dir, ".appenv", []byte("export FROM_APPENV=yes\n"))
	res, err := h.Run(context.Background(), `pwd; echo "$FROM_APPENV $X"`, remote.RunOpts{Cwd: dir, Appenv: appenv, Env: map[string]string{"X": "it's $HOME"}, Stdin: []byte("ignored")})
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "\nyes it's $HOME\n"; res.Stdout != want || res.Code != 0 {
		t.Errorf("Run = %+v; want stdout %q", res, want)
	}
	if len(obs.commands) != 1 || !strings.HasPrefix(obs.commands[0], "export X=") {
		t.Errorf("echoed %q", obs.commands)
	}
}

// Upload sends a file once and skips a second upload of the same content;
// a file changed on the server, even with its mtime set back, goes again.
func TestSessionUploadSkipsTheSameFile(t *testing.T) {
	h := testsession.New(t, nil, nil)
	dir := t.TempDir()
	local := filepath.Join(dir, "app")
	os.WriteFile(local, []byte("build 1\n"), 0o644)
	dst := filepath.Join(dir, "server", "v1", "app")
	ctx := context.Background()
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || !sent {
		t.Fatalf("first upload: sent %v, %v", sent, err)
	}
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || sent {
		t.Errorf("the same file again: sent %v, %v; want it skipped", sent, err)
	}
	st, _ := os.Stat(dst)
	os.WriteFile(dst, []byte("build X\n"), 0o755)
	os.Chtimes(dst, st.ModTime(), st.ModTime())
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || !sent {
		t.Errorf("over a file changed on the server with its mtime set back: sent %v, %v; want it sent", sent, err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "build 1\n" {
		t.Errorf("the server has %q", got)
	}
	os.WriteFile(local, []byte("build 2\n"), 0o644)
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || !sent {
		t.Errorf("a changed file: sent %v, %v", sent, err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "build 2\n" {
		t.Errorf("the server has %q", got)
	}
}

// Bytes that arrive as another file than the one checked are not renamed
// into place: the error names the file and the host. (Here the local file
// changes after raijin hashed it, its size and mtime kept, so the hash
// remembered for it is stale.)
func TestSessionUploadRefusesOtherBytes(t *testing.T) {
	h := testsession.New(t, nil, nil)
	dir := t.TempDir()
	local := writeLocal(t, dir, "app", []byte("build 1\n"))
	dst := filepath.Join(dir, "server", "app")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	os.WriteFile(dst, []byte("the old file\n"), 0o755)
	if _, err := upload.FileSHA256(local); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(local)
	os.WriteFile(local, []byte("build 2\n"), 0o644)
	os.Chtimes(local, st.ModTime(), st.ModTime())

	_, err := h.Upload(context.Background(), local, dst, 0o755)
	if err == nil || !strings.Contains(err.Error(), "uploading app to "+dst+" on test failed") || !strings.Contains(err.Error(), dst+" is left as it was") {
		t.Fatalf("Upload = %v, want an error naming the file and the host", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "the old file\n" {
		t.Errorf("the server has %q, want the old file", got)
	}
	if tmp, _ := filepath.Glob(dst + ".raijin-*"); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
}

// A basis changed on the server with its mtime set back is hashed as it is
// now: this machine has no copy of that, so the new file goes whole.
func TestSessionUploadFromAChangedBasisSendsWhole(t *testing.T) {
	h, obs := remoteHost(t)
	h.Cache = &upload.Cache{Dir: t.TempDir(), Keep: 4}
	dir := t.TempDir()
	v1 := make([]byte, upload.MinDeltaSize)
	rand.New(rand.NewSource(1)).Read(v1)
	basis := filepath.Join(dir, "server", "v1", "app")
	ctx := context.Background()
	if _, err := h.Upload(ctx, writeLocal(t, dir, "app1", v1), basis, 0o755); err != nil {
		t.Fatal(err)
	}
	byDifference := func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		found := false
		for _, c := range obs.commands {
			found = found || strings.Contains(c, "by difference")
		}
		obs.commands = nil
		return found
	}
	upgrade := func(version string) []byte {
		t.Helper()
		data := append([]byte{}, v1...)
		copy(data[1000:], "version "+version)
		dst := filepath.Join(dir, "server", "v"+version, "app")
		if sent, err := h.UploadFrom(ctx, writeLocal(t, dir, "app"+version, data), dst, 0o755, basis); err != nil || !sent {
			t.Fatalf("UploadFrom: sent %v, %v", sent, err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("the server's v%s differs from the build (%d bytes)", version, len(got))
		}
		return data
	}

	upgrade("2")
	if !byDifference() {
		t.Fatal("the upgrade from an intact basis was not sent by difference")
	}
	forged := append([]byte{}, v1...)
	copy(forged[500_000:], "changed on the server")
	st, _ := os.Stat(basis)
	os.WriteFile(basis, forged, 0o755)
	os.Chtimes(basis, st.ModTime(), st.ModTime())
	upgrade("3")
	if byDifference() {
		t.Error("a basis changed on the server with its mtime set back was used")
	}
}

// words makes n bytes of text-like data: compressible, as a binary is.
func words(seed int64, n int) []byte {
	vocab := strings.Fields("deploy release caddy systemd unit socket server binary patch zstd gzip host user route health check version")
	r := rand.New(rand.NewSource(seed))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(vocab[r.Intn(len(vocab))])
		b.WriteByte(" \n"[r.Intn(2)])
		fmt.Fprintf(&b, "%d ", r.Intn(1000))
	}
	return b.Bytes()[:n]
}

// A first upload goes compressed; a real upgrade (changes all through the
// file, so the difference gives up) goes as a zstd patch against the
// server's basis; a file compressed already goes as it is; a patch whose
// basis changed on the server falls back to the whole file. Every time the
// server ends up with the exact bytes.
func TestSessionUploadCompressesAndPatches(t *testing.T) {
	if upload.LocalZstd() == "" {
		t.Fatal("this machine has no zstd with --patch-from; scripts/test.sh installs it")
	}
	h, obs := remoteHost(t)
	h.Cache = &upload.Cache{Dir: t.TempDir(), Keep: 4}
	dir := t.TempDir()
	ctx := context.Background()
	said := func(what string) bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		found := false
		for _, c := range obs.commands {
			found = found || strings.Contains(c, what)
		}
		obs.commands = nil
		return found
	}
	put := func(name string, data []byte, dst, basis string) {
		t.Helper()
		if sent, err := h.UploadFrom(ctx, writeLocal(t, dir, name, data), dst, 0o755, basis); err != nil || !sent {
			t.Fatalf("UploadFrom %s: sent %v, %v", name, sent, err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Fatalf("the server's %s differs from %s (%d bytes of %d)", dst, name, len(got), len(data))
		}
	}
	v1 := words(1, 3<<20)
	basis := filepath.Join(dir, "server", "v1", "app")
	put("app1", v1, basis, "")
	if !said("(zstd, ") {
		t.Error("the first upload did not go compressed with zstd")
	}
	// An upgrade: a few bytes changed every 20 kB, as moved code changes
	// addresses all through a binary.
	v2 := append([]byte{}, v1...)
	for i := 1000; i < len(v2); i += 20_000 {
		copy(v2[i:], fmt.Sprintf("<v2 %d>", i))
	}
	put("app2", v2, filepath.Join(dir, "server", "v2", "app"), basis)
	if !said("as a zstd patch against " + basis) {
		t.Error("the real upgrade did not go as a patch")
	}
	// A wheel is a zip: compressed already.
	wheel := append([]byte("PK\x03\x04"), make([]byte, 200_000)...)
	put("app.whl", wheel, filepath.Join(dir, "server", "v1", "app.whl"), "")
	if !said("(200004 bytes on stdin)") {
		t.Error("a zip was not sent as it is")
	}
	// The basis changes on the server after this machine made the patch.
	v3 := append([]byte{}, v2...)
	copy(v3[7000:], "v3 here")
	for i := 3000; i < len(v3); i += 20_000 {
		copy(v3[i:], fmt.Sprintf("<v3 %d>", i))
	}
	os.WriteFile(basis, v1[:len(v1)-10], 0o755)
	put("app3", v3, filepath.Join(dir, "server", "v3", "app"), basis)
	if said("as a zstd patch") {
		t.Error("a patch was tried against a basis this machine does not have")
	}
	// The basis changes between the check and the patch's arrival: the
	// rebuild fails and the whole file goes.
	basis2 := filepath.Join(dir, "server", "v2", "app")
	obs.onCmd = func(cmd string) {
		if strings.Contains(cmd, "as a zstd patch") {
			os.WriteFile(basis2, v1, 0o755)
		}
	}
	put("app4", v3, filepath.Join(dir, "server", "v4", "app"), basis2)
	if !said("rebuilding " + filepath.Join(dir, "server", "v4", "app") + " from the patch failed") {
		t.Error("the failed rebuild was not said")
	}
}
