package builtins

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// batchShell runs commands with sh on this machine: the Batcher's scripts are
// real shell, so they are tested by running them.
type batchShell struct{ runs []string }

func (h *batchShell) Name() string { return "local" }

func (h *batchShell) Run(ctx context.Context, cmd string, o RunOpts) (Result, error) {
	line := ShellCommand(cmd, o)
	h.runs = append(h.runs, line)
	c := exec.CommandContext(ctx, "sh", "-c", line)
	if o.Input != nil {
		c.Stdin = o.Input
	} else if o.Stdin != nil {
		c.Stdin = bytes.NewReader(o.Stdin)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
		err = nil
	}
	return res, err
}

func (h *batchShell) Upload(context.Context, string, string, os.FileMode) (bool, error) {
	panic("the Batcher uploads through Run")
}

func (h *batchShell) Write(context.Context, string, []byte, WriteOpts) (bool, error) {
	panic("the Batcher writes through Run")
}

func TestBatchSendsQueuedStepsInOneRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sh := &batchShell{}
	stats := &Stats{}
	b := NewBatcher(sh, nil, &Redactor{}, stats)
	ctx := context.Background()
	b.Begin()
	b.Write(ctx, filepath.Join(dir, "a.service"), []byte("A\n"), WriteOpts{Flag: "units"})
	b.Write(ctx, filepath.Join(dir, "b.env"), []byte("B=1\n"), WriteOpts{Mode: 0o600})
	b.Run(ctx, "echo reload >> "+Quote(filepath.Join(dir, "log")), RunOpts{When: "units"})
	b.Run(ctx, "echo restart >> "+Quote(filepath.Join(dir, "log")), RunOpts{})
	b.End()
	if len(sh.runs) != 0 {
		t.Fatalf("queued steps were sent before the flush: %q", sh.runs)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sh.runs) != 1 || stats.Steps.Load() != 4 {
		t.Fatalf("want 4 steps in 1 round trip, got %d round trips, %d steps", len(sh.runs), stats.Steps.Load())
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
	b2 := NewBatcher(sh, nil, &Redactor{}, nil)
	b2.Begin()
	b2.Write(ctx, filepath.Join(dir, "a.service"), []byte("A\n"), WriteOpts{Flag: "units"})
	b2.Run(ctx, "echo reload >> "+Quote(filepath.Join(dir, "log")), RunOpts{When: "units"})
	b2.End()
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "log")); string(got) != "reload\nrestart\n" {
		t.Errorf("log = %q: an unchanged unit must not trigger the conditional step", got)
	}
	// Not queued, flag unset: nothing is sent at all.
	n := len(sh.runs)
	if _, err := b2.Run(ctx, "false", RunOpts{When: "units"}); err != nil || len(sh.runs) != n {
		t.Errorf("a conditional step with its flag unset was sent: %v", err)
	}
}

func TestBatchStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	sh := &batchShell{}
	b := NewBatcher(sh, nil, &Redactor{}, nil)
	ctx := context.Background()
	b.Label("install")
	b.Begin()
	b.Run(ctx, "echo one > "+Quote(filepath.Join(dir, "one")), RunOpts{})
	b.Run(ctx, "echo oops >&2; exit 7", RunOpts{})
	b.Run(ctx, "echo three > "+Quote(filepath.Join(dir, "three")), RunOpts{})
	b.End()
	b.Label("release")
	_, err := b.Run(ctx, "echo four", RunOpts{})
	var re *RemoteError
	if !errors.As(err, &re) || re.Res.Code != 7 || re.Cmd != "echo oops >&2; exit 7" || strings.TrimSpace(re.Res.Stderr) != "oops" {
		t.Fatalf("want the failing step's own error, got %#v", err)
	}
	if !strings.Contains(err.Error(), "deferred by phase install") {
		t.Errorf("a step queued by another phase should name it: %v", err)
	}
	if _, e := os.Stat(filepath.Join(dir, "one")); e != nil {
		t.Errorf("the step before the failure did not run")
	}
	if _, e := os.Stat(filepath.Join(dir, "three")); e == nil {
		t.Errorf("a step after the failure ran")
	}
	if len(sh.runs) != 1 {
		t.Errorf("want one round trip, got %d", len(sh.runs))
	}
}

