package builtins

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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

func TestClientUploadTempNameThenRename(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.target())
	local := writeLocal(t, t.TempDir(), "app", bytes.Repeat([]byte("0123456789"), 100000))
	dir := t.TempDir()
	remote := filepath.Join(dir, "app")
	var mu sync.Mutex
	var tmpModes []os.FileMode
	var lastSent, lastTotal int64
	progress := func(sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		lastSent, lastTotal = sent, total
		// While bytes flow, only the temporary name exists, already with
		// its final mode.
		for _, m := range leftovers(t, dir) {
			if st, err := os.Stat(m); err == nil {
				tmpModes = append(tmpModes, st.Mode().Perm())
			}
		}
		if _, err := os.Stat(remote); err == nil {
			t.Error("the real name exists before the upload finished")
		}
	}
	if err := c.Upload(context.Background(), local, remote, 0o600, progress); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(remote)
	want, _ := os.ReadFile(local)
	if !bytes.Equal(got, want) {
		t.Errorf("uploaded %d bytes, want %d", len(got), len(want))
	}
	st, _ := os.Stat(remote)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", st.Mode().Perm())
	}
	if lastSent != int64(len(want)) || lastTotal != int64(len(want)) {
		t.Errorf("last progress %d/%d, want %d/%d", lastSent, lastTotal, len(want), len(want))
	}
	if len(tmpModes) == 0 {
		t.Error("progress never saw the temporary file")
	}
	for _, m := range tmpModes {
		if m != 0o600 {
			t.Errorf("temporary file had mode %o during the upload: a secret was readable", m)
		}
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left behind %v", l)
	}
	// Replacing an existing file works the same way.
	local2 := writeLocal(t, t.TempDir(), "app", []byte("v2"))
	if err := c.Upload(context.Background(), local2, remote, 0o755, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(remote)
	st, _ = os.Stat(remote)
	if string(got) != "v2" || st.Mode().Perm() != 0o755 {
		t.Errorf("after replace: %q mode %o", got, st.Mode().Perm())
	}
}

func TestClientUploadErrors(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.target())
	local := writeLocal(t, t.TempDir(), "app", []byte("x"))
	err := c.Upload(context.Background(), local, filepath.Join(t.TempDir(), "missing-dir", "app"), 0o644, nil)
	wantErr(t, err, "creating ", "missing-dir")
	err = c.Upload(context.Background(), filepath.Join(t.TempDir(), "not-built"), "/tmp/x", 0o644, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing local file: %v", err)
	}
}

func TestClientUploadCancel(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.target())
	local := writeLocal(t, t.TempDir(), "big", bytes.Repeat([]byte("x"), 64<<20))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := c.Upload(ctx, local, filepath.Join(dir, "big"), 0o644, func(sent, total int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); !os.IsNotExist(err) {
		t.Error("a cancelled upload reached the real name")
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("cancelled upload left %v", l)
	}
}

type recObserver struct {
	mu       sync.Mutex
	commands []string
	skipped  []bool
}

func (o *recObserver) Command(host, cmd string) {
	o.mu.Lock()
	o.commands = append(o.commands, cmd)
	o.mu.Unlock()
}

func (o *recObserver) Upload(host, local, remote string, sent, total int64, skipped bool) {
	o.mu.Lock()
	if skipped || sent == total {
		o.skipped = append(o.skipped, skipped)
	}
	o.mu.Unlock()
}

func remoteHost(t *testing.T) (*RemoteHost, *recObserver) {
	f := newFixture(t)
	obs := &recObserver{}
	r := &Redactor{}
	r.Add("s3cret-value")
	return &RemoteHost{HostName: "test", Client: dial(t, f.target()), Observer: obs, Redactor: r}, obs
}

