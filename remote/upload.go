package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/raijin-deploy/raijin/shell"
	"github.com/raijin-deploy/raijin/upload"
)

// Upload copies a local file unless the server has it already (same
// SHA-256, hashed on the server). The check is one step (queued while
// queuing); the bytes go in one more round trip right after it, streamed on
// the session's stdin, and are renamed into place only once the server
// finds them to be the file sent.
func (s *Session) Upload(ctx context.Context, local, remote string, mode os.FileMode) (bool, error) {
	return s.UploadFrom(ctx, local, remote, mode, "")
}

// UploadFrom is Upload with a basis: a file on the server that is an
// earlier build of local (the live version's, say). When this machine's
// upload cache still holds a copy of it, only the difference is sent.
func (s *Session) UploadFrom(ctx context.Context, local, remote string, mode os.FileMode, basis string) (bool, error) {
	return s.UploadWith(ctx, local, remote, mode, UploadOpts{Basis: basis})
}

// UploadOpts are an upload's options beyond the paths and mode.
type UploadOpts struct {
	// Basis is a file on the server that is an earlier build of the local
	// file (the live version's, say), or "".
	Basis string
	// Series says the file is one of a series (each version's distfile):
	// a later upload rebuilds from it, so it gets a sum note even when it
	// has no basis itself (the first version's). Implied by Basis.
	Series bool
}

// UploadWith is Upload with options.
func (s *Session) UploadWith(ctx context.Context, local, remote string, mode os.FileMode, o UploadOpts) (bool, error) {
	u, err := s.newUpload(local, remote, mode, o.Basis, o.Series)
	if err != nil {
		return false, err
	}
	u.guess(ctx)
	s.enqueue(u.checkStep())
	if s.Queuing() {
		return false, nil
	}
	_, err = s.flush(ctx)
	return u.sent, err
}

// fileUpload is one file on its way: the check whether the server has it,
// then the whole file or the difference against basis.
type fileUpload struct {
	s                    *Session
	local, remote, basis string
	mode                 os.FileMode
	sum                  string
	size                 int64
	sent                 bool
	note                 bool         // the file gets a sum note: a later upload rebuilds from it
	offer                upload.Offer // what the server can take, from the check
	early                *earlyPatch  // a patch sent before the check's answer
}

// unbuilt stands for the SHA-256 of a file that --dry-run did not build.
var unbuilt = strings.Repeat("0", 64)

func (s *Session) newUpload(local, remote string, mode os.FileMode, basis string, series bool) (*fileUpload, error) {
	u := &fileUpload{s: s, local: local, remote: remote, mode: mode, basis: basis}
	sum, st, err := upload.Digest(local)
	switch {
	case err == nil:
		u.sum, u.size = sum, st.Size()
	case s.Plan:
		u.sum = unbuilt
	default:
		return nil, err
	}
	// A file of a series (uploaded with a basis, or said to be one: each
	// version's distfile): the next upload rebuilds from it.
	u.note = (basis != "" || series) && u.size >= upload.MinDeltaSize
	if s.Cache == nil || u.size < upload.MinDeltaSize || len(s.Cache.Sums()) == 0 {
		u.basis = "" // sent whole: do not ask for the server's copy
	}
	return u, nil
}

// target is the file as the upload scripts put it in place.
func (u *fileUpload) target() upload.Target {
	return upload.Target{Remote: u.remote, Sum: u.sum, Size: u.size, Mode: u.mode, Note: u.note}
}

// checkStep makes the directory and learns whether the server has the file
// already, and the SHA-256 of the basis; what to send is decided on its
// answer.
func (u *fileUpload) checkStep() *item {
	return &item{
		Step: Step{Kind: "check", Desc: "check " + u.remote, Local: u.local, Path: u.remote, Mode: u.mode,
			Line: upload.CheckScript(u.remote, u.sum, u.mode, u.basis)},
		check: u.answer,
	}
}

