package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testsession"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
)

func TestVersionsOnAServer(t *testing.T) {
	h := testsession.New(t, nil, nil)
	ctx := context.Background()
	app := t.TempDir()
	if v, err := server.ReadVersions(ctx, h, app); err != nil || len(v) != 0 {
		t.Fatalf("no .versions: %v, %v", v, err)
	}
	for _, v := range []string{"1.0", "1.1", "1.2", "1.1", "1.3"} {
		if err := os.MkdirAll(filepath.Join(app, "v"+v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := server.RecordVersion(ctx, h, app, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := server.ReadVersions(ctx, h, app)
	if err != nil || strings.Join(got, " ") != "1.3 1.1 1.2 1.0" {
		t.Fatalf("versions = %v, %v; want newest first without repeats", got, err)
	}
	os.MkdirAll(filepath.Join(app, "vstray"), 0o755) // on disk, never recorded
	removed, err := server.Prune(ctx, h, app, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, " ") != "1.0 1.2 stray" {
		t.Errorf("removed %v", removed)
	}
	got, _ = server.ReadVersions(ctx, h, app)
	if strings.Join(got, " ") != "1.3 1.1" {
		t.Errorf("versions after prune = %v", got)
	}
	for _, d := range []string{"v1.3", "v1.1"} {
		if _, err := os.Stat(filepath.Join(app, d)); err != nil {
			t.Errorf("%s was pruned", d)
		}
	}
	// Nothing to prune: nothing runs that changes files.
	if removed, err := server.Prune(ctx, h, app, 2, ""); err != nil || len(removed) != 0 {
		t.Errorf("second prune: %v, %v", removed, err)
	}
	// A missing app directory is not an error.
	if removed, err := server.Prune(ctx, h, filepath.Join(app, "none"), 2, ""); err != nil || len(removed) != 0 {
		t.Errorf("prune of a missing dir: %v, %v", removed, err)
	}
}

func TestLockOnAServer(t *testing.T) {
	h := testsession.New(t, nil, nil)
	ctx := context.Background()
	app := filepath.Join(t.TempDir(), "app")
	me := server.NewLockInfo("deploy", "1.0")
	other := server.LockInfo{User: "ann", Machine: "laptop", PID: 42, Command: "rollback", Token: "tok-ann"}
	res, err := remote.Must(ctx, h, server.LockScript(app, me, nil), remote.RunOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if locked, _ := server.ParseLockOutput(res.Stdout); !locked {
		t.Fatalf("first lock: %q", res.Stdout)
	}
	res, _ = remote.Must(ctx, h, server.LockScript(app, other, nil), remote.RunOpts{})
	locked, holder := server.ParseLockOutput(res.Stdout)
	if locked || holder.Token != me.Token || holder.Command != "deploy" || holder.Version != "1.0" {
		t.Fatalf("second lock: locked=%v holder=%+v", locked, holder)
	}
	// Someone else's unlock leaves the lock alone.
	remote.Must(ctx, h, server.UnlockScript(app, other), remote.RunOpts{})
	if _, err := os.Stat(filepath.Join(app, ".lock")); err != nil {
		t.Fatal("another holder's unlock removed the lock")
	}
	// --force takes it over.
	// Breaking a lock removes only the one that was read: a lock taken
	// meanwhile (another token) stays.
	stranger := server.LockInfo{User: "bob", Token: "tok-bob"}
	res, _ = remote.Must(ctx, h, server.LockScript(app, other, &stranger), remote.RunOpts{})
	if locked, holder := server.ParseLockOutput(res.Stdout); locked || holder.Token != me.Token {
		t.Fatalf("breaking another holder's lock removed this one: %q", res.Stdout)
	}
	res, _ = remote.Must(ctx, h, server.LockScript(app, other, &me), remote.RunOpts{})
	if locked, _ := server.ParseLockOutput(res.Stdout); !locked {
		t.Fatalf("forced lock: %q", res.Stdout)
	}
	remote.Must(ctx, h, server.UnlockScript(app, other), remote.RunOpts{})
	if _, err := os.Stat(filepath.Join(app, ".lock")); !os.IsNotExist(err) {
		t.Error("the holder's unlock left the lock")
	}
}

func TestPruneScriptMatchesPrunePlan(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1.0", "1.1", "1.2", "1.3", "2.0", "stray"} {
		os.MkdirAll(filepath.Join(dir, "v"+v), 0o755)
	}
	os.WriteFile(filepath.Join(dir, ".versions"), []byte("1.3\n1.2\n1.1\n1.0\n"), 0o644)
	h, _ := testsession.LocalSession(nil, nil)
	removed, err := server.Prune(context.Background(), h, dir, 2, "2.0")
	if err != nil {
		t.Fatal(err)
	}
	want := server.PrunePlan([]string{"1.3", "1.2", "1.1", "1.0"}, []string{"1.0", "1.1", "1.2", "1.3", "2.0", "stray"}, 2, "1.3", "2.0")
	if strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %q, PrunePlan says %q", removed, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "v*"))
	vers, _ := os.ReadFile(filepath.Join(dir, ".versions"))
	if len(left) != 3 || string(vers) != "1.3\n1.2\n" {
		t.Errorf("left %q, .versions %q", left, vers)
	}
}

// .versions, the audit log and the lock are the deploy user's alone: the
// app's user reads the app directory through its group. A log an older
// raijin left readable is made private at the next line.
func TestStateFilesArePrivate(t *testing.T) {
	h := testsession.New(t, nil, nil)
	ctx := context.Background()
	app := filepath.Join(t.TempDir(), "app")
	me := server.NewLockInfo("deploy", "1.0")
	mode := func(name string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(filepath.Join(app, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if _, err := remote.Must(ctx, h, server.LockScript(app, me, nil), remote.RunOpts{}); err != nil {
		t.Fatal(err)
	}
	if m, i := mode(".lock"), mode(".lock/info"); m != 0o700 || i != 0o600 {
		t.Errorf(".lock %o, .lock/info %o; want 700, 600", m, i)
	}
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		os.MkdirAll(filepath.Join(app, "v"+v), 0o755)
		if err := server.RecordVersion(ctx, h, app, v); err != nil {
			t.Fatal(err)
		}
	}
	if m := mode(".versions"); m != 0o600 {
		t.Errorf(".versions after record: %o", m)
	}
	os.Chmod(filepath.Join(app, ".versions"), 0o644)
	if _, err := server.Prune(ctx, h, app, 2, ""); err != nil {
		t.Fatal(err)
	}
	if m := mode(".versions"); m != 0o600 {
		t.Errorf(".versions after prune: %o", m)
	}
	os.Chmod(filepath.Join(app, ".versions"), 0o644)
	if err := server.RemoveVersions(ctx, h, app, []string{"1.1"}); err != nil {
		t.Fatal(err)
	}
	if m := mode(".versions"); m != 0o600 {
		t.Errorf(".versions after RemoveVersions: %o", m)
	}
	os.WriteFile(filepath.Join(app, ".audit.jsonl"), nil, 0o644)
	if _, err := remote.Must(ctx, h, server.FinishScript(app, me, server.AuditEntry{Command: "deploy"}), remote.RunOpts{}); err != nil {
		t.Fatal(err)
	}
	if m := mode(".audit.jsonl"); m != 0o600 {
		t.Errorf(".audit.jsonl after the finish: %o", m)
	}
	remote.Must(ctx, h, server.LockScript(app, me, nil), remote.RunOpts{})
	os.Chmod(filepath.Join(app, ".audit.jsonl"), 0o644)
	if err := server.BreakLock(ctx, h, app, me, server.AuditEntry{Command: "lock release"}); err != nil {
		t.Fatal(err)
	}
	if m := mode(".audit.jsonl"); m != 0o600 {
		t.Errorf(".audit.jsonl after a lock release: %o", m)
	}
}
