package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
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
	u, err := s.newUpload(local, remote, mode, basis)
	if err != nil {
		return false, err
	}
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
	offer                upload.Offer // what the server can take, from the check
}

// unbuilt stands for the SHA-256 of a file that --dry-run did not build.
var unbuilt = strings.Repeat("0", 64)

func (s *Session) newUpload(local, remote string, mode os.FileMode, basis string) (*fileUpload, error) {
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
	if s.Cache == nil || u.size < upload.MinDeltaSize || len(s.Cache.Sums()) == 0 {
		u.basis = "" // sent whole: do not ask for the server's copy
	}
	return u, nil
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
	s.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if lines[0] == "same" {
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

// send picks the fewest bytes that rebuild the file on the server: a
// difference against the basis when the change is small, else the smallest
// of that difference, a zstd patch against the basis and the whole file
// (compressed when the server can undo it and the file shrinks). A small
// difference is taken at once: it is worked out in milliseconds, a patch in
// tenths of a second.
func (u *fileUpload) send(ctx context.Context, offer upload.Offer) error {
	s := u.s
	u.offer = offer
	rebuildable := offer.Basis != "" && s.Cache != nil && u.basis != ""
	var ops []upload.Op
	var deltaWire int64
	if rebuildable {
		if ops = s.Cache.Delta(offer.Basis, u.local, u.sum); ops != nil {
			deltaWire = int64(len(upload.DeltaStdin(ops)))
			if deltaWire <= smallDelta {
				return u.sendDelta(ctx, ops)
			}
		}
	}
	// The patch (the zstd command, one core) and the whole file compressed
	// (the library, every core) are made at once: the patch is sent only
	// when it is well under the whole file.
	var patch []byte
	var took time.Duration
	patched := make(chan struct{})
	if rebuildable && offer.ZstdPatch {
		go func() {
			defer close(patched)
			patch, took = s.Cache.Patch(ctx, offer.Basis, u.local, u.sum)
		}()
	} else {
		close(patched)
	}
	comp, err := upload.Compress(u.local, u.sum, u.size, offer.Codec())
	<-patched
	if err != nil {
		return err
	}
	whole := wireSize(comp, u.size)
	if n := int64(len(patch)); patch != nil && n*100 <= whole*patchWorth && (ops == nil || n < deltaWire) {
		return u.sendPatch(ctx, patch, took)
	}
	if ops != nil && deltaWire < whole {
		return u.sendDelta(ctx, ops)
	}
	return u.sendWhole(ctx, comp)
}

const (
	// A difference whose new bytes are at most this many goes without
	// trying a patch (a rebuild with another version string: a few kB).
	smallDelta = 64 << 10
	// A patch goes when it is at most this share (percent) of the whole
	// file as it would go: else the server is spared the rebuild.
	patchWorth = 90
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
		Line: upload.ReceiveScript(u.remote, u.sum, u.size, wire, u.mode, comp.Codec)}
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
// patch; when that fails (the basis changed since the check, a zstd that
// cannot) the whole file goes.
func (u *fileUpload) sendPatch(ctx context.Context, patch []byte, took time.Duration) error {
	wire := int64(len(patch))
	st := Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Size: wire,
		Desc: fmt.Sprintf("upload %s -> %s as a zstd patch against %s (%d bytes of %d on stdin, made in %.2f s)",
			u.local, u.remote, u.basis, wire, u.size, took.Seconds()),
		Line: upload.PatchScript(u.basis, u.remote, u.sum, u.size, wire, u.mode)}
	st.Input = Sized(u.progress(ctx, bytes.NewReader(patch), wire), wire)
	// The server's zstd may be what failed: gzip for the whole file.
	codec := upload.Plain
	if u.offer.Gzip {
		codec = upload.Gzip
	}
	return u.rebuild(ctx, st, "from the patch", codec)
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
		Line: upload.DeltaScript(u.basis, u.remote, u.sum, ops, u.size, u.mode)}
	if len(stdin) > 0 {
		st.Input = Sized(bytes.NewReader(stdin), int64(len(stdin)))
	}
	return u.rebuild(ctx, st, "by difference", u.offer.Codec())
}