func TestBatchStdinAndOutputsPerStep(t *testing.T) {
	sh := &batchShell{}
	b := NewBatcher(sh, nil, &Redactor{}, nil)
	ctx := context.Background()
	var got []string
	check := func(r Result) error { got = append(got, r.Stdout); return nil }
	b.Begin()
	b.Run(ctx, "tr a-z A-Z", RunOpts{Stdin: []byte("first"), Check: check})
	b.Run(ctx, "printf no-newline", RunOpts{Check: check})
	b.Run(ctx, "head -c 2", RunOpts{Stdin: []byte("second-not-all-read"), Check: check})
	b.Run(ctx, "cat", RunOpts{Stdin: []byte("third\n"), Check: check})
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
	remote := filepath.Join(dir, "srv", "v1", "app")
	sh := &batchShell{}
	stats := &Stats{}
	b := NewBatcher(sh, nil, &Redactor{}, stats)
	ctx := context.Background()
	sent, err := b.Upload(ctx, local, remote, 0o755)
	if err != nil || !sent {
		t.Fatalf("first upload: sent=%v err=%v", sent, err)
	}
	data, _ := os.ReadFile(remote)
	st, _ := os.Stat(remote)
	if len(data) != 100000 || st.Mode().Perm() != 0o755 {
		t.Fatalf("remote file: %d bytes, mode %v", len(data), st.Mode())
	}
	n := len(sh.runs)
	sent, err = b.Upload(ctx, local, remote, 0o755)
	if err != nil || sent || len(sh.runs) != n+1 {
		t.Fatalf("the same file again: sent=%v err=%v, %d round trips (want 1 check)", sent, err, len(sh.runs)-n)
	}
	// Queued: the check rides with the other steps, the bytes follow.
	os.WriteFile(local, []byte("new content"), 0o644)
	b.Begin()
	b.Upload(ctx, local, remote, 0o755)
	b.Write(ctx, filepath.Join(dir, "srv", "v1", ".env"), []byte("A=1\n"), WriteOpts{})
	b.End()
	n = len(sh.runs)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(remote); string(data) != "new content" || len(sh.runs) != n+2 {
		t.Errorf("queued upload: %q after %d round trips (want 2)", data, len(sh.runs)-n)
	}
}

func TestBatchFinishRunsFinalOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	sh := &batchShell{}
	b := NewBatcher(sh, nil, &Redactor{}, nil)
	ctx := context.Background()
	final := "touch " + Quote(filepath.Join(dir, "unlocked"))
	b.Begin()
	b.Run(ctx, "true", RunOpts{})
	b.End()
	if ok, err := b.Finish(ctx, final); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unlocked")); err != nil {
		t.Errorf("final step did not run")
	}
	os.Remove(filepath.Join(dir, "unlocked"))
	b.Begin()
	b.Run(ctx, "exit 1", RunOpts{})
	b.End()
	if ok, err := b.Finish(ctx, final); ok || err == nil {
		t.Fatalf("finish after a failing step: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unlocked")); err == nil {
		t.Errorf("final step ran after a failure")
	}
}

func TestPruneScriptMatchesPrunePlan(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1.0", "1.1", "1.2", "1.3", "2.0", "stray"} {
		os.MkdirAll(filepath.Join(dir, "v"+v), 0o755)
	}
	os.WriteFile(filepath.Join(dir, ".versions"), []byte("1.3\n1.2\n1.1\n1.0\n"), 0o644)
	removed, err := Prune(context.Background(), &batchShell{}, dir, 2, "2.0")
	if err != nil {
		t.Fatal(err)
	}
	want := PrunePlan([]string{"1.3", "1.2", "1.1", "1.0"}, []string{"1.0", "1.1", "1.2", "1.3", "2.0", "stray"}, 2, "1.3", "2.0")
	if strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %q, PrunePlan says %q", removed, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "v*"))
	vers, _ := os.ReadFile(filepath.Join(dir, ".versions"))
	if len(left) != 3 || string(vers) != "1.3\n1.2\n" {
		t.Errorf("left %q, .versions %q", left, vers)
	}
}

// The worker runs every command of a connection in one session: answers,
// exit codes and stdin as with a session per command.
func TestWorkerOneSessionForManyCommands(t *testing.T) {
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Fatalf("%s is needed: the login shell of most deploy users", shell)
			}
			testWorker(t, shell)
		})
	}
}

