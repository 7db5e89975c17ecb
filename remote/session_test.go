package remote_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testsession"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

func TestBatchSendsQueuedStepsInOneRoundTrip(t *testing.T) {
	dir := t.TempDir()
	stats := &remote.Stats{}
	b, sh := testsession.LocalSession(nil, stats)
	ctx := context.Background()
	b.Begin()
	b.Write(ctx, filepath.Join(dir, "a.service"), []byte("A\n"), remote.WriteOpts{Flag: "units"})
	b.Write(ctx, filepath.Join(dir, "b.env"), []byte("B=1\n"), remote.WriteOpts{Mode: 0o600})
	b.Run(ctx, "echo reload >> "+shell.Quote(filepath.Join(dir, "log")), remote.RunOpts{When: "units"})
	b.Run(ctx, "echo restart >> "+shell.Quote(filepath.Join(dir, "log")), remote.RunOpts{})
	b.End()
	if len(sh.Runs) != 0 {
		t.Fatalf("queued steps were sent before the flush: %q", sh.Runs)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sh.Runs) != 1 || stats.Steps.Load() != 4 {
		t.Fatalf("want 4 steps in 1 round trip, got %d round trips, %d steps", len(sh.Runs), stats.Steps.Load())
	}
	got, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(got) != "reload\nrestart\n" {
		t.Errorf("log = %q: the conditional step should run after a changed unit", got)
	}
	if a, _ := os.ReadFile(filepath.Join(dir, "a.service")); string(a) != "A\n" {
		t.Errorf("a.service = %q", a)
	}
	if st, _ := os.Stat(filepath.Join(dir, "b.env")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("b.env mode: %v", st)
	}
	if !b.Flag("units") {
		t.Errorf("the units flag is not known after the flush")
	}

	// Same content again: no change, so the conditional step is skipped.
	b2, sh := testsession.LocalSession(nil, nil)
	b2.Begin()
	b2.Write(ctx, filepath.Join(dir, "a.service"), []byte("A\n"), remote.WriteOpts{Flag: "units"})
	b2.Run(ctx, "echo reload >> "+shell.Quote(filepath.Join(dir, "log")), remote.RunOpts{When: "units"})
	b2.End()
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "log")); string(got) != "reload\nrestart\n" {
		t.Errorf("log = %q: an unchanged unit must not trigger the conditional step", got)
	}
	// Not queued, flag unset: nothing is sent at all.
	n := len(sh.Runs)
	if _, err := b2.Run(ctx, "false", remote.RunOpts{When: "units"}); err != nil || len(sh.Runs) != n {
		t.Errorf("a conditional step with its flag unset was sent: %v", err)
	}
}

func TestBatchStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	b, sh := testsession.LocalSession(nil, nil)
	ctx := context.Background()
	b.Label("install")
	b.Begin()
	b.Run(ctx, "echo one > "+shell.Quote(filepath.Join(dir, "one")), remote.RunOpts{})
	b.Run(ctx, "echo oops >&2; exit 7", remote.RunOpts{})
	b.Run(ctx, "echo three > "+shell.Quote(filepath.Join(dir, "three")), remote.RunOpts{})
	b.End()
	b.Label("release")
	_, err := b.Run(ctx, "echo four", remote.RunOpts{})
	var re *remote.RemoteError
	if !errors.As(err, &re) || re.Res.Code != 7 || re.Cmd != "echo oops >&2; exit 7" || strings.TrimSpace(re.Res.Stderr) != "oops" {
		t.Fatalf("want the failing step's own error, got %#v", err)
	}
	var qe *remote.QueuedError
	if !errors.As(err, &qe) || qe.Label != "install" || !strings.Contains(err.Error(), "deferred failed when it was sent later") {
		t.Errorf("a step queued by another phase should name it: %v", err)
	}
	if _, e := os.Stat(filepath.Join(dir, "one")); e != nil {
		t.Errorf("the step before the failure did not run")
	}
	if _, e := os.Stat(filepath.Join(dir, "three")); e == nil {
		t.Errorf("a step after the failure ran")
	}
	if len(sh.Runs) != 1 {
		t.Errorf("want one round trip, got %d", len(sh.Runs))
	}
}

