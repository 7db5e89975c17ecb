package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/remote"
)

// cannedHost answers every command with the same output.
type cannedHost struct {
	out  string
	cmds []string
}

func (c *cannedHost) Name() string { return "prod" }
func (c *cannedHost) Run(_ context.Context, cmd string, _ remote.RunOpts) (remote.Result, error) {
	c.cmds = append(c.cmds, cmd)
	return remote.Result{Stdout: c.out}, nil
}
func TestReadReleases(t *testing.T) {
	line := func(cmd, from, to, result string) string {
		data, _ := json.Marshal(AuditEntry{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), App: "shop", Command: cmd, User: "ann", Machine: "box", From: from, To: to, Result: result})
		return string(data)
	}
	out := strings.Join([]string{"/home/deploy",
		"@@versions", "1.1.0", "1.2.0", "1.0.0",
		"@@disk", "v1.0.0", "v1.1.0", "v1.2.0", "v0.9.0",
		"@@lock",
		"@@audit", line("deploy", "", "1.0.0", "ok"), line("deploy", "1.0.0", "1.1.0", "ok"), line("deploy", "1.1.0", "1.2.0", "ok"),
		"{cut short", line("rollback", "1.2.0", "1.1.0", "ok"), line("deploy", "1.1.0", "2.0.0", "failed"), ""}, "\n")
	h := &cannedHost{out: out}
	rs, err := ReadReleases(context.Background(), h, ".local/share/raijin/shop")
	if err != nil {
		t.Fatal(err)
	}
	if rs.AppDir != "/home/deploy/.local/share/raijin/shop" || !rs.Exists || rs.Lock != nil || len(rs.Audit) != 5 {
		t.Fatalf("got %+v", rs)
	}
	var got []string
	for _, r := range rs.Releases {
		s := r.Version
		if r.Current {
			s += "*"
		}
		if !r.Recorded {
			s += " unrecorded"
		}
		if r.Last != nil {
			s += " " + r.Last.Command
		}
		got = append(got, s)
	}
	if strings.Join(got, ", ") != "1.1.0* rollback, 1.2.0 deploy, 1.0.0 deploy, 0.9.0 unrecorded" {
		t.Errorf("releases: %s", strings.Join(got, ", "))
	}
	if !strings.Contains(h.cmds[0], "cd '.local/share/raijin/shop'") && !strings.Contains(h.cmds[0], "cd .local/share/raijin/shop") {
		t.Errorf("the app dir is not quoted into the command: %s", h.cmds[0])
	}

	absent, err := ReadReleases(context.Background(), &cannedHost{out: "/home/deploy\n"}, "/srv/apps/shop")
	if err != nil || absent.Exists || absent.AppDir != "/srv/apps/shop" {
		t.Errorf("an app that is not there: %+v, %v", absent, err)
	}
}

// The finish script, run by a real shell: the audit line lands as it is
// (quotes, $( ) and backquotes included), in the app directory or, once the
// app directory is gone, in the apps directory; the lock goes only if it is
// still this holder's.
func TestFinishScript(t *testing.T) {
	apps := t.TempDir()
	app := apps + "/shop"
	e := AuditEntry{App: "shop", Command: "deploy", User: "o'brien", Result: "failed", Error: "`x` exited 1: $(touch pwned)"}
	want, _ := json.Marshal(e)
	run := func(script string) {
		t.Helper()
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(app+"/.lock", 0o755))
	must(os.WriteFile(app+"/.lock/info", []byte(`{"token":"other"}`), 0o644))
	run(FinishScript(app, LockInfo{Token: "mine"}, e))
	got, err := os.ReadFile(app + "/.audit.jsonl")
	must(err)
	if string(got) != string(want)+"\n" {
		t.Errorf("audit log = %q, want %q", got, want)
	}
	if _, err := os.Stat(app + "/.lock"); err != nil {
		t.Errorf("another holder's lock was removed")
	}
	must(os.WriteFile(app+"/.lock/info", []byte(`{"token":"mine"}`), 0o644))
	run(FinishScript(app, LockInfo{Token: "mine"}, e))
	if _, err := os.Stat(app + "/.lock"); err == nil {
		t.Errorf("the holder's own lock was not released")
	}
	must(os.RemoveAll(app))
	run(FinishScript(app, LockInfo{Token: "mine"}, e))
	if got, err := os.ReadFile(apps + "/.audit.jsonl"); err != nil || string(got) != string(want)+"\n" {
		t.Errorf("with the app dir gone, the apps dir's audit log = %q, %v", got, err)
	}
	if _, err := os.Stat("pwned"); err == nil {
		t.Errorf("the error text ran as a command")
	}
}