func testWorker(t *testing.T, shell string) {
	f := newFixture(t)
	f.srv.Shell = shell
	c := dial(t, f.target())
	c.Worker = true
	ctx := context.Background()
	cases := []struct {
		cmd   string
		stdin string
		want  Result
	}{
		{"echo hi", "", Result{Stdout: "hi\n"}},
		{"echo err >&2; exit 3", "", Result{Stderr: "err\n", Code: 3}},
		{"tr a-z A-Z", "binary\x00and text\n", Result{Stdout: "BINARY\x00AND TEXT\n"}},
		{"head -c 2; echo", "abcdef", Result{Stdout: "ab\n"}},
		{"cat", "", Result{}},
		{"printf 'no newline'", "", Result{Stdout: "no newline"}},
		{"echo out; false", "", Result{Stdout: "out\n", Code: 1}},
		{"printf '\\n\\n'; printf 'e\\n\\n' >&2; exit 2", "", Result{Stdout: "\n\n", Stderr: "e\n\n", Code: 2}},
	}
	for _, tc := range cases {
		var in io.Reader
		if tc.stdin != "" {
			in = strings.NewReader(tc.stdin)
			in = Sized(in, int64(len(tc.stdin)))
		}
		res, err := c.Exec(ctx, tc.cmd, in)
		if err != nil || res != tc.want {
			t.Errorf("%s = %+v, %v; want %+v", tc.cmd, res, err, tc.want)
		}
	}
	if n := len(f.srv.Commands()); n != 1 {
		t.Errorf("the server saw %d sessions, want 1 (the worker)", n)
	}
	// A cancelled command is killed with its process group; the next command
	// gets a new worker.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(cctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled command: %v", err)
	}
	if res, err := c.Exec(ctx, "echo again", nil); err != nil || res.Stdout != "again\n" {
		t.Errorf("after a cancel: %+v, %v", res, err)
	}
}

// fakeSudo puts a sudo on PATH that logs each call and runs its command
// (dropping -n), so root steps can be tested as this user.
func fakeSudo(t *testing.T) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho call >> " + Quote(log) + "\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n"
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
	sh := &batchShell{}
	b := NewBatcher(sh, nil, &Redactor{}, &Stats{})
	ctx := context.Background()
	b.Begin()
	b.Write(ctx, filepath.Join(dir, "u.service"), []byte("U\n"), WriteOpts{Sudo: true, Flag: "units"})
	b.Run(ctx, "echo reload >> "+Quote(out), RunOpts{Sudo: true, When: "units"})
	b.Run(ctx, "cat >> "+Quote(out), RunOpts{Sudo: true, Stdin: []byte("from stdin\n")})
	b.Run(ctx, "echo user >> "+Quote(out), RunOpts{})
	b.Run(ctx, "echo alone >> "+Quote(out), RunOpts{Sudo: true})
	b.Run(ctx, `echo "args:$#" >> `+Quote(out), RunOpts{Sudo: true})
	b.End()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sudoCalls(log); n != 2 {
		t.Errorf("%d sudo calls, want 2 (one for each run of root steps)", n)
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
	b.Write(ctx, filepath.Join(dir, "v.service"), []byte("V\n"), WriteOpts{Sudo: true, Flag: "vunits"})
	b.Run(ctx, "true", RunOpts{Sudo: true})
	b.Run(ctx, "echo after-flag >> "+Quote(out), RunOpts{When: "vunits"})
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
	b.Run(ctx, "echo one >> "+Quote(out), RunOpts{Sudo: true})
	b.Run(ctx, "echo broken >&2; exit 5", RunOpts{Sudo: true})
	b.Run(ctx, "echo never >> "+Quote(out), RunOpts{Sudo: true})
	b.End()
	err := b.Flush(ctx)
	var re *RemoteError
	if !errors.As(err, &re) || re.Res.Code != 5 || !strings.Contains(re.Cmd, "exit 5") || !strings.Contains(re.Res.Stderr, "broken") {
		t.Fatalf("want the failing step's error, got %v", err)
	}
	if got, _ := os.ReadFile(out); strings.Contains(string(got), "never") || !strings.HasSuffix(string(got), "one\n") {
		t.Errorf("log = %q: the step before the failure runs, the one after does not", got)
	}
}
