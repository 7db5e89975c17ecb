package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

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
	next := u.sendWhole
	if f := strings.Fields(strings.Join(lines[1:], " ")); len(f) > 0 && s.Cache != nil && u.basis != "" {
		if ops := s.Cache.Delta(f[0], u.local, u.sum); ops != nil {
			next = func(ctx context.Context) error { return u.sendDelta(ctx, ops) }
		}
	}
	s.mu.Lock()
	s.after = append(s.after, next)
	s.mu.Unlock()
	return nil
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

// sendWhole streams the whole file on the session's stdin.
func (u *fileUpload) sendWhole(ctx context.Context) error {
	s := u.s
	st := Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Size: u.size,
		Desc: fmt.Sprintf("upload %s -> %s (%d bytes on stdin)", u.local, u.remote, u.size),
		Line: upload.ReceiveScript(u.remote, u.sum, u.size, u.mode)}
	if !s.Plan {
		f, err := os.Open(u.local)
		if err != nil {
			return err
		}
		defer f.Close()
		var in io.Reader = f
		if s.Observer != nil {
			in = &progressReader{ctx: ctx, r: f, total: u.size, fn: func(n, total int64) {
				s.Observer.Upload(s.Name(), u.local, u.remote, n, total, false)
			}}
		}
		st.Input = Sized(in, u.size)
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

// sendDelta rebuilds the file from basis on the server; when that fails (a
// server whose dd lacks byte offsets, say, or a basis changed since the
// check, so the rebuild is not the file) the whole file is sent.
func (u *fileUpload) sendDelta(ctx context.Context, ops []upload.Op) error {
	s := u.s
	stdin := upload.DeltaStdin(ops)
	st := Step{Kind: "upload", Local: u.local, Path: u.remote, Mode: u.mode, Size: int64(len(stdin)),
		Desc: fmt.Sprintf("upload %s -> %s by difference against %s (%d pieces, %d new bytes of %d)",
			u.local, u.remote, u.basis, len(ops), upload.DeltaLiteral(ops), u.size),
		Line: upload.DeltaScript(u.basis, u.remote, u.sum, ops, u.size, u.mode)}
	if len(stdin) > 0 {
		st.Input = Sized(bytes.NewReader(stdin), int64(len(stdin)))
	}
	res, err := u.sendOne(ctx, st)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		s.echo(fmt.Sprintf("rebuilding %s failed (%s); sending all of it", u.remote, shell.LastLines(res.Stderr, 1)))
		return u.sendWhole(ctx)
	}
	if s.Observer != nil {
		s.Observer.Upload(s.Name(), u.local, u.remote, u.size, u.size, false)
	}
	u.markSent()
	return nil
}