func TestBatchStdinAndOutputsPerStep(t *testing.T) {
	b, _ := testsession.LocalSession(nil, nil)
	ctx := context.Background()
	var got []string
	check := func(r remote.Result) error { got = append(got, r.Stdout); return nil }
	b.Begin()
	b.Run(ctx, "tr a-z A-Z", remote.RunOpts{Stdin: []byte("first"), Check: check})
	b.Run(ctx, "printf no-newline", remote.RunOpts{Check: check})
	b.Run(ctx, "head -c 2", remote.RunOpts{Stdin: []byte("second-not-all-read"), Check: check})
	b.Run(ctx, "cat", remote.RunOpts{Stdin: []byte("third\n"), Check: check})
	b.End()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"FIRST", "no-newline", "se", "third\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("outputs = %q, want %q", got, want)
	}
}

func TestBatchUploadSkipsSameFile(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "app.bin")
	os.WriteFile(local, bytes.Repeat([]byte("x"), 100000), 0o644)
	dst := filepath.Join(dir, "srv", "v1", "app")
	stats := &remote.Stats{}
	b, sh := testsession.LocalSession(nil, stats)
	ctx := context.Background()
	sent, err := b.Upload(ctx, local, dst, 0o755)
	if err != nil || !sent {
		t.Fatalf("first upload: sent=%v err=%v", sent, err)
	}
	data, _ := os.ReadFile(dst)
	st, _ := os.Stat(dst)
	if len(data) != 100000 || st.Mode().Perm() != 0o755 {
		t.Fatalf("dst file: %d bytes, mode %v", len(data), st.Mode())
	}
	n := len(sh.Runs)
	sent, err = b.Upload(ctx, local, dst, 0o755)
	if err != nil || sent || len(sh.Runs) != n+1 {
		t.Fatalf("the same file again: sent=%v err=%v, %d round trips (want 1 check)", sent, err, len(sh.Runs)-n)
	}
	// Queued: the check rides with the other steps, the bytes follow.
	os.WriteFile(local, []byte("new content"), 0o644)
	b.Begin()
	b.Upload(ctx, local, dst, 0o755)
	b.Write(ctx, filepath.Join(dir, "srv", "v1", ".env"), []byte("A=1\n"), remote.WriteOpts{})
	b.End()
	n = len(sh.Runs)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "new content" || len(sh.Runs) != n+2 {
		t.Errorf("queued upload: %q after %d round trips (want 2)", data, len(sh.Runs)-n)
	}
}

func TestBatchFinishRunsFinalOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	b, _ := testsession.LocalSession(nil, nil)
	ctx := context.Background()
	final := "touch " + shell.Quote(filepath.Join(dir, "unlocked"))
	b.Begin()
	b.Run(ctx, "true", remote.RunOpts{})
	b.End()
	if ok, err := b.Finish(ctx, final); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unlocked")); err != nil {
		t.Errorf("final step did not run")
	}
	os.Remove(filepath.Join(dir, "unlocked"))
	b.Begin()
	b.Run(ctx, "exit 1", remote.RunOpts{})
	b.End()
	if ok, err := b.Finish(ctx, final); ok || err == nil {
		t.Fatalf("finish after a failing step: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unlocked")); err == nil {
		t.Errorf("final step ran after a failure")
	}
}

// fakeSudo puts a sudo on PATH that logs each call and runs its command
// (dropping -n), so root steps can be tested as this user.
func fakeSudo(t *testing.T) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho call >> " + shell.Quote(log) + "\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

func sudoCalls(log string) int {
	b, _ := os.ReadFile(log)
	return strings.Count(string(b), "call\n")
}