// shellHost runs commands with the local sh, in place of a server.
type shellHost struct{ cannedHost }

func (s *shellHost) Run(_ context.Context, cmd string, _ remote.RunOpts) (remote.Result, error) {
	out, err := exec.Command("sh", "-c", cmd).Output()
	res := remote.Result{Stdout: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	}
	return res, nil
}

// lock release: the lock read by LockStatus is removed and recorded; a lock
// that changed hands in between is left alone.
func TestBreakLock(t *testing.T) {
	app := t.TempDir() + "/shop"
	if err := os.MkdirAll(app+"/.lock", 0o755); err != nil {
		t.Fatal(err)
	}
	info := LockInfo{User: "ann", Machine: "box", PID: 7, Command: "deploy", Token: "t1"}
	data, _ := json.Marshal(info)
	os.WriteFile(app+"/.lock/info", data, 0o644)
	h := &shellHost{}
	held, got, dir, err := LockStatus(context.Background(), h, app)
	if err != nil || !held || got.User != "ann" || dir != app {
		t.Fatalf("LockStatus = %v %+v %q %v", held, got, dir, err)
	}
	os.WriteFile(app+"/.lock/info", []byte(`{"token":"t2"}`), 0o644)
	if err := BreakLock(context.Background(), h, app, got, AuditEntry{Command: "lock release"}); err == nil {
		t.Errorf("a lock that changed hands was released")
	}
	os.WriteFile(app+"/.lock/info", data, 0o644)
	if err := BreakLock(context.Background(), h, app, got, AuditEntry{Command: "lock release", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(app + "/.lock"); err == nil {
		t.Errorf("the lock is still there")
	}
	if a, _ := os.ReadFile(app + "/.audit.jsonl"); len(ParseAudit(string(a))) != 1 {
		t.Errorf("audit log after lock release: %q", a)
	}
	if held, _, _, _ := LockStatus(context.Background(), h, app); held {
		t.Errorf("LockStatus says held after the release")
	}
}

func TestEnvVersion(t *testing.T) {
	cases := []struct {
		current string
		known   []string
		want    string
	}{
		{"1.4.0", []string{"1.4.0", "1.3.9"}, "1.4.0+env1"},
		{"1.4.0+env1", []string{"1.4.0+env1", "1.4.0"}, "1.4.0+env2"},
		// A rollback to 1.4.0 after +env2: the next is +env3, not +env1 again.
		{"1.4.0", []string{"1.4.0", "1.4.0+env2", "1.4.0+env1"}, "1.4.0+env3"},
		{"1.4.0", []string{"1.4.0", "1.4.01+env7", "2+env9"}, "1.4.0+env1"},
	}
	for _, c := range cases {
		got, err := EnvVersion(c.current, c.known)
		if err != nil || got != c.want {
			t.Errorf("EnvVersion(%q, %q) = %q, %v; want %q", c.current, c.known, got, err, c.want)
		}
	}
}

// The audit log keeps its last AuditKeep lines: past AuditTrimAt it is cut
// back, the newest line kept, the file still the deploy user's alone.
func TestFinishScriptTrimsTheAuditLog(t *testing.T) {
	app := t.TempDir() + "/shop"
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	var old strings.Builder
	for i := 0; i < AuditTrimAt; i++ {
		fmt.Fprintf(&old, "{\"command\":\"old %d\"}\n", i)
	}
	if err := os.WriteFile(app+"/.audit.jsonl", []byte(old.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		if out, err := exec.Command("sh", "-c", FinishScript(app, LockInfo{Token: "mine"}, AuditEntry{Command: "deploy"})).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	run()
	data, err := os.ReadFile(app + "/.audit.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := ParseAudit(string(data))
	if len(lines) != AuditKeep || lines[len(lines)-1].Command != "deploy" || lines[0].Command != fmt.Sprintf("old %d", AuditTrimAt+1-AuditKeep) {
		t.Fatalf("after the trim: %d lines, first %q, last %q", len(lines), lines[0].Command, lines[len(lines)-1].Command)
	}
	run()
	if data, _ := os.ReadFile(app + "/.audit.jsonl"); len(ParseAudit(string(data))) != AuditKeep+1 {
		t.Errorf("a log under the limit was trimmed")
	}
	if st, err := os.Stat(app + "/.audit.jsonl"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode after the trim: %v, %v", st.Mode(), err)
	}
	if _, err := os.Stat(app + "/.audit.jsonl.raijin-tmp"); err == nil {
		t.Errorf("the temporary file was left")
	}
}

// The lock's holder, at the end of its run, removes what a killed run left
// of raijin's temporaries in the app directory and the version
// directories (files, links, directories), and nothing else; a run that
// no longer holds the lock removes nothing.
func TestFinishScriptTidiesTemporaries(t *testing.T) {
	// The app directory reached through a link, as when it is moved to
	// another disk.
	base := t.TempDir()
	if err := os.Mkdir(base+"/real app", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base+"/real app", base+"/my app"); err != nil {
		t.Fatal(err)
	}
	app := base + "/my app"
	left := []string{"v1/shop.raijin-4242", "v1/shop.raijin-4242.p", "v1/shop.raijin-4242.h", "v1/shop.raijin-4242.s",
		"v2/.env.raijin-77", ".appenv.raijin-12", ".env.raijin-tmp", ".versions.tmp", "v2/.units/x.service.raijin-9",
		".units-current/x.service.raijin-10"}
	keep := []string{"v1/shop", "v1/.env", "v2/shop", ".versions", ".env", "v1/notes.raijin", "v1/shop.raijin-x",
		"v1/shop.raijin-2.tar.gz", "v1/.venv/lib/a.raijin-tmp", "v2/.units/x.service"}
	for _, f := range append(append([]string{}, left...), keep...) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(app, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(app, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link being replaced, and env push's new version directory.
	if err := os.Symlink("v1", filepath.Join(app, ".slot-blue.raijin-tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(app, ".v1+env1.raijin-tmp/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A version directory that is a link (only the deploy user could make
	// one) is not followed.
	outside := t.TempDir()
	if err := os.WriteFile(outside+"/x.raijin-5", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(app, "v9")); err != nil {
		t.Fatal(err)
	}
	gone := append(left, ".slot-blue.raijin-tmp", ".v1+env1.raijin-tmp")
	exists := func(f string) bool { _, err := os.Lstat(filepath.Join(app, f)); return err == nil }
	finish := func(token string) {
		t.Helper()
		if err := os.MkdirAll(app+"/.lock", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(app+"/.lock/info", []byte(`{"token":"`+token+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", "-c", FinishScript(app, LockInfo{Token: "mine"}, AuditEntry{Command: "deploy"})).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	finish("other")
	for _, f := range gone {
		if !exists(f) {
			t.Errorf("%s was removed by a run that does not hold the lock", f)
		}
	}
	finish("mine")
	for _, f := range gone {
		if exists(f) {
			t.Errorf("%s was left", f)
		}
	}
	for _, f := range keep {
		if !exists(f) {
			t.Errorf("%s was removed", f)
		}
	}
	if _, err := os.Stat(outside + "/x.raijin-5"); err != nil {
		t.Errorf("a file outside the app directory, behind a linked v9, was removed")
	}
}
