// Package remote is how raijin acts on a server: the Session, the one Host
// every run goes through (production, --dry-run and the tests), which sends
// a recipe's steps over a Conn, batched into as few round trips as the
// recipe allows. SSH is one Conn (package transport); the Recorder is the
// other.
package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raijin-deploy/raijin/shell"
)

// Result is what a remote command left behind.
type Result struct {
	Stdout string
	Stderr string
	Code   int
}

// Stats counts what a command cost on the wire. Safe for concurrent use.
type Stats struct {
	Connections atomic.Int64
	Commands    atomic.Int64 // remote commands: one round trip each
	Steps       atomic.Int64 // recipe steps carried by those commands (a batch carries several)
	Uploads     atomic.Int64 // files sent (whole or by difference)
	BytesSent   atomic.Int64
	BytesRecv   atomic.Int64
}

// RunOpts shape how a remote command runs.
type RunOpts struct {
	Cwd    string // cd here first
	Appenv string // source this .appenv first (loads .env, sets PATH)
	// App runs the command as the app's own user, in the sandbox of its
	// units, through this wrapper (the app directory's .apprun): Cwd and Env
	// go to the sandbox; Sudo and Appenv do not apply.
	App     string
	Sudo    bool              // run as root through sudo -n
	Env     map[string]string // extra variables, exported first
	Stdin   []byte            // fed to the command
	Timeout time.Duration     // 0: the phase's own limit
	// When names a flag (WriteOpts.Flag): the command runs only if a write
	// with that flag changed a file.
	When string
	// Check, when set, turns the result into the step's error (called when
	// the step's result arrives, which for a queued step is later).
	Check func(Result) error
}

// ShellCommand builds the command line the server runs for cmd and opts. Every
// value from outside goes through shell.Quote.
func ShellCommand(cmd string, o RunOpts) string {
	if o.App != "" {
		return appCommand(cmd, o)
	}
	var b strings.Builder
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s; ", k, shell.Quote(o.Env[k]))
	}
	if o.Cwd != "" {
		fmt.Fprintf(&b, "cd %s && ", shell.Quote(o.Cwd))
	}
	if o.Appenv != "" {
		fmt.Fprintf(&b, ". %s && ", shell.Quote(o.Appenv))
	}
	b.WriteString(cmd)
	if o.Sudo {
		return "sudo -n sh -c " + shell.Quote(b.String())
	}
	return b.String()
}

// appCommand runs cmd through the .apprun wrapper o.App, which hands its
// arguments after the command to systemd-run.
func appCommand(cmd string, o RunOpts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sh %s %s", shell.Quote(o.App), shell.Quote(cmd))
	if o.Cwd != "" {
		fmt.Fprintf(&b, " %s", shell.Quote("--working-directory="+o.Cwd))
	}
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s", shell.Quote("--setenv="+k+"="+o.Env[k]))
	}
	return b.String()
}

// WriteOpts shape a remote file write.
type WriteOpts struct {
	Mode os.FileMode // default 0644
	Sudo bool        // write as root (system paths)
	// Flag is set (for RunOpts.When) when the write changed the file.
	Flag string
}

// Host is what the server-side operations (package server) act on: a
// Session, or a stand-in in their unit tests. They only run commands; files
// go through the Session (Write, Upload).
type Host interface {
	Name() string
	// Run runs a command; a non-zero exit is in Result.Code.
	Run(ctx context.Context, cmd string, o RunOpts) (Result, error)
}

// Observer is told of each remote action, for -v, --json and progress bars.
type Observer interface {
	Command(host, cmd string)
	Upload(host, local, remote string, sent, total int64, skipped bool)
}

// Step is one thing a Session sends: a command line with its stdin.
type Step struct {
	Kind string // run, write, check (before an upload), upload
	Desc string // what the recipe asked for, for messages: the command, or "write PATH"
	Line string // the full command line (ShellCommand)
	// Root is the command line without its sudo, when it runs as root:
	// steps in a row that run as root can share one sudo.
	Root  string
	Input io.Reader
	Size  int64
	Flag  string // set this flag when the step prints "changed"
	When  string // run only if this flag is set
	// QueuedBy names the phase that queued the step when it is sent in a
	// later one (ctx.host:defer).
	QueuedBy string
	// Local and Path: the local file and the remote path of an upload or a
	// write, and Content a write's data, for the Recorder.
	Local, Path string
	Mode        os.FileMode
	Content     []byte
}

// Conn carries steps to one server and back: SSH in production (package
// transport), a Recorder in --dry-run and the tests.
type Conn interface {
	Name() string
	// Addr says where the connection goes, for messages.
	Addr() string
	// Alive reports whether the connection still answers.
	Alive(ctx context.Context) error
	// Send runs steps in order, in one round trip, stopping at the first
	// that fails, with the flags already set; it returns the result of each
	// step that ran. When the run stopped without a step failing (the
	// script died), the error is a *DiedError saying what the server
	// printed.
	Send(ctx context.Context, steps []Step, flags map[string]bool) ([]Result, error)
	// Describe is what Send would send for steps, a line per command, for -v.
	Describe(steps []Step) []string
}

// sized is stdin whose length is known, so it can go through the remote
// worker, which must be told how many bytes belong to a command.
type sized struct {
	io.Reader
	n int64
}

func (s sized) Size() int64 { return s.n }

// Sized tells the connection how long r is.
func Sized(r io.Reader, n int64) io.Reader { return sized{r, n} }

// progressReader tells fn how much of an upload went out, every 200 ms.
type progressReader struct {
	ctx   context.Context
	r     io.Reader
	sent  int64
	total int64
	fn    func(sent, total int64)
	last  time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err // stops the copy when the command is cancelled
	}
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.fn != nil && (time.Since(p.last) > 200*time.Millisecond || err == io.EOF) {
		p.last = time.Now()
		p.fn(p.sent, p.total)
	}
	return n, err
}

// RemoteError is a remote command that exited non-zero.
type RemoteError struct {
	Host string
	Cmd  string
	Env  map[string]string // the values the command got in its environment
	Res  Result
}

func (e *RemoteError) Error() string {
	out := shell.LastLines(e.Res.Stderr, 8)
	if out == "" {
		out = shell.LastLines(e.Res.Stdout, 8)
	}
	msg := fmt.Sprintf("`%s` exited %d", Shorten(e.Cmd, 160), e.Res.Code)
	if len(e.Env) > 0 {
		// A fixed script names its values; say what they were.
		keys := make([]string, 0, len(e.Env))
		for k := range e.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+shell.Quote(e.Env[k]))
		}
		msg += " (with " + Shorten(strings.Join(kv, " "), 200) + ")"
	}
	if out != "" {
		msg += ":\n" + indent(out, "    ")
	}
	return msg
}

// Shorten puts s on one line of at most n bytes, for messages.
func Shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}

// Must runs cmd and turns a non-zero exit into a *RemoteError.
func Must(ctx context.Context, h Host, cmd string, o RunOpts) (Result, error) {
	res, err := h.Run(ctx, cmd, o)
	if err != nil {
		return res, err
	}
	if res.Code != 0 {
		return res, &RemoteError{Host: h.Name(), Cmd: cmd, Env: o.Env, Res: res}
	}
	return res, nil
}