func (u *fileUpload) answer(r Result) error {
	s := u.s
	if r.Code != 0 {
		return fmt.Errorf("preparing %s failed: %s", path.Dir(u.remote), shell.LastLines(r.Stderr, 3))
	}
	s.mu.Lock()
	s.sent[u.remote] = false
	if u.early != nil {
		u.early.answered = true
	}
	s.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if lines[0] == "same" {
		if e := u.early; e != nil {
			s.mu.Lock()
			s.after = append(s.after, func(context.Context) error { e.stop(); return nil })
			s.mu.Unlock()
		}
		if s.Observer != nil {
			s.Observer.Upload(s.Name(), u.local, u.remote, 0, u.size, true)
		}
		if s.Cache != nil {
			s.Cache.Put(u.local, u.sum)
		}
		return nil
	}
	offer := upload.ParseOffer(lines[1:])
	s.mu.Lock()
	s.after = append(s.after, func(ctx context.Context) error { return u.send(ctx, offer) })
	s.mu.Unlock()
	return nil
}

// send picks the fewest bytes that rebuild the file on the server. When
// both ends have a zstd that makes and applies patches, that is a zstd
// patch against the basis, streamed while zstd makes it: measured, it is
// never larger than the difference of delta.go (a Go binary rebuilt with
// another version string: about 1 kB against 16 kB) and at most about the
// file compressed alone (zstd at the same level, with the basis as its
// dictionary). Else it is the difference against the basis when it is small
// or smaller than the whole file, else the whole file (compressed when the
// server can undo it and the file shrinks).
func (u *fileUpload) send(ctx context.Context, offer upload.Offer) error {
	s := u.s
	u.offer = offer
	if s.Cache != nil && u.basis != "" {
		s.Cache.NotePatches(s.Addr(), offer.ZstdPatch)
	}
	if e := u.early; e != nil {
		if offer.ZstdPatch && s.Cache != nil {
			s.Cache.NoteGuess(s.Addr(), offer.Basis == e.basisSum)
		}
		if offer.ZstdPatch && offer.Basis == e.basisSum && e.release() {
			<-e.done
			if e.err != nil && ctx.Err() == nil {
				if _, perr := e.patch.Wait(ctx); perr == nil || !errors.Is(e.err, perr) {
					// Not the patch's own end: the session did not open, say.
					s.echo(fmt.Sprintf("the patch sent before the check did not go (%v); sending it again", e.err))
					return u.sendPatch(ctx, e.patch)
				}
			}
			return u.patched(ctx, e.patch, e.res, e.err)
		}
		if offer.ZstdPatch && offer.Basis != "" && s.Cache != nil {
			s.Cache.Patch(ctx, offer.Basis, u.local, u.sum) // while the early one ends
		}
		e.stop()
		s.echo("the patch sent before the check was cut: " + u.whyNotEarly(offer, e))
	}
	if offer.Basis == "" || s.Cache == nil || u.basis == "" {
		return u.sendDeltaOrWhole(ctx, "")
	}
	if offer.ZstdPatch {
		if p := s.Cache.Patch(ctx, offer.Basis, u.local, u.sum); p != nil {
			return u.sendPatch(ctx, p)
		}
	}
	return u.sendDeltaOrWhole(ctx, offer.Basis)
}

// whyNotEarly says why an early patch was cut.
func (u *fileUpload) whyNotEarly(offer upload.Offer, e *earlyPatch) string {
	switch {
	case !offer.ZstdPatch:
		return "the server has no zstd that applies patches (1.4.5 or later)"
	case offer.Basis == "":
		return "the server has no " + u.basis
	case offer.Basis != e.basisSum:
		return fmt.Sprintf("the server's %s has SHA-256 %.12s…, not %.12s…, the file last sent from here", u.basis, offer.Basis, e.basisSum)
	}
	return "it was stopped before the check's answer came (its batch was dropped, or it waited too long); the patch goes now"
}

// sendDeltaOrWhole sends the difference against the cached file basisSum
// when there is one and it is small or smaller than the whole file as it
// would go, else the whole file.
func (u *fileUpload) sendDeltaOrWhole(ctx context.Context, basisSum string) error {
	var ops []upload.Op
	var deltaWire int64
	if basisSum != "" {
		if ops = u.s.Cache.Delta(basisSum, u.local, u.sum); ops != nil {
			deltaWire = int64(len(upload.DeltaStdin(ops)))
			if deltaWire <= smallDelta {
				return u.sendDelta(ctx, ops)
			}
		}
	}
	comp, err := upload.Compress(u.local, u.sum, u.size, u.offer.Codec())
	if err != nil {
		return err
	}
	if ops != nil && deltaWire < wireSize(comp, u.size) {
		return u.sendDelta(ctx, ops)
	}
	return u.sendWhole(ctx, comp)
}

