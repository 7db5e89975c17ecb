package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// exitCode turns the end of a session into the remote exit code; the error is
// for the transport only.
func (c *Client) exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			return 128, nil
		}
		return ee.ExitStatus(), nil
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		return -1, fmt.Errorf("the connection to %s dropped while the command ran", c.Addr)
	}
	return -1, err
}

// Stream runs cmd and copies its output to stdout and stderr as it arrives
// (for `app logs`, `server exec`), returning the remote exit code. Cancelling
// ctx sends SIGINT, then closes the session.
func (c *Client) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c.stats.Commands.Add(1)
	sess, err := c.ssh.NewSession()
	if err != nil {
		return -1, fmt.Errorf("opening a session: %w", err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = stdout, stderr
	if stdin != nil {
		sess.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGINT)
		select {
		case err = <-done:
		case <-time.After(2 * time.Second):
			sess.Close()
			return 130, ctx.Err()
		}
	}
	return c.exitCode(err)
}

// Terminal is the local side of an interactive session.
type Terminal struct {
	In  *os.File  // the keyboard: put in raw mode when it is a terminal
	Out io.Writer // where the remote terminal's output goes
}

// Interactive runs cmd on a remote pseudo-terminal, as `ssh -t` does. The
// local terminal is put in raw mode, so every key (Ctrl-C, Ctrl-D, arrows)
// goes to the remote program and Ctrl-C interrupts it there, not raijin; the
// remote window follows the local one. It returns the remote exit code.
func (c *Client) Interactive(ctx context.Context, cmd string, t Terminal) (int, error) {
	c.stats.Commands.Add(1)
	sess, err := c.ssh.NewSession()
	if err != nil {
		return -1, fmt.Errorf("opening a session: %w", err)
	}
	defer sess.Close()

	fd := int(t.In.Fd())
	isTerm := term.IsTerminal(fd)
	w, h := 80, 24
	if isTerm {
		if cw, ch, err := term.GetSize(fd); err == nil && cw > 0 && ch > 0 {
			w, h = cw, ch
		}
	}
	termType := os.Getenv("TERM")
	if termType == "" {
		termType = "xterm-256color"
	}
	modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
	if err := sess.RequestPty(termType, h, w, modes); err != nil {
		return -1, fmt.Errorf("asking the server for a terminal: %w", err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return -1, err
	}
	sess.Stdout = t.Out
	sess.Stderr = t.Out // a pty has one output; this only catches early errors
	if isTerm {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if cw, ch, err := term.GetSize(fd); err == nil {
					sess.WindowChange(ch, cw)
				}
			}
		}()
	}
	if err := sess.Start(cmd); err != nil {
		return -1, fmt.Errorf("starting %q: %w", cmd, err)
	}
	// Keys to the remote terminal. The copy goroutine may stay blocked in a
	// read of the keyboard after the session ends; the command is over then.
	go func() {
		io.Copy(stdin, t.In)
		stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	for {
		select {
		case err = <-done:
			return c.exitCode(err)
		case <-ctx.Done():
			// Without raw mode (no local terminal) Ctrl-C reaches raijin as
			// SIGINT: pass it on as the terminal's interrupt character.
			stdin.Write([]byte{3})
			select {
			case err = <-done:
				return c.exitCode(err)
			case <-time.After(3 * time.Second):
				sess.Close()
				return 130, nil
			}
		}
	}
}
