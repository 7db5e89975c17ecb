package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raijin-deploy/raijin/remote"
	"golang.org/x/crypto/ssh"
)

// workerScript runs on the server in one long-lived SSH session and runs
// the commands of a whole raijin command. Its stdin starts with a line
// MARKER, then each request is a line "SLEN ILEN" followed by the script
// (SLEN bytes) and its stdin (ILEN bytes). The command's output goes straight
// back on the session's stdout and stderr, each followed by a line "MARKER
// CODE" after a newline of its own. MARKER is random per worker and secret:
// it comes on stdin, not on the command line that any user of the server
// can read in ps, and the commands do not see it, so no output can end a
// command early. A command costs one round trip this way, where a new
// session costs three (open the channel, start the command, get its
// result), and the worker starts no process of its own beyond reading the
// request (head), because on a small server every process started is felt.
//
// Nothing is written to disk: the script is held in a variable and the
// command reads its stdin through a pipe from head, which reads exactly ILEN
// bytes; what the command leaves unread is read and dropped after it (only
// then, so with no process in the usual case), keeping the next request in
// step.
//
// Each command runs in a process group of its own (set -m), so that a
// cancelled command is killed with everything it started: raijin sends TERM
// to the worker, which sends TERM to the group, gives it up to 3 s to end
// (a command may have cleaning up to do: .apprun stops the unit it started
// as the app's user), then KILL, and exits. The worker's own stderr
// (where a shell reports a finished job) goes nowhere; commands get the
// session's stderr on fd 3.
const workerScript = `set -m 2>/dev/null; exec 3>&2 2>/dev/null 4<&0; IFS= read -r raijin_m || exit 1; pid=
trap '[ -n "$pid" ] && { kill -TERM -- -$pid 2>/dev/null; wait $pid; i=0; while [ $i -lt 30 ] && kill -0 -- -$pid 2>/dev/null; do sleep 0.1; i=$((i+1)); done; kill -KILL -- -$pid 2>/dev/null; }; exit 143' TERM HUP INT
while IFS=' ' read -r n m; do
  raijin_s=$(head -c "$n")
  if [ "$m" -gt 0 ]; then
    ( head -c "$m" <&4 4<&- | { ( unset raijin_m; eval "$raijin_s" ); rc=$?; IFS= read -r raijin_x 2>/dev/null && cat >/dev/null; exit $rc; } 4<&- ) 2>&3 3>&- & pid=$!
  else
    ( unset raijin_m; eval "$raijin_s" ) </dev/null 2>&3 3>&- 4<&- & pid=$!
  fi
  wait $pid; rc=$?; pid=
  printf '\n%s %d\n' "$raijin_m" "$rc"; printf '\n%s %d\n' "$raijin_m" "$rc" >&3
done`

type worker struct {
	ch     ssh.Channel
	out    *bufio.Reader
	marker string
	errs   chan []byte // each command's stderr, in order; closed when the session ends
	used   bool        // a command was sent to it
}

// gone says whether the worker's session has ended; only for a worker that
// ran nothing yet (whose errs holds nothing).
func (w *worker) gone() bool {
	select {
	case _, ok := <-w.errs:
		return !ok
	default:
		return false
	}
}

// readAnswer reads one command's output from r: everything up to the line
// "MARKER CODE" and the newline the worker put before it.
func readAnswer(r *bufio.Reader, marker string) (out []byte, code int, err error) {
	var buf []byte
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return buf, -1, err
		}
		if len(buf) > 0 && buf[len(buf)-1] == '\n' && len(line) > len(marker)+1 &&
			string(line[:len(marker)]) == marker && line[len(marker)] == ' ' {
			code, cerr := strconv.Atoi(string(line[len(marker)+1 : len(line)-1]))
			if cerr == nil {
				return buf[:len(buf)-1], code, nil
			}
		}
		buf = append(buf, line...)
	}
}

// startWorker opens the worker's session.
func (c *Client) startWorker() (*worker, error) {
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	nonce := make([]byte, 16)
	rand.Read(nonce)
	w := &worker{ch: ch, out: bufio.NewReaderSize(ch, 64<<10), marker: "@@raijin-" + hex.EncodeToString(nonce), errs: make(chan []byte, 4)}
	// No reply wanted: the first request follows at once, in the same round
	// trip as the start of the worker.
	if _, err := ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{workerScript})); err != nil {
		ch.Close()
		return nil, err
	}
	if _, err := io.WriteString(ch, w.marker+"\n"); err != nil {
		ch.Close()
		return nil, err
	}
	go func() {
		defer close(w.errs)
		er := bufio.NewReader(ch.Stderr())
		for {
			b, _, err := readAnswer(er, w.marker)
			if err != nil {
				return
			}
			w.errs <- b
		}
	}()
	return w, nil
}

// StartWorker opens the worker's session now, while nothing waits for it
// (raijin dials while the build runs), so that the first command costs one
// round trip, not two. A worker that cannot start is not used.
func (c *Client) StartWorker() {
	if !c.Worker || c.noWorker.Load() {
		return
	}
	c.workerMu.Lock()
	defer c.workerMu.Unlock()
	c.readyWorker()
}

// readyWorker is the connection's worker, started when there is none (nil
// when it cannot start: the worker is then not used), with workerMu held.
// One opened with the connection (StartWorker) that ended before its first
// command (killed on the server while the build ran, say) is replaced:
// nothing ran in it, so a new one does no harm.
func (c *Client) readyWorker() *worker {
	if c.wk != nil && !c.wk.used && c.wk.gone() {
		c.wk.ch.Close()
		c.wk = nil
	}
	if c.wk == nil {
		w, err := c.startWorker()
		if err != nil {
			c.noWorker.Store(true)
			return nil
		}
		c.wk = w
	}
	return c.wk
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
func (c *Client) execWorker(ctx context.Context, cmd string, stdin io.Reader) (res remote.Result, ok bool, err error) {
	size, known := stdinSize(stdin)
	if !c.Worker || !known || c.noWorker.Load() {
		return remote.Result{}, false, nil
	}
	if !c.workerMu.TryLock() {
		return remote.Result{}, false, nil
	}
	defer c.workerMu.Unlock()
	w := c.readyWorker()
	if w == nil {
		return remote.Result{}, false, nil
	}
	w.used = true
	c.stats.Commands.Add(1)
	broken := func(e error) (remote.Result, bool, error) {
		w.ch.Close()
		c.wk = nil
		return remote.Result{Code: -1}, true, e
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
		_, err := fmt.Fprintf(w.ch, "%d %d\n%s", len(cmd), size, cmd)
		if err == nil && stdin != nil && size > 0 {
			var n int64
			n, err = io.Copy(w.ch, io.LimitReader(stdin, size))
			if err == nil && n < size {
				err = fmt.Errorf("stdin ended after %d of %d bytes", n, size)
			}
		}
		sendErr <- err
	}()
	out, code, err := readAnswer(w.out, w.marker)
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
	var errb []byte
	select {
	case b, ok := <-w.errs:
		if !ok {
			return broken(c.dropped())
		}
		errb = b
	case <-ctx.Done():
		return broken(ctx.Err())
	}
	return remote.Result{Stdout: string(out), Stderr: string(errb), Code: code}, true, nil
}

// workerState is the Client's part for the worker.
type workerState struct {
	workerMu sync.Mutex
	wk       *worker
	noWorker atomic.Bool
}