// guess starts making a patch against the file this machine last sent
// from the same local path, before the server names its basis: that is
// the live version's file on every server deployed from here. The patch is
// made, and its first bytes sent, while the check goes out and comes back
// (see earlyPatch). Not for a server known to have no zstd.
func (u *fileUpload) guess(ctx context.Context) {
	s := u.s
	if s.Plan || s.Cache == nil || u.basis == "" || upload.LocalZstd() == "" || !s.Cache.Patches(s.Addr()) {
		return
	}
	last := s.Cache.Last(u.local)
	if last == "" || last == u.sum {
		return
	}
	if p := s.Cache.Patch(ctx, last, u.local, u.sum); p != nil && os.Getenv("RAIJIN_EARLY_PATCH") != "0" {
		u.early = u.sendEarly(ctx, p, last)
	}
}

// earlyPatch is a patch on its way to the server before the check's
// answer: the server opens the session, starts zstd and loads the basis
// while the check goes out and back, and takes up to earlyBytes, never the
// patch's last byte. Only when the answer names the guessed basis is the
// rest released; otherwise the stream is cut, so that a wrong guess (a
// server rolled back, deployed from elsewhere) costs at most earlyBytes
// (in practice what the link carried while it waited for the answer
// anyway, and what sat in the SSH channel's window then), and the server's
// zstd fails on the patch cut short and removes its temporary file. Either
// the release or the cut happens, never both.
type earlyPatch struct {
	basisSum string
	patch    *upload.Patching
	gate     chan struct{} // closed by release: the rest may go
	cut      chan struct{} // closed by stop or settle: the stream ends here
	mu       sync.Mutex
	released bool
	wasCut   bool
	done     chan struct{} // closed when the step has ended
	answered bool          // the check's answer came (under the session's mu)
	res      Result
	err      error
}

// earlyBytes go before the check's answer at most. The answer usually
// comes before zstd's first bytes (the server reads the basis's sum from
// its note); when it is slow (a basis without a note is hashed, a busy
// server) the link keeps busy meanwhile: measured at 50 Mbit/s, 256 kB left
// it idle for 0.5 to 0.8 s, and 4 MB for 0.1 to 0.6 s once the server took
// the patch into a file as it came (see upload.PatchScript) instead of
// leaving it in the SSH channel's window until zstd had loaded the basis.
// A wrong guess costs these bytes, and little time: the link would have
// stood idle until the answer; what is still queued then (up to the
// server's window, 2 MB for OpenSSH: 1.6 s at 10 Mbit/s) drains, and the
// cut session ends once the server's zstd has loaded the basis and decoded
// what came (0.2 to 0.4 s measured for 4 to 16 MB). To a server whose last
// guess was wrong (deployed from two machines in turn, say) only
// earlyBytesAfterMiss go.
const (
	earlyBytes          = 16 << 20
	earlyBytesAfterMiss = 256 << 10
)

// earlyWait bounds how long an early patch waits for the check's answer.
const earlyWait = 2 * time.Minute

func (u *fileUpload) sendEarly(ctx context.Context, p *upload.Patching, basisSum string) *earlyPatch {
	s := u.s
	e := &earlyPatch{basisSum: basisSum, patch: p, gate: make(chan struct{}), cut: make(chan struct{}), done: make(chan struct{})}
	limit := int64(earlyBytes)
	if !s.Cache.GuessedRight(s.Addr()) {
		limit = earlyBytesAfterMiss
	}
	st := u.patchStep(fmt.Sprintf("upload %s -> %s as a zstd patch against %s (on stdin while zstd makes it, up to %d kB before the check)",
		u.local, u.remote, u.basis, limit>>10))
	st.Input = u.progressStream(ctx, p.Stream, p.GatedReader(ctx, limit, e.gate, e.cut))
	s.mu.Lock()
	s.early = append(s.early, e)
	s.mu.Unlock()
	timer := time.AfterFunc(earlyWait, e.cutOff)
	go func() {
		defer close(e.done)
		defer timer.Stop()
		e.res, e.err = u.sendOne(ctx, st)
	}()
	return e
}

// release lets the rest of the patch go, unless it was cut.
func (e *earlyPatch) release() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.wasCut && !e.released {
		e.released = true
		close(e.gate)
	}
	return e.released
}

