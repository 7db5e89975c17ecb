package builtins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RunOpts shape how a remote command runs.
type RunOpts struct {
	Cwd     string            // cd here first
	Appenv  string            // source this .appenv first (loads .env, sets PATH)
	Sudo    bool              // run as root through sudo -n
	Env     map[string]string // extra variables, exported first
	Stdin   []byte            // fed to the command
	Timeout time.Duration     // 0: the phase's own limit
	// Input is streamed to the command instead of Stdin (large files).
	Input io.Reader
	// When names a flag (WriteOpts.Flag): the command runs only if a write
	// with that flag changed a file. Honoured by Batcher and RecordingHost.
	When string
	// Check, when set, turns the result into the step's error (a Batcher
	// calls it when a queued step's result arrives).
	Check func(Result) error
}

// ShellCommand builds the command line the server runs for cmd and opts. Every
// value from outside goes through Quote.
func ShellCommand(cmd string, o RunOpts) string {
	var b strings.Builder
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s; ", k, Quote(o.Env[k]))
	}
	if o.Cwd != "" {
		fmt.Fprintf(&b, "cd %s && ", Quote(o.Cwd))
	}
	if o.Appenv != "" {
		fmt.Fprintf(&b, ". %s && ", Quote(o.Appenv))
	}
	b.WriteString(cmd)
	if o.Sudo {
		return "sudo -n sh -c " + Quote(b.String())
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

// Host is what a recipe acts on: a real server over SSH, or a recording
// stand-in for --dry-run.
type Host interface {
	Name() string
	// Run runs a command; a non-zero exit is in Result.Code.
	Run(ctx context.Context, cmd string, o RunOpts) (Result, error)
	// Upload copies a local file, skipping the copy when the remote file
	// already has the same SHA-256. It reports whether bytes were sent.
	Upload(ctx context.Context, local, remote string, mode os.FileMode) (bool, error)
	// Write puts data at remote atomically and reports whether the file
	// changed (an identical file is left alone).
	Write(ctx context.Context, remote string, data []byte, o WriteOpts) (bool, error)
}

// Observer is told of each remote action, for -v, --json and progress bars.
type Observer interface {
	Command(host, cmd string)
	Upload(host, local, remote string, sent, total int64, skipped bool)
}

// RemoteHost is a Host over one SSH connection.
type RemoteHost struct {
	HostName string
	Client   *Client
	Observer Observer
	Redactor *Redactor
}

func (h *RemoteHost) Name() string { return h.HostName }

// Addr is the host:port the connection dialled.
func (h *RemoteHost) Addr() string { return h.Client.Addr }

// Alive reports whether the SSH connection still answers.
func (h *RemoteHost) Alive(ctx context.Context) error { return h.Client.Alive(ctx) }

func (h *RemoteHost) echo(cmd string) {
	if h.Observer != nil {
		h.Observer.Command(h.HostName, h.Redactor.Redact(cmd))
	}
}

func (h *RemoteHost) Run(ctx context.Context, cmd string, o RunOpts) (Result, error) {
	line := ShellCommand(cmd, o)
	h.echo(line)
	if h.Redactor.Leaks(line) {
		// Any user of the server sees a command line in ps.
		return Result{}, fmt.Errorf("refusing to run %s: it holds a secret value, which would show in the server's process list; send it on stdin or write it to a file (ctx.host:write) instead", shorten(h.Redactor.Redact(line), 120))
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	stdin := o.Input
	if o.Stdin != nil {
		stdin = bytes.NewReader(o.Stdin)
	}
	return h.Client.Exec(ctx, line, stdin)
}

// writeScript writes stdin to dest through a temporary file in its directory,
// leaving an identical file's content untouched (its mode is still set, so a
// file once written 0644 becomes 0600 when asked); it prints "changed" or
// "same". mv -T: a directory in dest's place is an error, not a place to
// move the file into.
func writeScript(dest string, mode os.FileMode) string {
	d := Quote(dest)
	// The temporary file is made by the shell (no mktemp): its name is
	// unique to this shell, in a directory only the deploy user or root
	// writes.
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; (umask 077; cat > "$t"); `+
		`if cmp -s "$t" %s; then chmod %04o %s; echo same; else chmod %04o "$t"; mv -fT "$t" %s; trap - EXIT; echo changed; fi`,
		Quote(dest), d, mode, d, mode, d)
}

func (h *RemoteHost) Write(ctx context.Context, remote string, data []byte, o WriteOpts) (bool, error) {
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	res, err := h.Run(ctx, writeScript(remote, mode), RunOpts{Sudo: o.Sudo, Stdin: data})
	if err != nil {
		return false, err
	}
	if res.Code != 0 {
		return false, fmt.Errorf("writing %s failed: %s", remote, lastLines(res.Stderr, 3))
	}
	return strings.TrimSpace(res.Stdout) == "changed", nil
}

// shaCache remembers the hash of a file that has not changed (same size and
// modification time), so a deploy to many hosts hashes its distfile once.
var shaCache sync.Map // shaKey -> string

type shaKey struct {
	path  string
	size  int64
	mtime int64
}

// FileSHA256 hashes a local file.
func FileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	key := shaKey{p, st.Size(), st.ModTime().UnixNano()}
	if sum, ok := shaCache.Load(key); ok {
		return sum.(string), nil
	}
	hh := sha256.New()
	if _, err := io.Copy(hh, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(hh.Sum(nil))
	shaCache.Store(key, sum)
	return sum, nil
}

// localDigest is what an upload needs to know of its local file.
func localDigest(local string) (sum string, st os.FileInfo, err error) {
	if sum, err = FileSHA256(local); err != nil {
		return "", nil, err
	}
	st, err = os.Stat(local)
	return sum, st, err
}

func (h *RemoteHost) Upload(ctx context.Context, local, remote string, mode os.FileMode) (bool, error) {
	sum, st, err := localDigest(local)
	if err != nil {
		return false, err
	}
	// One round trip: make the directory, and say whether the file is there
	// already with the same content (the same check as the Batcher's).
	res, err := h.Run(ctx, uploadCheck(remote, sum, mode, ""), RunOpts{})
	if err != nil {
		return false, err
	}
	if res.Code != 0 {
		return false, fmt.Errorf("preparing %s failed: %s", path.Dir(remote), lastLines(res.Stderr, 3))
	}
	if strings.TrimSpace(res.Stdout) == "same" {
		if h.Observer != nil {
			h.Observer.Upload(h.HostName, local, remote, 0, st.Size(), true)
		}
		return false, nil
	}
	h.echo(fmt.Sprintf("sftp put %s %s", local, remote))
	var progress Progress
	if h.Observer != nil {
		progress = func(sent, total int64) { h.Observer.Upload(h.HostName, local, remote, sent, total, false) }
	}
	if err := h.Client.Upload(ctx, local, remote, mode, progress); err != nil {
		return false, h.explainUpload(ctx, err, remote, st.Size())
	}
	// The note of its hash, as after the Batcher's uploads (failing to
	// write it only costs a hash at the next check).
	h.Run(ctx, noteSum(remote, sum), RunOpts{})
	return true, nil
}

// explainUpload adds the likely cause to an upload failure: SFTP servers
// report a full disk only as a generic failure, so look at the free space.
func (h *RemoteHost) explainUpload(ctx context.Context, err error, remote string, size int64) error {
	if ctx.Err() != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, derr := h.Client.Exec(dctx, "df -Pk "+Quote(path.Dir(remote))+" | tail -n 1", nil)
	if derr != nil || res.Code != 0 {
		return err
	}
	f := strings.Fields(res.Stdout)
	if len(f) < 6 {
		return err
	}
	free, perr := strconv.ParseInt(f[3], 10, 64)
	if perr != nil || free*1024 >= size {
		return err
	}
	return fmt.Errorf("%v: no space left on the server's disk: %s has %d KiB free, the file needs %d KiB; free space on the server (or lower versions_to_keep) and deploy again", err, f[5], free, (size+1023)/1024)
}

// Action is one thing a recording host was asked to do.
type Action struct {
	Kind    string // run, upload, write
	Command string // run: the full command line
	Local   string // upload: the local file
	Path    string // upload, write: the remote path
	Mode    os.FileMode
	Sudo    bool
	Content string // write: the file's content; run: what it reads on stdin
}

// RecordingHost stands in for a server in --dry-run: it records every action
// and answers every command with success and no output.
type RecordingHost struct {
	HostName string
	Redactor *Redactor
	mu       sync.Mutex
	Actions  []Action
	OnAction func(Action)
}

func (r *RecordingHost) Name() string { return r.HostName }

func (r *RecordingHost) add(a Action) {
	a.Command = r.Redactor.Redact(a.Command)
	a.Content = r.Redactor.Redact(a.Content)
	r.mu.Lock()
	r.Actions = append(r.Actions, a)
	r.mu.Unlock()
	if r.OnAction != nil {
		r.OnAction(a)
	}
}

func (r *RecordingHost) Run(_ context.Context, cmd string, o RunOpts) (Result, error) {
	line := ShellCommand(cmd, RunOpts{Cwd: o.Cwd, Appenv: o.Appenv, Sudo: o.Sudo, Env: o.Env})
	if o.When != "" {
		line = "[only if " + o.When + " changed] " + line
	}
	// What a command gets on stdin (a file being written, a Caddy site) is
	// its content, shown with -v.
	r.add(Action{Kind: "run", Command: line, Sudo: o.Sudo, Content: string(o.Stdin)})
	return Result{}, nil
}

func (r *RecordingHost) Upload(_ context.Context, local, remote string, mode os.FileMode) (bool, error) {
	r.add(Action{Kind: "upload", Local: local, Path: remote, Mode: mode})
	return true, nil
}

func (r *RecordingHost) Write(_ context.Context, remote string, data []byte, o WriteOpts) (bool, error) {
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	r.add(Action{Kind: "write", Path: remote, Mode: mode, Sudo: o.Sudo, Content: string(data)})
	return true, nil
}
