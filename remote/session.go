package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/upload"
)

// Session is the Host every run acts on. It can queue remote steps and send
// them to the server together, so that steps which do not need each other's
// output cost one round trip. The recipe decides what is queued
// (ctx.host:batch and ctx.host:defer); the Session only carries the steps, in
// order, and stops at the first one that fails, as if they had been sent one
// by one.
//
// Outside a queue every call goes straight to the server, except that steps
// still queued are sent first, in the same round trip.
type Session struct {
	Conn     Conn
	Observer Observer
	Redactor *secrets.Redactor
	// Stats counts the steps carried (one round trip may carry many).
	Stats *Stats
	// Cache keeps copies of uploaded files, for uploads by difference (nil:
	// always send whole files).
	Cache *upload.Cache
	// Plan: nothing runs (--dry-run), so a local file to upload may not
	// have been built; its check and its sending are still shown.
	Plan bool

	mu    sync.Mutex
	depth int // > 0: queuing
	items []*item
	flags map[string]bool
	label string                            // what queued steps are attributed to (the phase)
	after []func(ctx context.Context) error // sends that wait for a flush
	early []*earlyPatch                     // patches sent before their check's answer
	sent  map[string]bool                   // remote path: whether its last upload sent bytes
}

type item struct {
	Step
	env   map[string]string // RunOpts.Env, for messages
	check func(Result) error
	label string
	// direct: the caller waits for this step's result, so a non-zero exit
	// is its answer, not an error (as with Host.Run).
	direct bool
}

// NewSession acts on the server at the other end of conn.
func NewSession(conn Conn, obs Observer, red *secrets.Redactor, stats *Stats) *Session {
	if red == nil {
		red = &secrets.Redactor{}
	}
	return &Session{Conn: conn, Observer: obs, Redactor: red, Stats: stats, flags: map[string]bool{}, sent: map[string]bool{}}
}

func (s *Session) Name() string { return s.Conn.Name() }

// Addr says where the connection goes.
func (s *Session) Addr() string { return s.Conn.Addr() }

// Alive checks the connection, for a run that must know whether to connect
// again.
func (s *Session) Alive(ctx context.Context) error { return s.Conn.Alive(ctx) }

// Sent reports whether the last upload to remote sent bytes (false when the
// server had the same file, or before it was sent).
func (s *Session) Sent(remote string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[remote]
}

// Queuing reports whether calls are being queued instead of sent.
func (s *Session) Queuing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depth > 0
}

// Label attributes the steps queued from now on (a phase name), for errors
// found when they are finally sent.
func (s *Session) Label(l string) {
	s.mu.Lock()
	s.label = l
	s.mu.Unlock()
}

// Begin starts queuing; End stops (queues nest). Neither sends anything.
func (s *Session) Begin() {
	s.mu.Lock()
	s.depth++
	s.mu.Unlock()
}

func (s *Session) End() {
	s.mu.Lock()
	if s.depth > 0 {
		s.depth--
	}
	s.mu.Unlock()
}

// Discard drops every queued step unsent (after a failure, before undo).
func (s *Session) Discard() {
	s.mu.Lock()
	s.items, s.after, s.depth = nil, nil, 0
	s.mu.Unlock()
	s.cutEarly(s.takeEarly(), true)
}

// Mark is the queue's position now, for DiscardFrom.
func (s *Session) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// DiscardFrom drops the steps queued since mark (a batch whose function
// failed half-way sends none of its steps).
func (s *Session) DiscardFrom(mark int) {
	s.mu.Lock()
	if mark < len(s.items) {
		s.items = s.items[:mark]
	}
	s.mu.Unlock()
	// A patch sent before its check's answer goes with the dropped steps;
	// one whose check stays is sent again after its answer.
	s.cutEarly(s.takeEarly(), true)
}

// Pending is the number of queued steps.
func (s *Session) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Flag reports whether a step with WriteOpts.Flag = name changed a file.
func (s *Session) Flag(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flags[name]
}

