package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/remote"
)

// fakeServerHost runs WaitHealthy's script with this machine's sh, with stand-ins
// for systemctl, curl and journalctl first on PATH. (The real ones are
// exercised by the end-to-end tests.)
type fakeServerHost struct{ dir string }

func (h fakeServerHost) Name() string { return "local" }

func (h fakeServerHost) Run(ctx context.Context, cmd string, o remote.RunOpts) (remote.Result, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(os.Environ(), "PATH="+h.dir+":"+os.Getenv("PATH"), "FAKE="+h.dir)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := remote.Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code, err = ee.ExitCode(), nil
	}
	return res, err
}

// fakeServer writes the stand-ins: systemctl is-active prints
// $FAKE/state.UNIT (default active); curl prints $FAKE/code (default 200)
// and records its arguments; journalctl prints one line naming the unit.
func fakeServer(t *testing.T) (fakeServerHost, func(name, content string)) {
	dir := t.TempDir()
	set := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	set("systemctl", `#!/bin/sh
[ "$1" = is-active ] || exit 1
s=$(cat "$FAKE/state.$2" 2>/dev/null || echo active)
echo "$s"; [ "$s" = active ]
`)
	set("curl", `#!/bin/sh
echo "$*" >> "$FAKE/curl.args"
cat "$FAKE/code" 2>/dev/null || printf 200
`)
	set("journalctl", `#!/bin/sh
echo "journal of $2: listening"
`)
	return fakeServerHost{dir}, set
}

func TestWaitHealthyHTTP(t *testing.T) {
	h, set := fakeServer(t)
	err := WaitHealthy(context.Background(), h, HealthCheck{Units: []string{"app.service"}, Path: "/up", Upstream: "localhost:8000", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("a 200 should pass: %v", err)
	}
	args, _ := os.ReadFile(filepath.Join(h.dir, "curl.args"))
	if !strings.Contains(string(args), "http://localhost:8000/up") {
		t.Errorf("curl was called with %q, want the upstream's /up", args)
	}

	set("code", "503")
	start := time.Now()
	err = WaitHealthy(context.Background(), h, HealthCheck{Units: []string{"app.service"}, Path: "/up", Upstream: "localhost:8000", Timeout: time.Second})
	var he *HealthError
	if !errors.As(err, &he) {
		t.Fatalf("a 503 should fail with a HealthError, got %v", err)
	}
	for _, want := range []string{"health check GET /up: HTTP 503, no 2xx within 1s (health_check_timeout)", "--- journalctl -u app.service", "journal of app.service"} {
		if !strings.Contains(he.Msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, he.Msg)
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("the check gave up after %s, want the 1s timeout", d)
	}
}

func TestWaitHealthyUnixSocket(t *testing.T) {
	h, _ := fakeServer(t)
	if err := WaitHealthy(context.Background(), h, HealthCheck{Units: []string{"app.service"}, Path: "/up", Upstream: "unix//run/app.sock"}); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(h.dir, "curl.args"))
	if !strings.Contains(string(args), "--unix-socket /run/app.sock") || !strings.Contains(string(args), "http://localhost/up") {
		t.Errorf("curl was called with %q, want --unix-socket /run/app.sock http://localhost/up", args)
	}
}

// A unit that exits while the health check waits fails it at once.
func TestWaitHealthyUnitExitsFailsFast(t *testing.T) {
	h, set := fakeServer(t)
	set("code", "000")
	set("state.app.service", "activating")
	start := time.Now()
	err := WaitHealthy(context.Background(), h, HealthCheck{Units: []string{"app.service"}, Path: "/up", Upstream: "localhost:8000", Timeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "health check GET /up: app.service is activating: it exited while starting") {
		t.Fatalf("want the unit named as exited, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: it waited for the timeout", d)
	}
}

// A unit that exits after the first look at it, while each try is slow (curl
// waiting on a socket systemd holds): its state is looked at by the
// clock, not every so many tries, so the check fails at the next look.
func TestWaitHealthyUnitExitsLaterFailsSoon(t *testing.T) {
	h, set := fakeServer(t)
	set("code", "000")
	set("curl", `#!/bin/sh
sleep 0.4; echo x >> "$FAKE/tries"; cat "$FAKE/code"
`)
	set("systemctl", `#!/bin/sh
[ "$1" = is-active ] || exit 1
if [ "$(wc -l < "$FAKE/tries")" -ge 2 ]; then echo activating; exit 3; fi
echo active
`)
	start := time.Now()
	err := WaitHealthy(context.Background(), h, HealthCheck{Units: []string{"app.service"}, Path: "/up", Upstream: "unix//run/app.sock", Timeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "app.service is activating: it exited while starting") {
		t.Fatalf("want the unit named as exited, got %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("took %s: the unit's state was not looked at after the first slow try", d)
	}
}

// Without a health path (and for workers), the units must stay active
// through the settle time.
func TestWaitHealthySettle(t *testing.T) {
	h, set := fakeServer(t)
	hc := HealthCheck{Units: []string{"app.service", "app-worker.service"}, Settle: 200 * time.Millisecond}
	if err := WaitHealthy(context.Background(), h, hc); err != nil {
		t.Fatalf("active units should pass: %v", err)
	}
	set("state.app-worker.service", "failed")
	err := WaitHealthy(context.Background(), h, hc)
	if err == nil || !strings.Contains(err.Error(), "health check (systemctl is-active): app-worker.service is failed 0.1s after the restart") ||
		!strings.Contains(err.Error(), "--- journalctl -u app-worker.service") {
		t.Fatalf("want the failed worker named with its journal, got %v", err)
	}
	if err := WaitHealthy(context.Background(), h, HealthCheck{}); err != nil {
		t.Errorf("no units: nothing to check, got %v", err)
	}
}

// Workers restarted with the web process settle alongside its HTTP check:
// the wait lasts as long as the longer of the two, and a worker that fails
// within its settle fails the check, named, even after the web answered.
func TestWaitHealthySettleUnitsAlongside(t *testing.T) {
	h, set := fakeServer(t)
	hc := HealthCheck{Units: []string{"app@blue.service"}, SettleUnits: []string{"app-worker.service"}, Path: "/up",
		Upstream: "localhost:8000", Timeout: 5 * time.Second, Settle: 600 * time.Millisecond}
	start := time.Now()
	if err := WaitHealthy(context.Background(), h, hc); err != nil {
		t.Fatalf("active units and a 200 should pass: %v", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("took %s: want the workers' settle (600ms), no more than that and the HTTP check", d)
	}
	// A worker that fails once the web answered (the check's settle loop).
	set("curl", `#!/bin/sh
printf 200; echo failed > "$FAKE/state.app-worker.service"
`)
	err := WaitHealthy(context.Background(), h, hc)
	if err == nil || !strings.Contains(err.Error(), "app-worker.service is failed") || !strings.Contains(err.Error(), "--- journalctl -u app-worker.service") {
		t.Fatalf("want the failed worker named with its journal, got %v", err)
	}
}
