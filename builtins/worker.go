package builtins

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// workerScript runs on the server in one long-lived SSH session and runs
// the commands of a whole raijin command: each request is a script and its
// stdin, each preceded by its length in bytes on a line of its own; each
// answer is "CODE OUTLEN ERRLEN" on a line, then the output and error bytes.
// A command costs one round trip this way, where a new session costs three
// (open the channel, start the command, get its result).
//
// Each command runs in a process group of its own (set -m), so that a
// cancelled command is killed with everything it started: raijin sends TERM
// to the worker, which kills the group and exits.
const workerScript = `set -m 2>/dev/null; d=$(mktemp -d) || exit 1; pid=
trap 'rm -rf "$d"' EXIT
trap '[ -n "$pid" ] && kill -KILL -- -$pid 2>/dev/null; exit 143' TERM HUP INT
while IFS= read -r n; do
  head -c "$n" > "$d/s"; IFS= read -r m; head -c "$m" > "$d/i"
  ( eval "$(cat "$d/s")" ) < "$d/i" > "$d/o" 2> "$d/e" & pid=$!
  wait $pid; rc=$?; pid=
  printf '%d %d %d\n' "$rc" "$(wc -c < "$d/o")" "$(wc -c < "$d/e")"; cat "$d/o" "$d/e"
done`

// sizedReader is stdin whose length is known, so it can go through the
// worker (which must be told how many bytes belong to a command).
type sizedReader struct {
	io.Reader
	n int64
}

func (s sizedReader) Size() int64 { return s.n }

// Sized tells the worker how long r is.
func Sized(r io.Reader, n int64) io.Reader { return sizedReader{r, n} }

type worker struct {
	ch  ssh.Channel
	out *bufio.Reader
}

// startWorker opens the worker's session.
func (c *Client) startWorker() (*worker, error) {
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	// No reply wanted: the first request follows at once, in the same round
	// trip as the start of the worker.
	if _, err := ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{workerScript})); err != nil {
		ch.Close()
		return nil, err
	}
	go io.Copy(io.Discard, ch.Stderr())
	return &worker{ch: ch, out: bufio.NewReaderSize(ch, 64<<10)}, nil
}

// stdinSize is the length of stdin when it is known.
func stdinSize(stdin io.Reader) (int64, bool) {
	switch r := stdin.(type) {
	case nil:
		return 0, true
	case *bytes.Reader:
		return int64(r.Len()), true
	case interface{ Size() int64 }:
		return r.Size(), true
	}
	return 0, false
}

// execWorker runs cmd through the worker. ok is false when the worker could
// not be used (busy, broken, stdin of unknown length): nothing was sent.
func (c *Client) execWorker(ctx context.Context, cmd string, stdin io.Reader) (res Result, ok bool, err error) {
	size, known := stdinSize(stdin)
	if !c.Worker || !known || c.noWorker.Load() {
		return Result{}, false, nil
	}
	if !c.workerMu.TryLock() {
		return Result{}, false, nil
	}
	defer c.workerMu.Unlock()
	if c.wk == nil {
		w, err := c.startWorker()
		if err != nil {
			c.noWorker.Store(true)
			return Result{}, false, nil
		}
		c.wk = w
	}
	w := c.wk
	c.stats.Commands.Add(1)
	broken := func(e error) (Result, bool, error) {
		w.ch.Close()
		c.wk = nil
		return Result{Code: -1}, true, e
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			w.ch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"TERM"}))
			time.AfterFunc(time.Second, func() { w.ch.Close() })
		case <-done:
		}
	}()
	defer close(done)
	sendErr := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(w.ch, "%d\n%s%d\n", len(cmd), cmd, size)
		if err == nil && stdin != nil && size > 0 {
			var n int64
			n, err = io.Copy(w.ch, io.LimitReader(stdin, size))
			if err == nil && n < size {
				err = fmt.Errorf("stdin ended after %d of %d bytes", n, size)
			}
		}
		sendErr <- err
	}()
	head, err := w.out.ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return broken(ctx.Err())
		}
		if errors.Is(err, io.EOF) || c.lost.Load() {
			return broken(c.dropped())
		}
		return broken(err)
	}
	if err := <-sendErr; err != nil {
		return broken(err)
	}
	f := strings.Fields(head)
	if len(f) != 3 {
		return broken(fmt.Errorf("unexpected answer from the server: %q", head))
	}
	code, _ := strconv.Atoi(f[0])
	no, _ := strconv.Atoi(f[1])
	ne, _ := strconv.Atoi(f[2])
	buf := make([]byte, no+ne)
	if _, err := io.ReadFull(w.out, buf); err != nil {
		return broken(err)
	}
	return Result{Stdout: string(buf[:no]), Stderr: string(buf[no:]), Code: code}, true, nil
}

// workerState is the Client's part for the worker.
type workerState struct {
	workerMu sync.Mutex
	wk       *worker
	noWorker atomic.Bool
}
