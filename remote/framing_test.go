package remote_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testsession"
	"github.com/raijin-deploy/raijin/remote"
)

// forgeScript prints marker lines for steps 0 and 1 with status 0, on
// stdout and stderr: one made up, and one for each marker-like word it finds
// on any process's command line or in any environment it can read (where a
// marker would leak to another user of the server).
const forgeScript = `for m in @@raijin-$(printf %032d 0) $(cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -ao '@@raijin-[0-9a-f]\{12,\}'); do
  printf 'x\n%s 0 0\n%s 1 0\n' "$m" "$m"; printf 'x\n%s 0 0\n%s 1 0\n' "$m" "$m" >&2
done; echo "${raijin_m:-no marker in sight}"`

// A step's output cannot end it early or fake the status of a step after
// it: the marker is nowhere the step can read it.
func TestBatchStepCannotForgeTheMarker(t *testing.T) {
	c := remote.NewShellConn("local", "local", &testsession.LocalShell{})
	steps := []remote.Step{
		{Line: forgeScript},
		{Line: "echo real; exit 3"},
		{Line: "echo never"},
	}
	res, err := c.Send(context.Background(), steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Code != 0 || res[1].Code != 3 || res[1].Stdout != "real\n" {
		t.Fatalf("results = %+v; want step 1 to fail with 3 after step 0's forged lines", res)
	}
	for _, out := range []string{res[0].Stdout, res[0].Stderr} {
		if !strings.Contains(out, "@@raijin-00000000000000000000000000000000 1 0") {
			t.Errorf("the forged lines are not step 0's output: %q", out)
		}
	}
	if !strings.Contains(res[0].Stdout, "no marker in sight") {
		t.Errorf("the step sees the marker's variable: %q", res[0].Stdout)
	}
}

// Steps' inputs go through pipes, not files: nothing appears in TMPDIR
// while they run, and a step that reads none or part of its input (more
// than a pipe holds), or is skipped, leaves the next step's input whole,
// inside a shared sudo too.
func TestBatchInputsNeverTouchAFile(t *testing.T) {
	fakeSudo(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	b, _ := testsession.LocalSession(nil, nil)
	ctx := context.Background()
	var got []string
	check := func(r remote.Result) error { got = append(got, r.Stdout); return nil }
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 20000)
	b.Begin()
	b.Run(ctx, "true", remote.RunOpts{Stdin: big, Check: check})
	b.Run(ctx, "head -c 3", remote.RunOpts{Stdin: big, Check: check})
	b.Run(ctx, "ls -A \"$TMPDIR\"; cat", remote.RunOpts{Stdin: []byte("secret=1\n"), Check: check})
	b.Run(ctx, "wc -c", remote.RunOpts{Stdin: big, Check: check})
	b.Run(ctx, "head -c 4", remote.RunOpts{Sudo: true, Stdin: big, Check: check})
	b.Run(ctx, "cat", remote.RunOpts{Sudo: true, Stdin: []byte("root\n"), When: "never", Check: check})
	b.Run(ctx, "ls -A \"$TMPDIR\"; cat", remote.RunOpts{Sudo: true, Stdin: []byte("root secret\n"), Check: check})
	b.Run(ctx, "cat", remote.RunOpts{Stdin: []byte("last\n"), Check: check})
	b.End()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"", "012", "secret=1\n", "340000\n", "0123", "", "root secret\n", "last\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("outputs = %q, want %q", got, want)
	}
}
