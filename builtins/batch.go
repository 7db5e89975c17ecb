package builtins

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Batcher is a Host that can queue remote steps and send them to the server
// as one script, so that steps which do not need each other's output cost
// one round trip together. The recipe decides what is queued (ctx.host:batch
// and ctx.host:defer); the Batcher only carries the steps, in order, and
// stops at the first one that fails, as if they had been sent one by one.
//
// Outside a queue every call goes straight to the server, except that steps
// still queued are sent first, in the same round trip.
type Batcher struct {
	Host     Host // the server; its Run must honour RunOpts.Input
	Observer Observer
	Redactor *Redactor
	// Stats counts the steps carried (one round trip may carry many).
	Stats *Stats
	// Cache keeps copies of uploaded files, for uploads by difference (nil:
	// always send whole files).
	Cache *UploadCache

	mu    sync.Mutex
	depth int // > 0: queuing
	items []*batchItem
	flags map[string]bool
	label string                            // what queued steps are attributed to (the phase)
	after []func(ctx context.Context) error // sends that wait for a flush
	sent  map[string]bool                   // remote path: whether its last upload sent bytes
	nonce string
}

type batchItem struct {
	cmd  string // as the recipe gave it, for messages
	line string // the full command line (ShellCommand)
	// root: the command line without its sudo (line runs it through sudo);
	// steps in a row that run as root share one sudo.
	root  string
	input io.Reader
	size  int64
	flag  string // set this flag when the step prints "changed"
	when  string // run only if this flag is set
	check func(Result) error
	label string
	// direct: the caller waits for this step's result, so a non-zero exit
	// is its answer, not an error (as with Host.Run).
	direct bool
}

// NewBatcher wraps h.
func NewBatcher(h Host, obs Observer, red *Redactor, stats *Stats) *Batcher {
	b := make([]byte, 6)
	rand.Read(b)
	return &Batcher{Host: h, Observer: obs, Redactor: red, Stats: stats, flags: map[string]bool{}, sent: map[string]bool{}, nonce: hex.EncodeToString(b)}
}

func (b *Batcher) Name() string { return b.Host.Name() }

// Sent reports whether the last upload to remote sent bytes (false when the
// server had the same file, or before it was sent).
func (b *Batcher) Sent(remote string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent[remote]
}

// Alive checks the connection below, for a run that must know whether to
// connect again.
func (b *Batcher) Alive(ctx context.Context) error {
	if a, ok := b.Host.(interface{ Alive(context.Context) error }); ok {
		return a.Alive(ctx)
	}
	return nil
}

// Queuing reports whether calls are being queued instead of sent.
func (b *Batcher) Queuing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.depth > 0
}

// Label attributes the steps queued from now on (a phase name), for errors
// found when they are finally sent.
func (b *Batcher) Label(s string) {
	b.mu.Lock()
	b.label = s
	b.mu.Unlock()
}

// Begin starts queuing; End stops (queues nest). Neither sends anything.
func (b *Batcher) Begin() {
	b.mu.Lock()
	b.depth++
	b.mu.Unlock()
}

func (b *Batcher) End() {
	b.mu.Lock()
	if b.depth > 0 {
		b.depth--
	}
	b.mu.Unlock()
}

// Discard drops every queued step unsent (after a failure, before undo).
func (b *Batcher) Discard() {
	b.mu.Lock()
	b.items, b.after, b.depth = nil, nil, 0
	b.mu.Unlock()
}

// Mark is the queue's position now, for DiscardFrom.
func (b *Batcher) Mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// DiscardFrom drops the steps queued since mark (a batch whose function
// failed half-way sends none of its steps).
func (b *Batcher) DiscardFrom(mark int) {
	b.mu.Lock()
	if mark < len(b.items) {
		b.items = b.items[:mark]
	}
	b.mu.Unlock()
}

// Pending is the number of queued steps.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// Flag reports whether a step with WriteOpts.Flag = name changed a file.
func (b *Batcher) Flag(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flags[name]
}

