package testsession

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"sync"

	"github.com/raijin-deploy/raijin/remote"
)

// LocalShell is a remote.Executor that runs scripts with sh on this
// machine: the Session's scripts are real shell, so they are tested by
// running them.
type LocalShell struct {
	mu   sync.Mutex
	Runs []string // the scripts, in order: one a round trip
}

func (h *LocalShell) Alive(context.Context) error { return nil }

func (h *LocalShell) Exec(ctx context.Context, script string, stdin io.Reader) (remote.Result, error) {
	h.mu.Lock()
	h.Runs = append(h.Runs, script)
	h.mu.Unlock()
	c := exec.CommandContext(ctx, "sh", "-c", script)
	c.Stdin = stdin
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := remote.Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
		err = nil
	}
	return res, err
}

// LocalSession is a remote.Session whose server is this machine, through a
// LocalShell.
func LocalSession(obs remote.Observer, stats *remote.Stats) (*remote.Session, *LocalShell) {
	sh := &LocalShell{}
	return remote.NewSession(remote.NewShellConn("local", "local", sh), obs, nil, stats), sh
}