// cutOff ends the stream where it is, unless it was released.
func (e *earlyPatch) cutOff() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.wasCut && !e.released {
		e.wasCut = true
		close(e.cut)
	}
}

// stop cuts the stream and waits for the server's step to end.
func (e *earlyPatch) stop() {
	e.cutOff()
	<-e.done
}

// takeEarly empties the session's list of early patches.
func (s *Session) takeEarly() []*earlyPatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	early := s.early
	s.early = nil
	return early
}

// cutEarly cuts the early patches that will never be released: those whose
// check was not answered (it failed, a step before it did, the queue was
// dropped), or every one when all is true.
func (s *Session) cutEarly(early []*earlyPatch, all bool) {
	for _, e := range early {
		s.mu.Lock()
		answered := e.answered
		s.mu.Unlock()
		if all || !answered {
			e.cutOff()
		}
	}
}

const (
	// A difference whose new bytes are at most this many goes without
	// compressing the whole file to compare.
	smallDelta = 64 << 10
)

func wireSize(c upload.Compressed, size int64) int64 {
	if c.Codec == upload.Plain {
		return size
	}
	return int64(len(c.Data))
}

func (u *fileUpload) markSent() {
	s := u.s
	u.sent = true
	s.mu.Lock()
	s.sent[u.remote] = true
	s.mu.Unlock()
	if s.Cache != nil {
		s.Cache.Put(u.local, u.sum)
	}
	if s.Stats != nil {
		s.Stats.Uploads.Add(1)
	}
}

// dropped explains a connection that died during the upload.
func (u *fileUpload) dropped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("uploading %s to %s: the SSH connection to %s dropped during the upload (%w); the partial file is never used",
		path.Base(u.local), u.remote, u.s.Addr(), err)
}

// sendOne sends one step outside the queue and returns its result.
func (u *fileUpload) sendOne(ctx context.Context, st Step) (Result, error) {
	s := u.s
	s.echo(st.Desc)
	s.countStep(1)
	results, err := s.Conn.Send(ctx, []Step{st}, nil)
	if err != nil {
		return Result{}, u.dropped(ctx, err)
	}
	if len(results) == 0 {
		return Result{}, u.dropped(ctx, io.ErrUnexpectedEOF)
	}
	return results[0], nil
}

// sendWhole streams the whole file on the session's stdin, compressed as
// comp says.
func (u *fileUpload) sendWhole(ctx context.Context, comp upload.Compressed) error {
	s := u.s
	wire := wireSize(comp, u.size)
	how := fmt.Sprintf("%d bytes on stdin", u.size)
	if comp.Codec != upload.Plain {
		how = fmt.Sprintf("%s, %d bytes of %d on stdin", comp.Codec, wire, u.size)
	}
	st := Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Size: wire,
		Desc: fmt.Sprintf("upload %s -> %s (%s)", u.local, u.remote, how),
		Line: upload.ReceiveScript(u.target(), wire, comp.Codec)}
	if !s.Plan {
		var in io.Reader
		if comp.Codec != upload.Plain {
			in = bytes.NewReader(comp.Data)
		} else {
			f, err := os.Open(u.local)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		st.Input = Sized(u.progress(ctx, in, wire), wire)
	}
	res, err := u.sendOne(ctx, st)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return fmt.Errorf("uploading %s to %s on %s failed: %s", path.Base(u.local), u.remote, s.Name(), shell.LastLines(res.Stderr, 3))
	}
	u.markSent()
	return nil
}

// progress reports the bytes of in as they go, to the observer.
func (u *fileUpload) progress(ctx context.Context, in io.Reader, total int64) io.Reader {
	s := u.s
	if s.Observer == nil {
		return in
	}
	return &progressReader{ctx: ctx, r: in, total: total, fn: func(n, total int64) {
		s.Observer.Upload(s.Name(), u.local, u.remote, n, total, false)
	}}
}

// sendPatch rebuilds the file on the server from the basis and a zstd
// patch, streamed as it is made: the server reads it to its end, so no
// size goes before it. When the patch fails (the basis changed since the
// check, a zstd that cannot, a patch that does not rebuild the file on this
// machine) the difference or the whole file goes.
func (u *fileUpload) sendPatch(ctx context.Context, p *upload.Patching) error {
	st := u.patchStep(fmt.Sprintf("upload %s -> %s as a zstd patch against %s (on stdin while zstd makes it)", u.local, u.remote, u.basis))
	st.Input = u.progressStream(ctx, p.Stream, p.Reader(ctx))
	res, err := u.sendOne(ctx, st)
	return u.patched(ctx, p, res, err)
}