var flagName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// CheckFlag validates a flag name (it becomes a shell variable).
func CheckFlag(name string) error {
	if name != "" && !flagName.MatchString(name) {
		return fmt.Errorf("flag %q: use lower-case letters, digits and _", name)
	}
	return nil
}

func (b *Batcher) enqueue(it *batchItem) {
	b.mu.Lock()
	it.label = b.label
	b.items = append(b.items, it)
	b.mu.Unlock()
}

func (b *Batcher) echo(line string) {
	if b.Observer != nil {
		b.Observer.Command(b.Host.Name(), b.Redactor.Redact(line))
	}
}

func (b *Batcher) countStep(n int) {
	if b.Stats != nil {
		b.Stats.Steps.Add(int64(n))
	}
}

// Run runs cmd, or queues it (and returns an empty success) while queuing.
func (b *Batcher) Run(ctx context.Context, cmd string, o RunOpts) (Result, error) {
	if err := CheckFlag(o.When); err != nil {
		return Result{}, err
	}
	it := &batchItem{cmd: cmd, line: ShellCommand(cmd, o), when: o.When, check: o.Check}
	if o.Sudo {
		plain := o
		plain.Sudo = false
		it.root = ShellCommand(cmd, plain)
	}
	if o.Stdin != nil {
		it.input, it.size = bytes.NewReader(o.Stdin), int64(len(o.Stdin))
	}
	if b.Queuing() {
		b.enqueue(it)
		return Result{}, nil
	}
	if o.When != "" && !b.Flag(o.When) && b.Pending() == 0 {
		return Result{}, nil
	}
	it.direct = true
	b.enqueue(it)
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	results, err := b.flush(ctx)
	if len(results) > 0 {
		return results[len(results)-1], err
	}
	return Result{}, err
}

// Flush sends every queued step now, as one script. It returns the first
// failure (attributed to the step and the phase that queued it).
func (b *Batcher) Flush(ctx context.Context) error {
	if b.Pending() == 0 {
		return b.runAfter(ctx)
	}
	_, err := b.flush(ctx)
	return err
}

// Finish sends the queued steps followed by final (the deploy lock's release),
// in one round trip. final runs only if every step succeeded; finished says
// whether it ran.
func (b *Batcher) Finish(ctx context.Context, final string) (finished bool, err error) {
	b.enqueue(&batchItem{cmd: final, line: final})
	_, err = b.flush(ctx)
	return err == nil, err
}