var flagName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// CheckFlag validates a flag name (it becomes a shell variable).
func CheckFlag(name string) error {
	if name != "" && !flagName.MatchString(name) {
		return fmt.Errorf("flag %q: use lower-case letters, digits and _", name)
	}
	return nil
}

func (s *Session) enqueue(it *item) {
	s.mu.Lock()
	it.label = s.label
	s.items = append(s.items, it)
	s.mu.Unlock()
}

func (s *Session) echo(line string) {
	if s.Observer != nil {
		s.Observer.Command(s.Name(), s.Redactor.Redact(line))
	}
}

func (s *Session) countStep(n int) {
	if s.Stats != nil {
		s.Stats.Steps.Add(int64(n))
	}
}

// Run runs cmd, or queues it (and returns an empty success) while queuing.
func (s *Session) Run(ctx context.Context, cmd string, o RunOpts) (Result, error) {
	if err := CheckFlag(o.When); err != nil {
		return Result{}, err
	}
	line := ShellCommand(cmd, o)
	if s.Redactor.Leaks(line) {
		// Any user of the server sees a command line in ps.
		return Result{}, fmt.Errorf("refusing to run %s: it holds a secret value, which would show in the server's process list; send it on stdin or write it to a file (ctx.host:write) instead",
			Shorten(s.Redactor.Redact(line), 120))
	}
	it := &item{Step: Step{Kind: "run", Desc: cmd, Line: line, When: o.When}, env: o.Env, check: o.Check}
	if o.Sudo {
		plain := o
		plain.Sudo = false
		it.Root = ShellCommand(cmd, plain)
	}
	if o.Stdin != nil {
		it.Input, it.Size, it.Content = bytes.NewReader(o.Stdin), int64(len(o.Stdin)), o.Stdin
	}
	if s.Queuing() {
		s.enqueue(it)
		return Result{}, nil
	}
	if o.When != "" && !s.Flag(o.When) && s.Pending() == 0 {
		return Result{}, nil
	}
	it.direct = true
	s.enqueue(it)
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	results, err := s.flush(ctx)
	if len(results) > 0 {
		return results[len(results)-1], err
	}
	return Result{}, err
}

// Flush sends every queued step now, as one script. It returns the first
// failure (attributed to the step and the phase that queued it).
func (s *Session) Flush(ctx context.Context) error {
	if s.Pending() == 0 {
		return s.runAfter(ctx)
	}
	_, err := s.flush(ctx)
	return err
}

// Finish sends the queued steps followed by final (the deploy lock's release),
// in one round trip. final runs only if every step succeeded; finished says
// whether it ran.
func (s *Session) Finish(ctx context.Context, final string) (finished bool, err error) {
	s.enqueue(&item{Step: Step{Kind: "run", Desc: final, Line: final}})
	_, err = s.flush(ctx)
	return err == nil, err
}

