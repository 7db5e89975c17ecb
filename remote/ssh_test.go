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
	"time"

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
	// Rebuilt from the basis: by difference or as a zstd patch (when both
	// ends have zstd).
	byDifference := func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		found := false
		for _, c := range obs.commands {
			found = found || strings.Contains(c, "by difference") || strings.Contains(c, "as a zstd patch")
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
		t.Fatal("the upgrade from an intact basis was not rebuilt from it")
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

// A patch is started, and its first bytes sent, against the file last
// sent from the same local path before the server names its basis (the
// live version's file, almost always). When the server names another, the
// early patch is cut and the right one goes; when it names the guessed one,
// the early patch goes on; when the server has the build already, it is
// cut. Nothing is left behind on the server.
func TestSessionUploadGuessesTheBasis(t *testing.T) {
	if upload.LocalZstd() == "" {
		t.Fatal("this machine has no zstd with --patch-from; scripts/test.sh installs it")
	}
	h, obs := remoteHost(t)
	h.Cache = &upload.Cache{Dir: t.TempDir(), Keep: 4}
	dir := t.TempDir()
	ctx := context.Background()
	v1 := words(1, 3<<20)
	v2 := append([]byte{}, v1...)
	for i := 1000; i < len(v2); i += 20_000 {
		copy(v2[i:], fmt.Sprintf("<v2 %d>", i))
	}
	v3 := append([]byte{}, v2...)
	for i := 3000; i < len(v3); i += 20_000 {
		copy(v3[i:], fmt.Sprintf("<v3 %d>", i))
	}
	sum := func(b []byte) string { return upload.SHA256Hex(b) }
	basis := filepath.Join(dir, "server", "v1", "app")
	local := filepath.Join(dir, "dist", "app")
	os.MkdirAll(filepath.Dir(local), 0o755)
	// v1 goes to the server from another path; v2 is the last sent from dist/app.
	if _, err := h.Upload(ctx, writeLocal(t, dir, "v1", v1), basis, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(local, v2, 0o644)
	if _, err := h.Upload(ctx, local, filepath.Join(dir, "server", "v2", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	// build writes data to dist/app and uploads it to version v's file
	// from basis; the server must end up with data.
	build := func(v string, data []byte, basis string, wantSent bool) string {
		t.Helper()
		os.WriteFile(local, data, 0o644)
		dst := filepath.Join(dir, "server", v, "app")
		if sent, err := h.UploadFrom(ctx, local, dst, 0o755, basis); err != nil || sent != wantSent {
			t.Fatalf("UploadFrom %s: sent %v, %v", v, sent, err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Fatalf("the server's %s differs from the build", v)
		}
		return dst
	}
	dst := build("v3", v3, basis, true)
	if !h.Cache.Making(sum(v1), sum(v3)) {
		t.Error("no patch against the basis the server named")
	}
	if !h.Cache.Making(sum(v2), sum(v3)) {
		t.Fatal("no patch was started against the last file sent from dist/app")
	}
	said := func(what string) bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		found := false
		for _, c := range obs.commands {
			found = found || strings.Contains(c, what)
		}
		return found
	}
	if !said("the patch sent before the check was cut") {
		t.Error("the patch against the wrong guess was not cut")
	}
	if !said("up to 16384 kB before the check)") {
		t.Error("the first patch guessed for this server did not send up to 16 MB before the check")
	}
	if h.Cache.GuessedRight(h.Addr()) {
		t.Error("the wrong guess was not remembered")
	}
	noLeftovers := func() {
		t.Helper()
		if m, _ := filepath.Glob(filepath.Join(dir, "server", "*", "*.raijin-*")); len(m) > 0 {
			t.Errorf("temporary files left on the server: %q", m)
		}
	}
	noLeftovers()

	// The guess is right: the patch sent before the check goes on.
	obs.mu.Lock()
	obs.commands = nil
	obs.mu.Unlock()
	v4 := append([]byte{}, v3...)
	for i := 5000; i < len(v4); i += 20_000 {
		copy(v4[i:], fmt.Sprintf("<v4 %d>", i))
	}
	dst4 := build("v4", v4, dst, true)
	if !said("before the check)") || !said("sent "+dst4+" as a zstd patch against "+dst) || said("was cut") {
		t.Errorf("v4 did not go as the patch sent before the check:\n%s", strings.Join(obs.commands, "\n"))
	}
	// After a wrong guess, less goes before the check; a right one puts it back.
	if !said("up to 256 kB before the check)") {
		t.Errorf("after a wrong guess, more than 256 kB went before the check:\n%s", strings.Join(obs.commands, "\n"))
	}
	if !h.Cache.GuessedRight(h.Addr()) {
		t.Error("the right guess was not remembered")
	}
	noLeftovers()

	// The server has the build already (sent from another path): the
	// patch sent before the check is cut, the file stays.
	v5 := append([]byte{}, v4...)
	copy(v5[9000:], "v5 here")
	dst5 := filepath.Join(dir, "server", "v5", "app")
	if _, err := h.Upload(ctx, writeLocal(t, dir, "v5", v5), dst5, 0o755); err != nil {
		t.Fatal(err)
	}
	build("v5", v5, dst4, false)
	noLeftovers()
}

// earlyFixture is a session with an upload cache and a local distfile
// path, for the patches sent before the check's answer.
type earlyFixture struct {
	t     *testing.T
	h     *remote.Session
	obs   *recObserver
	dir   string
	local string
}

func newEarlyFixture(t *testing.T) *earlyFixture {
	if upload.LocalZstd() == "" {
		t.Fatal("this machine has no zstd with --patch-from; scripts/test.sh installs it")
	}
	h, obs := remoteHost(t)
	h.Cache = &upload.Cache{Dir: t.TempDir(), Keep: 6}
	dir := t.TempDir()
	f := &earlyFixture{t: t, h: h, obs: obs, dir: dir, local: filepath.Join(dir, "dist", "app")}
	os.MkdirAll(filepath.Dir(f.local), 0o755)
	return f
}

// version is data with a megabyte of new random bytes at off: its patch
// is far larger than what goes before the check's answer.
func bigChange(data []byte, seed int64, off int) []byte {
	out := append([]byte{}, data...)
	rand.New(rand.NewSource(seed)).Read(out[off : off+1<<20])
	return out
}

// smallChange sends a first build to v1 from the local path, and leaves
// there a build with another version string, which it returns.
func (f *earlyFixture) smallChange(seed int64) []byte {
	f.t.Helper()
	v1 := words(seed, 3<<20)
	os.WriteFile(f.local, v1, 0o644)
	if _, err := f.h.Upload(context.Background(), f.local, f.dst("v1"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	v2 := append([]byte{}, v1...)
	copy(v2[4000:], "version 2")
	os.WriteFile(f.local, v2, 0o644)
	return v2
}

func (f *earlyFixture) dst(v string) string { return filepath.Join(f.dir, "server", v, "app") }

func (f *earlyFixture) said(what string) bool {
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	for _, c := range f.obs.commands {
		if strings.Contains(c, what) {
			return true
		}
	}
	return false
}

func (f *earlyFixture) forget() {
	f.obs.mu.Lock()
	f.obs.commands = nil
	f.obs.mu.Unlock()
}

func (f *earlyFixture) has(v string, data []byte) bool {
	got, err := os.ReadFile(f.dst(v))
	return err == nil && bytes.Equal(got, data)
}

// noLeftovers waits up to 5 s for the server's temporary files to go (a
// cut session ends on its own time).
func (f *earlyFixture) noLeftovers() {
	f.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(f.dir, "server", "*", "*.raijin-*"))
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Errorf("temporary files left on the server: %q", m)
			return
		}
	}
}

// A patch larger than what goes before the answer: the rest goes once
// the answer names the guessed basis; when it names another, the stream is
// cut where it stood and the right patch goes.
func TestSessionEarlyPatchLargerThanItsHead(t *testing.T) {
	f := newEarlyFixture(t)
	ctx := context.Background()
	v1 := words(1, 4<<20)
	v2 := bigChange(v1, 2, 1<<20)
	v3 := bigChange(v2, 3, 2<<20)
	os.WriteFile(f.local, v1, 0o644)
	if _, err := f.h.Upload(ctx, f.local, f.dst("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.local, v2, 0o644)
	if sent, err := f.h.UploadFrom(ctx, f.local, f.dst("v2"), 0o755, f.dst("v1")); err != nil || !sent || !f.has("v2", v2) {
		t.Fatalf("v2: sent %v, %v", sent, err)
	}
	if !f.said("before the check)") || !f.said("sent "+f.dst("v2")+" as a zstd patch") || f.said("was cut") {
		t.Errorf("v2 did not go as the early patch:\n%s", strings.Join(f.obs.commands, "\n"))
	}
	f.forget()
	// The server names v1; this machine last sent v2.
	os.WriteFile(f.local, v3, 0o644)
	if sent, err := f.h.UploadFrom(ctx, f.local, f.dst("v3"), 0o755, f.dst("v1")); err != nil || !sent || !f.has("v3", v3) {
		t.Fatalf("v3: sent %v, %v", sent, err)
	}
	if !f.said("the patch sent before the check was cut: the server's " + f.dst("v1") + " has SHA-256") {
		t.Errorf("the wrong guess was not cut, or not said why:\n%s", strings.Join(f.obs.commands, "\n"))
	}
	f.noLeftovers()
}

// The early patch of a small change is whole before the check even runs
// (here the check waits in a queue): the server still gets only a patch
// cut short until the answer, so the check answers "send", and the file is
// reported sent.
func TestSessionEarlyPatchWaitsForItsCheck(t *testing.T) {
	f := newEarlyFixture(t)
	ctx := context.Background()
	v2 := f.smallChange(5)
	f.h.Begin()
	if _, err := f.h.UploadFrom(ctx, f.local, f.dst("v2"), 0o755, f.dst("v1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if f.has("v2", v2) {
		t.Fatal("the early patch put the file in place before the check's answer")
	}
	f.h.End()
	if err := f.h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.h.Sent(f.dst("v2")) || !f.has("v2", v2) {
		t.Errorf("after the answer: sent %v, file in place %v", f.h.Sent(f.dst("v2")), f.has("v2", v2))
	}
	f.noLeftovers()
}

// A step queued before the check fails: the check is never answered, the
// early patch is cut, and nothing is put in place.
func TestSessionEarlyPatchCutWhenABatchFails(t *testing.T) {
	f := newEarlyFixture(t)
	ctx := context.Background()
	v2 := f.smallChange(7)
	f.h.Begin()
	f.h.Run(ctx, "exit 3", remote.RunOpts{})
	if _, err := f.h.UploadFrom(ctx, f.local, f.dst("v2"), 0o755, f.dst("v1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	f.h.End()
	if err := f.h.Flush(ctx); err == nil {
		t.Fatal("the batch with a failing step succeeded")
	}
	f.noLeftovers() // the cut session has ended
	if f.has("v2", v2) {
		t.Error("the file of a failed batch was put in place by the early patch")
	}
	f.noLeftovers()
}