// patchStep is the step that rebuilds the file from the patch on stdin.
// Its input is not Sized: the length is known only at the end.
func (u *fileUpload) patchStep(desc string) Step {
	return Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Desc: desc,
		Line: upload.PatchScript(u.basis, u.target())}
}

// patched reads the end of a patch's step: the file is in place, or it
// goes another way.
func (u *fileUpload) patched(ctx context.Context, p *upload.Patching, res Result, err error) error {
	s := u.s
	_, perr := p.Wait(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && perr != nil && errors.Is(err, perr) {
		// The stream ended with its maker's error after all its bytes, and
		// the server's step exited 0: its SHA-256 check passed.
		err, perr = nil, nil
	}
	if err != nil && perr == nil {
		return err // the connection dropped
	}
	if perr != nil || res.Code != 0 {
		why := shell.LastLines(res.Stderr, 1)
		if perr != nil {
			why = perr.Error()
		} else {
			u.offer.Zstd = false // the server's zstd may be what failed: gzip for the whole file
		}
		s.echo(fmt.Sprintf("rebuilding %s from the patch failed (%s); sending it another way", u.remote, why))
		return u.sendDeltaOrWhole(ctx, u.offer.Basis)
	}
	s.echo(fmt.Sprintf("sent %s as a zstd patch against %s (%d bytes of %d, made in %.2f s)", u.remote, u.basis, p.Len(), u.size, p.Took().Seconds()))
	if s.Observer != nil {
		s.Observer.Upload(s.Name(), u.local, u.remote, u.size, u.size, false)
	}
	u.markSent()
	return nil
}

// progressStream reports the bytes read from r, a reader of st, as they
// go, against what was made so far.
func (u *fileUpload) progressStream(ctx context.Context, st *upload.Stream, r io.Reader) io.Reader {
	s := u.s
	if s.Observer == nil {
		return r
	}
	return &progressReader{ctx: ctx, r: r, fn: func(n, _ int64) {
		if total := st.Len(); n < total {
			s.Observer.Upload(s.Name(), u.local, u.remote, n, total, false)
		}
	}}
}

// rebuild sends a step that rebuilds the file from the basis on the server.
// When that fails (a basis changed since the check, so the rebuild is not
// the file; a server whose dd lacks byte offsets or whose zstd cannot) the
// whole file goes.
func (u *fileUpload) rebuild(ctx context.Context, st Step, how string, codec upload.Codec) error {
	s := u.s
	res, err := u.sendOne(ctx, st)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		s.echo(fmt.Sprintf("rebuilding %s %s failed (%s); sending all of it", u.remote, how, shell.LastLines(res.Stderr, 1)))
		return u.sendWholeAfter(ctx, codec)
	}
	if s.Observer != nil {
		s.Observer.Upload(s.Name(), u.local, u.remote, u.size, u.size, false)
	}
	u.markSent()
	return nil
}

// sendWholeAfter sends the whole file after a rebuild failed, compressed
// with codec if that pays.
func (u *fileUpload) sendWholeAfter(ctx context.Context, codec upload.Codec) error {
	comp, err := upload.Compress(u.local, u.sum, u.size, codec)
	if err != nil {
		return err
	}
	return u.sendWhole(ctx, comp)
}

// sendDelta rebuilds the file from basis on the server with dd and printf.
func (u *fileUpload) sendDelta(ctx context.Context, ops []upload.Op) error {
	stdin := upload.DeltaStdin(ops)
	st := Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Size: int64(len(stdin)),
		Desc: fmt.Sprintf("upload %s -> %s by difference against %s (%d pieces, %d new bytes of %d)",
			u.local, u.remote, u.basis, len(ops), upload.DeltaLiteral(ops), u.size),
		Line: upload.DeltaScript(u.basis, u.target(), ops)}
	if len(stdin) > 0 {
		st.Input = Sized(bytes.NewReader(stdin), int64(len(stdin)))
	}
	return u.rebuild(ctx, st, "by difference", u.offer.Codec())
}