func (s *Session) runAfter(ctx context.Context) error {
	s.mu.Lock()
	after := s.after
	s.after = nil
	s.mu.Unlock()
	for _, f := range after {
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) flush(ctx context.Context) ([]Result, error) {
	results, err := s.send(ctx)
	early := s.takeEarly()
	s.cutEarly(early, err != nil)
	if err != nil {
		// Sends waiting for this flush are dropped with it.
		s.mu.Lock()
		s.after = nil
		s.mu.Unlock()
		return results, err
	}
	err = s.runAfter(ctx)
	s.cutEarly(early, true) // those whose send did not run (a send before them failed)
	return results, err
}

// takeQueue empties the queue: its steps and the flags set so far.
func (s *Session) takeQueue() ([]*item, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	items := s.items
	s.items = nil
	flags := map[string]bool{}
	for k, v := range s.flags {
		flags[k] = v
	}
	return items, flags
}

func (s *Session) send(ctx context.Context) ([]Result, error) {
	items, flags := s.takeQueue()
	if len(items) == 0 {
		return nil, nil
	}
	steps := make([]Step, len(items))
	s.mu.Lock()
	cur := s.label
	s.mu.Unlock()
	for i, it := range items {
		if it.label != cur {
			it.QueuedBy = it.label
		}
		steps[i] = it.Step
	}
	for _, line := range s.Conn.Describe(steps) {
		s.echo(line)
	}
	s.countStep(len(items))
	results, err := s.Conn.Send(ctx, steps, flags)
	var died *DiedError
	if errors.As(err, &died) && died.Index < len(items) {
		it := items[died.Index]
		return results, s.wrap(it, &RemoteError{Host: s.Name(), Cmd: it.Desc, Env: it.env, Res: died.Res})
	}
	if err != nil {
		return nil, err
	}
	for i, r := range results {
		if i >= len(items) {
			break
		}
		if err := s.finishItem(items[i], r); err != nil {
			return results[:i+1], err
		}
	}
	return results, nil
}

func (s *Session) finishItem(it *item, r Result) error {
	if it.Flag != "" && strings.Contains(r.Stdout, "changed") {
		s.mu.Lock()
		s.flags[it.Flag] = true
		s.mu.Unlock()
	}
	var err error
	if it.check != nil {
		err = it.check(r)
	} else if r.Code != 0 && !it.direct {
		err = &RemoteError{Host: s.Name(), Cmd: it.Desc, Env: it.env, Res: r}
	}
	if err != nil {
		return s.wrap(it, err)
	}
	return nil
}

// wrap names the phase that queued a failed step when it is sent later.
func (s *Session) wrap(it *item, err error) error {
	s.mu.Lock()
	cur := s.label
	s.mu.Unlock()
	if it.label != "" && it.label != cur {
		return &QueuedError{Label: it.label, Err: err}
	}
	return err
}

// QueuedError is a step that failed when it was sent, after the phase that
// queued it (ctx.host:defer).
type QueuedError struct {
	Label string
	Err   error
}

func (e *QueuedError) Error() string {
	// The error names the phase (Label) already: host X: phase proxy: ...
	return "a step it deferred failed when it was sent later: " + e.Err.Error()
}
func (e *QueuedError) Unwrap() error { return e.Err }

// Write puts data at remote (see Host.Write); while queuing it reports no
// change (the answer comes with the flush: use WriteOpts.Flag).
func (s *Session) Write(ctx context.Context, remote string, data []byte, o WriteOpts) (bool, error) {
	if err := CheckFlag(o.Flag); err != nil {
		return false, err
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	changed := false
	it := &item{
		Step: Step{
			Kind: "write", Desc: "write " + remote, Path: remote, Mode: mode, Content: data,
			Line:  ShellCommand(writeScript(remote, mode), RunOpts{Sudo: o.Sudo}),
			Input: bytes.NewReader(data), Size: int64(len(data)),
			Flag: o.Flag,
		},
		check: func(r Result) error {
			if r.Code != 0 {
				return fmt.Errorf("writing %s failed: %s", remote, shell.LastLines(r.Stderr, 3))
			}
			changed = strings.TrimSpace(r.Stdout) == "changed"
			return nil
		},
	}
	if o.Sudo {
		it.Root = writeScript(remote, mode)
	}
	if s.Queuing() {
		s.enqueue(it)
		return false, nil
	}
	s.enqueue(it)
	_, err := s.flush(ctx)
	return changed, err
}

// writeScript writes stdin to dest through a temporary file in its directory,
// leaving an identical file's content untouched (its mode is still set, so a
// file once written 0644 becomes 0600 when asked); it prints "changed" or
// "same". mv -T: a directory in dest's place is an error, not a place to
// move the file into.
func writeScript(dest string, mode os.FileMode) string {
	d := shell.Quote(dest)
	// The temporary file is made by the shell (no mktemp): its name is
	// unique to this shell, in a directory only the deploy user or root
	// writes.
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; (umask 077; cat > "$t"); `+
		`if cmp -s "$t" %s; then chmod %04o %s; echo same; else chmod %04o "$t"; mv -fT "$t" %s; trap - EXIT; echo changed; fi`,
		shell.Quote(dest), d, mode, d, mode, d)
}