func (b *Batcher) runAfter(ctx context.Context) error {
	b.mu.Lock()
	after := b.after
	b.after = nil
	b.mu.Unlock()
	for _, f := range after {
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rootLine is a command's line for a shared sudo, or "" when it does not
// run as root.
func rootLine(cmd string, sudo bool) string {
	if !sudo {
		return ""
	}
	return cmd
}

// batchScript is the shell script that runs items in order, each in a
// subshell with its own stdin (read from the script's stdin, exactly its
// size), printing a marker with its exit status after it on stdout and
// stderr, and stopping at the first failure. Steps in a row that run as root
// run in one sudo (each sudo is a login of its own, logged and slow), unless
// a step after them depends on a flag one of them sets.
func batchScript(items []*batchItem, flags map[string]bool, marker string) string {
	var s strings.Builder
	// Inside raijin's worker, its directory holds the inputs; else a file of
	// our own.
	s.WriteString("if [ -n \"${raijin_w:-}\" ]; then raijin_in=$raijin_w/in; else raijin_in=$(mktemp); trap 'rm -f \"$raijin_in\" \"$raijin_in\".*' EXIT; fi\n")
	for f, on := range flags {
		if on {
			fmt.Fprintf(&s, "raijin_f_%s=1\n", f)
		}
	}
	for i := 0; i < len(items); {
		j := i
		for j < len(items) && items[j].root != "" {
			j++
		}
		if j-i >= 2 && !flagsUsedAfter(items, i, j) {
			writeRootGroup(&s, items, i, j, marker)
			i = j
			continue
		}
		it := items[i]
		in := "</dev/null"
		if it.input != nil {
			fmt.Fprintf(&s, "head -c %d > \"$raijin_in\"\n", it.size)
			in = `<"$raijin_in"`
		}
		s.WriteString(stepScript(it.line, in, it, i, marker))
		i++
	}
	s.WriteString("exit 0\n")
	return s.String()
}

// stepScript runs one step: its flag and condition, its marker, and the stop
// at a failure.
func stepScript(line, in string, it *batchItem, i int, marker string) string {
	run := fmt.Sprintf("( %s\n) %s; rc=$?", line, in)
	if it.flag != "" {
		run = fmt.Sprintf("raijin_out=$( ( %s\n) %s); rc=$?; printf '%%s\\n' \"$raijin_out\"; case $raijin_out in *changed*) raijin_f_%s=1;; esac", line, in, it.flag)
	}
	if it.when != "" {
		run = fmt.Sprintf("if [ -n \"${raijin_f_%s:-}\" ]; then %s; else rc=0; fi", it.when, run)
	}
	return run + "\n" + fmt.Sprintf("printf '\\n%s %d %%d\\n' $rc; printf '\\n%s %d %%d\\n' $rc >&2; [ $rc -eq 0 ] || exit $rc\n", marker, i, marker, i)
}

// flagsUsedAfter reports whether a step after items[i:j] runs only if a
// flag one of them sets: a flag set inside a shared sudo stays there.
func flagsUsedAfter(items []*batchItem, i, j int) bool {
	set := map[string]bool{}
	for _, it := range items[i:j] {
		if it.flag != "" {
			set[it.flag] = true
		}
	}
	for _, it := range items[j:] {
		if set[it.when] {
			return true
		}
	}
	return false
}

// writeRootGroup runs items[i:j] in one sudo: their inputs are read into
// files of their own first, and the flags they test are handed in.
func writeRootGroup(s *strings.Builder, items []*batchItem, i, j int, marker string) {
	var inner strings.Builder
	var args []string
	used := map[string]bool{}
	for _, it := range items[i:j] {
		if it.when != "" && !used[it.when] {
			used[it.when] = true
			args = append(args, it.when)
		}
	}
	inner.WriteString("raijin_in=$1\n")
	for k, f := range args {
		fmt.Fprintf(&inner, "raijin_f_%s=${%d}\n", f, k+2)
	}
	inner.WriteString("shift $#\n") // the steps see no arguments, as outside
	for k, it := range items[i:j] {
		in := "</dev/null"
		if it.input != nil {
			fmt.Fprintf(s, "head -c %d > \"$raijin_in.%d\"\n", it.size, k)
			in = fmt.Sprintf(`<"$raijin_in.%d"`, k)
		}
		inner.WriteString(stepScript(it.root, in, it, i+k, marker))
	}
	inner.WriteString("exit 0\n")
	fmt.Fprintf(s, "sudo -n sh -c %s raijin \"$raijin_in\"", Quote(inner.String()))
	for _, f := range args {
		fmt.Fprintf(s, " \"${raijin_f_%s:-}\"", f)
	}
	s.WriteString("; rc=$?; [ $rc -eq 0 ] || exit $rc\n")
}

// splitOutput cuts a stream at the markers: out[i] is item i's output and
// codes[i] its exit status, for the items that ran.
func splitOutput(stream, marker string) (outs []string, codes []int) {
	rest := stream
	for {
		k := strings.Index(rest, "\n"+marker+" ")
		if k < 0 {
			return outs, codes
		}
		outs = append(outs, rest[:k])
		rest = rest[k+len(marker)+2:]
		line, after, _ := strings.Cut(rest, "\n")
		f := strings.Fields(line)
		code := -1
		if len(f) == 2 {
			code, _ = strconv.Atoi(f[1])
		}
		codes = append(codes, code)
		rest = after
	}
}

func (b *Batcher) flush(ctx context.Context) ([]Result, error) {
	results, err := b.send(ctx)
	if err != nil {
		// Sends waiting for this flush are dropped with it.
		b.mu.Lock()
		b.after = nil
		b.mu.Unlock()
		return results, err
	}
	return results, b.runAfter(ctx)
}

func (b *Batcher) send(ctx context.Context) ([]Result, error) {
	b.mu.Lock()
	items := b.items
	b.items = nil
	flags := map[string]bool{}
	for k, v := range b.flags {
		flags[k] = v
	}
	b.mu.Unlock()
	if len(items) == 0 {
		return nil, nil
	}
	for _, it := range items {
		e := it.line
		if it.when != "" {
			e = "[only if " + it.when + " changed] " + e
		}
		b.echo(e)
	}
	b.countStep(len(items))
	var res Result
	var err error
	if len(items) == 1 && items[0].flag == "" && items[0].when == "" {
		// A single step goes as it is: no wrapper to read in -v or errors.
		it := items[0]
		res, err = b.Host.Run(ctx, it.line, RunOpts{Input: it.input})
		if err != nil {
			return nil, err
		}
		return []Result{res}, b.finishItem(it, res)
	}
	marker := "@@raijin-" + b.nonce
	var inputs []io.Reader
	for _, it := range items {
		if it.input != nil {
			inputs = append(inputs, it.input)
		}
	}
	var input io.Reader
	if len(inputs) > 0 {
		var n int64
		for _, it := range items {
			n += it.size
		}
		input = Sized(io.MultiReader(inputs...), n)
	}
	res, err = b.Host.Run(ctx, batchScript(items, flags, marker), RunOpts{Input: input})
	if err != nil {
		return nil, err
	}
	outs, codes := splitOutput(res.Stdout, marker)
	errs, _ := splitOutput(res.Stderr, marker)
	var results []Result
	for i, it := range items {
		if i >= len(codes) {
			// The script died before this step: say where it stopped.
			if len(codes) == i {
				r := Result{Stdout: strings.Join(outs[i:], ""), Stderr: lastLines(res.Stderr, 8), Code: res.Code}
				return results, b.wrap(it, &RemoteError{Host: b.Name(), Cmd: it.cmd, Res: r})
			}
			break
		}
		r := Result{Stdout: outs[i], Code: codes[i]}
		if i < len(errs) {
			r.Stderr = errs[i]
		}
		results = append(results, r)
		if err := b.finishItem(it, r); err != nil {
			return results, err
		}
	}
	return results, nil
}

func (b *Batcher) finishItem(it *batchItem, r Result) error {
	if it.flag != "" && strings.Contains(r.Stdout, "changed") {
		b.mu.Lock()
		b.flags[it.flag] = true
		b.mu.Unlock()
	}
	var err error
	if it.check != nil {
		err = it.check(r)
	} else if r.Code != 0 && !it.direct {
		err = &RemoteError{Host: b.Name(), Cmd: it.cmd, Res: r}
	}
	if err != nil {
		return b.wrap(it, err)
	}
	return nil
}

// wrap names the phase that queued a failed step when it is sent later.
func (b *Batcher) wrap(it *batchItem, err error) error {
	b.mu.Lock()
	cur := b.label
	b.mu.Unlock()
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
	return "a step deferred by phase " + e.Label + " failed: " + e.Err.Error()
}
func (e *QueuedError) Unwrap() error { return e.Err }

// Write puts data at remote (see Host.Write); while queuing it reports no
// change (the answer comes with the flush: use WriteOpts.Flag).
func (b *Batcher) Write(ctx context.Context, remote string, data []byte, o WriteOpts) (bool, error) {
	if err := CheckFlag(o.Flag); err != nil {
		return false, err
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	changed := false
	it := &batchItem{
		cmd:   "write " + remote,
		line:  ShellCommand(writeScript(remote, mode), RunOpts{Sudo: o.Sudo}),
		root:  rootLine(writeScript(remote, mode), o.Sudo),
		input: bytes.NewReader(data), size: int64(len(data)),
		flag: o.Flag,
		check: func(r Result) error {
			if r.Code != 0 {
				return fmt.Errorf("writing %s failed: %s", remote, lastLines(r.Stderr, 3))
			}
			changed = strings.TrimSpace(r.Stdout) == "changed"
			return nil
		},
	}
	if b.Queuing() {
		b.enqueue(it)
		return false, nil
	}
	b.enqueue(it)
	_, err := b.flush(ctx)
	return changed, err
}

// sumFile is where raijin notes the SHA-256 of a file it uploaded: next to
// it, as .NAME.sha256. The note is trusted while the file is not newer than
// it, so that checking a file of many megabytes does not mean hashing it.
func sumFile(remote string) string {
	return path.Join(path.Dir(remote), "."+path.Base(remote)+".sha256")
}

// knownSum prints the SHA-256 of f: the note raijin left, or else sha256sum's.
func knownSum(f string) string {
	q, n := Quote(f), Quote(sumFile(f))
	return fmt.Sprintf(`{ if [ -f %s ] && ! [ %s -nt %s ]; then read -r s < %s && echo "$s"; else sha256sum %s 2>/dev/null | { read -r s _ && echo "$s"; }; fi; }`, n, q, n, n, q)
}

// noteSum records sum as the SHA-256 of f (see sumFile).
func noteSum(f, sum string) string {
	return fmt.Sprintf("printf '%%s\\n' %s > %s", sum, Quote(sumFile(f)))
}

// uploadCheck makes the directory and says "same" (and sets the mode) when
// remote already has sum, else "send", followed by the SHA-256 of basis
// when basis is given and exists (the server's copy to rebuild from).
func uploadCheck(remote, sum string, mode os.FileMode, basis string) string {
	r, d := Quote(remote), Quote(path.Dir(remote))
	b := ""
	if basis != "" {
		b = fmt.Sprintf("; if [ -f %s ]; then %s; fi", Quote(basis), knownSum(basis))
	}
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p %s; } && if [ -f %s ] && [ "$(%s)" = %s ]; then chmod %04o %s && %s && echo same; else echo send%s; fi`,
		d, d, r, knownSum(remote), sum, mode, r, noteSum(remote, sum), b)
}

// receiveScript reads exactly size bytes into a temporary file next to
// remote, checks that they all arrived, renames it into place and notes its
// SHA-256. (The SSH connection's message authentication guards the bytes
// themselves.)
func receiveScript(remote, sum string, size int64, mode os.FileMode) string {
	r := Quote(remote)
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; head -c %d > "$t"; `+
		`[ "$(wc -c < "$t")" -eq %d ] || { echo "the upload of %s arrived incomplete" >&2; exit 1; }; `+
		`chmod %04o "$t"; mv -f "$t" %s; trap - EXIT; %s`, r, size, size, path.Base(remote), mode, r, noteSum(remote, sum))
}

// Upload copies a local file unless the server has it already (same
// SHA-256). The check is one step (queued while queuing); the bytes go in
// one more round trip right after it, streamed on the session's stdin.
func (b *Batcher) Upload(ctx context.Context, local, remote string, mode os.FileMode) (bool, error) {
	return b.UploadFrom(ctx, local, remote, mode, "")
}

// UploadFrom is Upload with a basis: a file on the server that is an
// earlier build of local (the live version's, say). When this machine's
// upload cache still holds a copy of it, only the difference is sent.
func (b *Batcher) UploadFrom(ctx context.Context, local, remote string, mode os.FileMode, basis string) (bool, error) {
	sum, st, err := localDigest(local)
	if err != nil {
		return false, err
	}
	cache := b.Cache
	if cache == nil || st.Size() < deltaMinSize || len(cache.Sums()) == 0 {
		basis = "" // sent whole: do not ask for the server's copy
	}
	sent := false
	markSent := func() {
		sent = true
		b.mu.Lock()
		b.sent[remote] = true
		b.mu.Unlock()
		if cache != nil {
			cache.Put(local, sum)
		}
	}
	dropped := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		addr := b.Name()
		if a, ok := b.Host.(interface{ Addr() string }); ok {
			addr = a.Addr()
		}
		return fmt.Errorf("uploading %s to %s: the SSH connection to %s dropped during the upload (%v); the partial file is never used",
			path.Base(local), remote, addr, err)
	}
	send := func(ctx context.Context) error {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		var in io.Reader = f
		if b.Observer != nil {
			in = &progressReader{ctx: ctx, r: f, total: st.Size(), fn: func(n, total int64) {
				b.Observer.Upload(b.Name(), local, remote, n, total, false)
			}}
		}
		if b.Stats != nil {
			b.Stats.SFTPOps.Add(1)
		}
		b.echo(fmt.Sprintf("upload %s -> %s (%d bytes on stdin)", local, remote, st.Size()))
		b.countStep(1)
		res, err := b.Host.Run(ctx, receiveScript(remote, sum, st.Size(), mode), RunOpts{Input: Sized(in, st.Size())})
		if err != nil {
			return dropped(err)
		}
		if res.Code != 0 {
			return fmt.Errorf("uploading %s to %s failed: %s", path.Base(local), remote, lastLines(res.Stderr, 3))
		}
		markSent()
		return nil
	}
	// sendDelta rebuilds the file from basis on the server; when that fails
	// (a server whose dd lacks byte offsets, say) the whole file is sent.
	sendDelta := func(ops []deltaOp) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			stdin := deltaStdin(ops)
			if b.Stats != nil {
				b.Stats.SFTPOps.Add(1)
			}
			b.echo(fmt.Sprintf("upload %s -> %s by difference against %s (%d pieces, %d new bytes of %d)",
				local, remote, basis, len(ops), deltaLiteral(ops), st.Size()))
			b.countStep(1)
			var in io.Reader
			if len(stdin) > 0 {
				in = Sized(bytes.NewReader(stdin), int64(len(stdin)))
			}
			res, err := b.Host.Run(ctx, deltaScript(basis, remote, sum, ops, st.Size(), uint32(mode)), RunOpts{Input: in})
			if err != nil {
				return dropped(err)
			}
			if res.Code != 0 {
				b.echo(fmt.Sprintf("rebuilding %s failed (%s); sending all of it", remote, lastLines(res.Stderr, 1)))
				return send(ctx)
			}
			if b.Observer != nil {
				b.Observer.Upload(b.Name(), local, remote, st.Size(), st.Size(), false)
			}
			markSent()
			return nil
		}
	}
	it := &batchItem{
		cmd: "check " + remote, line: uploadCheck(remote, sum, mode, basis),
		check: func(r Result) error {
			if r.Code != 0 {
				return fmt.Errorf("preparing %s failed: %s", path.Dir(remote), lastLines(r.Stderr, 3))
			}
			b.mu.Lock()
			b.sent[remote] = false
			b.mu.Unlock()
			lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
			if lines[0] == "same" {
				if b.Observer != nil {
					b.Observer.Upload(b.Name(), local, remote, 0, st.Size(), true)
				}
				if cache != nil {
					cache.Put(local, sum)
				}
				return nil
			}
			next := send
			if f := strings.Fields(strings.Join(lines[1:], " ")); len(f) > 0 && cache != nil && basis != "" {
				if ops := cache.Delta(f[0], local, sum); ops != nil {
					next = sendDelta(ops)
				}
			}
			b.mu.Lock()
			b.after = append(b.after, next)
			b.mu.Unlock()
			return nil
		},
	}
	b.enqueue(it)
	if b.Queuing() {
		return false, nil
	}
	_, err = b.flush(ctx)
	return sent, err
}

// deltaLiteral is how many bytes of a delta are new.
func deltaLiteral(ops []deltaOp) int {
	n := 0
	for _, op := range ops {
		n += len(op.Lit)
	}
	return n
}
