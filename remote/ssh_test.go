package remote_test

import (
	"context"
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

// Upload sends a file once, notes its hash, and skips a second upload of the
// same content.
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
	if note, _ := os.ReadFile(upload.SumFile(dst)); string(note) != upload.SHA256Hex([]byte("build 1\n"))+"\n" {
		t.Errorf("the note of the hash says %q", note)
	}
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || sent {
		t.Errorf("the same file again: sent %v, %v; want it skipped", sent, err)
	}
	os.WriteFile(local, []byte("build 2\n"), 0o644)
	if sent, err := h.Upload(ctx, local, dst, 0o755); err != nil || !sent {
		t.Errorf("a changed file: sent %v, %v", sent, err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "build 2\n" {
		t.Errorf("the server has %q", got)
	}
}