// Root steps in a row share one sudo, with their own stdin, flags and
// results, and the first failure stops the rest.
func TestBatchRootStepsShareOneSudo(t *testing.T) {
	log := fakeSudo(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "log")
	obs := &recObserver{}
	b, _ := testsession.LocalSession(obs, &remote.Stats{})
	ctx := context.Background()
	b.Begin()
	b.Write(ctx, filepath.Join(dir, "u.service"), []byte("U\n"), remote.WriteOpts{Sudo: true, Flag: "units"})
	b.Run(ctx, "echo reload >> "+shell.Quote(out), remote.RunOpts{Sudo: true, When: "units"})
	b.Run(ctx, "cat >> "+shell.Quote(out), remote.RunOpts{Sudo: true, Stdin: []byte("from stdin\n")})
	b.Run(ctx, "echo user >> "+shell.Quote(out), remote.RunOpts{})
	b.Run(ctx, "echo alone >> "+shell.Quote(out), remote.RunOpts{Sudo: true})
	b.Run(ctx, `echo "args:$#" >> `+shell.Quote(out), remote.RunOpts{Sudo: true})
	b.End()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sudoCalls(log); n != 2 {
		t.Errorf("%d sudo calls, want 2 (one for each run of root steps)", n)
	}
	// -v shows the shared sudo as it is sent: one line for the three root
	// steps, then the user's step, then the two root steps.
	if len(obs.commands) != 3 || !strings.HasPrefix(obs.commands[0], "sudo -n sh -c ") ||
		!strings.HasSuffix(obs.commands[0], "# one sudo for 3 steps") || !strings.HasSuffix(obs.commands[2], "# one sudo for 2 steps") {
		t.Errorf("-v showed:\n%s", strings.Join(obs.commands, "\n"))
	}
	got, _ := os.ReadFile(out)
	if string(got) != "reload\nfrom stdin\nuser\nalone\nargs:0\n" {
		t.Errorf("log = %q", got)
	}
	if !b.Flag("units") {
		t.Error("the unit write inside the shared sudo did not report its change")
	}

	// A flag set inside and tested after: no shared sudo across it.
	os.Remove(log)
	b.Begin()
	b.Write(ctx, filepath.Join(dir, "v.service"), []byte("V\n"), remote.WriteOpts{Sudo: true, Flag: "vunits"})
	b.Run(ctx, "true", remote.RunOpts{Sudo: true})
	b.Run(ctx, "echo after-flag >> "+shell.Quote(out), remote.RunOpts{When: "vunits"})
	b.End()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sudoCalls(log); n != 2 {
		t.Errorf("%d sudo calls, want 2 (a flag tested after the root steps keeps them apart)", n)
	}
	if got, _ := os.ReadFile(out); !strings.HasSuffix(string(got), "after-flag\n") {
		t.Errorf("log = %q: the step testing the flag did not run", got)
	}

	// A failing root step stops the group and is named.
	b.Begin()
	b.Run(ctx, "echo one >> "+shell.Quote(out), remote.RunOpts{Sudo: true})
	b.Run(ctx, "echo broken >&2; exit 5", remote.RunOpts{Sudo: true})
	b.Run(ctx, "echo never >> "+shell.Quote(out), remote.RunOpts{Sudo: true})
	b.End()
	err := b.Flush(ctx)
	var re *remote.RemoteError
	if !errors.As(err, &re) || re.Res.Code != 5 || !strings.Contains(re.Cmd, "exit 5") || !strings.Contains(re.Res.Stderr, "broken") {
		t.Fatalf("want the failing step's error, got %v", err)
	}
	if got, _ := os.ReadFile(out); strings.Contains(string(got), "never") || !strings.HasSuffix(string(got), "one\n") {
		t.Errorf("log = %q: the step before the failure runs, the one after does not", got)
	}
}
