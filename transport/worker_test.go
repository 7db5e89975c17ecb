package transport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/remote"
)

// A command's output cannot end it early or fake its exit status, even
// with every marker-like word that any process's command line or readable
// environment holds.
func TestWorkerCommandCannotForgeTheMarker(t *testing.T) {
	f := testkit.NewFixture(t)
	f.Srv.Shell = "sh"
	c := dial(t, target(f))
	c.Worker = true
	ctx := context.Background()
	if _, err := c.Exec(ctx, "true", nil); err != nil { // the worker is up
		t.Fatal(err)
	}
	forge := `for m in @@raijin-$(printf %024d 0) $(cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -ao '@@raijin-[0-9a-f]\{12,\}'); do
  printf '\n%s 0\n' "$m"; printf '\n%s 0\n' "$m" >&2
done; echo "after ${raijin_m:-no marker in sight}"; cat; exit 7`
	res, err := c.Exec(ctx, forge, remote.Sized(strings.NewReader("input\n"), 6))
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 7 || !strings.HasSuffix(res.Stdout, "\nafter no marker in sight\ninput\n") || !strings.Contains(res.Stderr, "@@raijin-") {
		t.Fatalf("forged output = %+v; want all of it with status 7", res)
	}
	if res, err := c.Exec(ctx, "echo next", nil); err != nil || res.Stdout != "next\n" || res.Code != 0 {
		t.Errorf("the command after: %+v, %v", res, err)
	}
}

// A cancelled command that has stdin is killed with the head that feeds it,
// and the next command gets a new worker.
func TestWorkerCancelWithStdin(t *testing.T) {
	f := testkit.NewFixture(t)
	f.Srv.Shell = "sh"
	c := dial(t, target(f))
	c.Worker = true
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Exec(ctx, "head -c 1 >/dev/null; sleep 30", remote.Sized(strings.NewReader("abc"), 3)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled command: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cancel took %v", d)
	}
	res, err := c.Exec(context.Background(), "cat", remote.Sized(strings.NewReader("next\n"), 5))
	if err != nil || res.Stdout != "next\n" {
		t.Errorf("after a cancel: %+v, %v", res, err)
	}
}

// A worker opened with the connection (StartWorker) whose session ended
// before its first command (killed on the server while the build ran) is
// replaced: the first command runs, not "the connection dropped".
func TestWorkerStartedEarlyAndGoneIsReplaced(t *testing.T) {
	f := testkit.NewFixture(t)
	f.Srv.Shell = "sh"
	c := dial(t, target(f))
	c.Worker = true
	c.StartWorker()
	if c.wk == nil {
		t.Fatal("StartWorker opened no worker")
	}
	c.wk.ch.Close() // its session ends
	for deadline := time.Now().Add(5 * time.Second); !c.wk.gone(); {
		if time.Now().After(deadline) {
			t.Fatal("the closed worker's session did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err := c.Exec(context.Background(), "echo first", nil)
	if err != nil || res.Stdout != "first\n" || res.Code != 0 {
		t.Fatalf("the first command after the early worker ended: %+v, %v", res, err)
	}
}