func TestRemoteHostUploadSkipsSameContent(t *testing.T) {
	h, obs := remoteHost(t)
	ctx := context.Background()
	local := writeLocal(t, t.TempDir(), "app", []byte("binary v1"))
	remote := filepath.Join(t.TempDir(), "new", "sub", "app") // Upload makes the directory
	sent, err := h.Upload(ctx, local, remote, 0o755)
	if err != nil || !sent {
		t.Fatalf("first upload: sent=%v err=%v", sent, err)
	}
	sent, err = h.Upload(ctx, local, remote, 0o700)
	if err != nil || sent {
		t.Fatalf("same content: sent=%v err=%v; want skipped", sent, err)
	}
	if st, _ := os.Stat(remote); st.Mode().Perm() != 0o700 {
		t.Errorf("a skipped upload still sets the mode: got %o", st.Mode().Perm())
	}
	os.WriteFile(local, []byte("binary v2"), 0o644)
	sent, err = h.Upload(ctx, local, remote, 0o755)
	if err != nil || !sent {
		t.Fatalf("changed content: sent=%v err=%v", sent, err)
	}
	if got, _ := os.ReadFile(remote); string(got) != "binary v2" {
		t.Errorf("remote has %q", got)
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
	wantErr(t, err, "preparing "+blocker+" failed")
}

func TestRemoteHostWrite(t *testing.T) {
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
		changed, err := h.Write(ctx, p, []byte(step.data), WriteOpts{Mode: step.mode})
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
	_, err := h.Write(ctx, filepath.Join(t.TempDir(), "no", "dir"), []byte("x"), WriteOpts{})
	wantErr(t, err, "writing ", "failed")
}

func TestRemoteHostRunOpts(t *testing.T) {
	h, obs := remoteHost(t)
	dir := t.TempDir()
	appenv := writeLocal(t, dir, ".appenv", []byte("export FROM_APPENV=yes\n"))
	res, err := h.Run(context.Background(), `pwd; echo "$FROM_APPENV $X"`, RunOpts{Cwd: dir, Appenv: appenv, Env: map[string]string{"X": "it's $HOME"}, Stdin: []byte("ignored")})
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

func TestVersionsOnAServer(t *testing.T) {
	h, _ := remoteHost(t)
	ctx := context.Background()
	app := t.TempDir()
	if v, err := ReadVersions(ctx, h, app); err != nil || len(v) != 0 {
		t.Fatalf("no .versions: %v, %v", v, err)
	}
	for _, v := range []string{"1.0", "1.1", "1.2", "1.1", "1.3"} {
		if err := os.MkdirAll(filepath.Join(app, "v"+v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := RecordVersion(ctx, h, app, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadVersions(ctx, h, app)
	if err != nil || strings.Join(got, " ") != "1.3 1.1 1.2 1.0" {
		t.Fatalf("versions = %v, %v; want newest first without repeats", got, err)
	}
	os.MkdirAll(filepath.Join(app, "vstray"), 0o755) // on disk, never recorded
	removed, err := Prune(ctx, h, app, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, " ") != "1.0 1.2 stray" {
		t.Errorf("removed %v", removed)
	}
	got, _ = ReadVersions(ctx, h, app)
	if strings.Join(got, " ") != "1.3 1.1" {
		t.Errorf("versions after prune = %v", got)
	}
	for _, d := range []string{"v1.3", "v1.1"} {
		if _, err := os.Stat(filepath.Join(app, d)); err != nil {
			t.Errorf("%s was pruned", d)
		}
	}
	// Nothing to prune: nothing runs that changes files.
	if removed, err := Prune(ctx, h, app, 2, ""); err != nil || len(removed) != 0 {
		t.Errorf("second prune: %v, %v", removed, err)
	}
	// A missing app directory is not an error.
	if removed, err := Prune(ctx, h, filepath.Join(app, "none"), 2, ""); err != nil || len(removed) != 0 {
		t.Errorf("prune of a missing dir: %v, %v", removed, err)
	}
}

func TestLockOnAServer(t *testing.T) {
	h, _ := remoteHost(t)
	ctx := context.Background()
	app := filepath.Join(t.TempDir(), "app")
	me := NewLockInfo("deploy", "1.0")
	other := LockInfo{User: "ann", Machine: "laptop", PID: 42, Command: "rollback", Token: "tok-ann"}
	res, err := Must(ctx, h, LockScript(app, me, false), RunOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if locked, _ := ParseLockOutput(res.Stdout); !locked {
		t.Fatalf("first lock: %q", res.Stdout)
	}
	res, _ = Must(ctx, h, LockScript(app, other, false), RunOpts{})
	locked, holder := ParseLockOutput(res.Stdout)
	if locked || holder.Token != me.Token || holder.Command != "deploy" || holder.Version != "1.0" {
		t.Fatalf("second lock: locked=%v holder=%+v", locked, holder)
	}
	// Someone else's unlock leaves the lock alone.
	Must(ctx, h, UnlockScript(app, other), RunOpts{})
	if _, err := os.Stat(filepath.Join(app, ".lock")); err != nil {
		t.Fatal("another holder's unlock removed the lock")
	}
	// --force takes it over.
	res, _ = Must(ctx, h, LockScript(app, other, true), RunOpts{})
	if locked, _ := ParseLockOutput(res.Stdout); !locked {
		t.Fatalf("forced lock: %q", res.Stdout)
	}
	Must(ctx, h, UnlockScript(app, other), RunOpts{})
	if _, err := os.Stat(filepath.Join(app, ".lock")); !os.IsNotExist(err) {
		t.Error("the holder's unlock left the lock")
	}
}

// RemoteHost.Upload (outside a Batcher) sends a file once, notes its hash,
// and skips a second upload of the same content.
func TestRemoteHostUploadSkipsTheSameFile(t *testing.T) {
	f := newFixture(t)
	h := &RemoteHost{HostName: "test", Client: dial(t, f.target())}
	dir := t.TempDir()
	local := filepath.Join(dir, "app")
	os.WriteFile(local, []byte("build 1\n"), 0o644)
	remote := filepath.Join(dir, "server", "v1", "app")
	ctx := context.Background()
	if sent, err := h.Upload(ctx, local, remote, 0o755); err != nil || !sent {
		t.Fatalf("first upload: sent %v, %v", sent, err)
	}
	if note, _ := os.ReadFile(sumFile(remote)); string(note) != sha256Hex([]byte("build 1\n"))+"\n" {
		t.Errorf("the note of the hash says %q", note)
	}
	if sent, err := h.Upload(ctx, local, remote, 0o755); err != nil || sent {
		t.Errorf("the same file again: sent %v, %v; want it skipped", sent, err)
	}
	os.WriteFile(local, []byte("build 2\n"), 0o644)
	if sent, err := h.Upload(ctx, local, remote, 0o755); err != nil || !sent {
		t.Errorf("a changed file: sent %v, %v", sent, err)
	}
	if got, _ := os.ReadFile(remote); string(got) != "build 2\n" {
		t.Errorf("the server has %q", got)
	}
}
