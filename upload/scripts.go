package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/raijin-deploy/raijin/shell"
)

// serverSum sets s to the SHA-256 of f as the server hashes it now, and
// fails when f cannot be read. Whether the server has the file to send
// already ("same") is always hashed: raijin used to note the sum next to
// each file and trust the note while the file was not newer than it, and a
// file replaced with its mtime set back fooled that. Hashing leans on
// nothing, and costs 0.02 to 0.03 s for an 8.5 MB binary (0.1 to 0.3 s for
// 45 to 82 MB) on an idle 2-core machine. Only the basis's sum may come
// from a note (see basisSum), where a wrong one costs time, never a wrong
// file. Reading stdin keeps odd file names out of sha256sum's output.
func serverSum(f string) string {
	return fmt.Sprintf(`s=$(sha256sum 2>/dev/null < %s)`, shell.Quote(f))
}

// CheckScript makes the directory and says "same" (and sets the mode, when
// it differs: a chmod would move the file's change time and so outdate its
// sum note) when remote already has sum, else "send" and, a line each,
// what the server can take: "zstd" (with its version when basis is given:
// a patch needs 1.4.5), "gzip", and "basis SUM" with the SHA-256 of basis
// when basis is given and exists (the server's copy to rebuild from): from
// its sum note when the note still describes it (see basisSum), else
// hashed.
func CheckScript(remote, sum string, mode os.FileMode, basis string) string {
	r, d := shell.Quote(remote), shell.Quote(path.Dir(remote))
	z, b := "echo zstd", ""
	if basis != "" {
		z = `echo "zstd $(zstd -V 2>/dev/null | head -n1)"`
		b = fmt.Sprintf(`; if [ -f %s ] && %s; then echo "basis ${s%%%% *}"; fi`, shell.Quote(basis), basisSum(basis))
	}
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p %s; } && if [ -f %s ] && %s && [ "${s%%%% *}" = %s ]; then { [ "$(stat -c %%a -- %s 2>/dev/null)" = %o ] || chmod %04o %s; } && echo same; `+
		`else echo send; if command -v zstd >/dev/null; then %s; fi; if command -v gzip >/dev/null; then echo gzip; fi%s; fi`,
		d, d, r, serverSum(remote), shell.Quote(sum), r, mode, mode, r, z, b)
}

// A sum note: the SHA-256 of an uploaded file that later uploads rebuild
// from (Target.Note), written beside it as .NAME.sum when it is put in
// place, with its size, inode, modification and change times, so that the
// next check names the basis without reading all of it (0.3 s for an 82 MB
// binary, while zstd on both ends and the app compete for the CPU). The
// note is trusted only while the file's stat still matches, and even a note
// that lied would cost only time: the basis's sum only picks the copy to
// make a patch or a delta against, and the file rebuilt from it is renamed
// into place only when its own SHA-256 is the one sent. Whether the file in
// place is already the one to send ("same") is never taken from a note.
func sumNote(remote string) string {
	return path.Join(path.Dir(remote), "."+path.Base(remote)+".sum")
}

// statLine is what a sum note keeps of its file (a shell word): size,
// inode, modification and change times, to the nanosecond where the
// filesystem keeps them, in UTC (a change of the server's time zone keeps
// the notes). A write keeps the inode and the mtime can be set back, but
// the change time moves with both.
func statLine(f string) string {
	return fmt.Sprintf(`$(TZ=UTC0 stat -c '%%s:%%i:%%y:%%z' -- %s 2>/dev/null)`, f)
}

// basisSum sets s to the SHA-256 of the basis f: from its sum note while
// the note's stat line is f's, else hashed. The note is read with the
// shell's read, no process, and only when it is a regular file (not a FIFO
// a read would wait on): a line "SUM STAT"; the client checks that SUM is
// 64 hex digits, like every value read back.
func basisSum(f string) string {
	q := shell.Quote(f)
	n := shell.Quote(sumNote(f))
	return fmt.Sprintf(`{ { [ -f %s ] && IFS=' ' read -r s n < %s && [ -n "$n" ] && [ "$n" = "%s" ]; } 2>/dev/null || %s; }`,
		n, n, statLine(q), serverSum(f))
}

// Offer is what the server said it can take, read from CheckScript's
// answer after "send". Values read back are checked like user input.
type Offer struct {
	Zstd, ZstdPatch, Gzip bool
	Basis                 string // SHA-256 of the basis, or ""
}

// ParseOffer reads the lines after "send".
func ParseOffer(lines []string) Offer {
	var o Offer
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "zstd":
			o.Zstd = true
			o.ZstdPatch = ZstdPatches(l)
		case "gzip":
			o.Gzip = true
		case "basis":
			if len(f) == 2 && isSHA256(f[1]) {
				o.Basis = f[1]
			}
		}
	}
	return o
}

// Codec is the compression the server undoes best.
func (o Offer) Codec() Codec {
	switch {
	case o.Zstd:
		return Zstd
	case o.Gzip:
		return Gzip
	}
	return Plain
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Target is a file an upload puts in place: its path on the server, the
// SHA-256 and size of its bytes, its mode, and whether it gets a sum note
// (a file later uploads rebuild from: the distfile of each version).
type Target struct {
	Remote string
	Sum    string
	Size   int64
	Mode   os.FileMode
	Note   bool
}

// ReceiveScript reads exactly wire bytes into a temporary file next to the
// target, undoing codec, checks that they are the file sent and renames it
// into place.
func ReceiveScript(f Target, wire int64, codec Codec) string {
	r := shell.Quote(f.Remote)
	undo := ""
	if codec != Plain {
		undo = fmt.Sprintf(` | %s > "$t" || { printf '%%s could not undo the compression; %%s is left as it was\n' %s %s >&2; exit 1; }`,
			codec.DecompressCommand(), shell.Quote(string(codec)), r)
	} else {
		undo = ` > "$t"`
	}
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; head -c %d%s; %s`,
		r, wire, undo, placeScript(f))
}

// PatchScript makes the target's directory (the patch may go before the
// check that makes it) and rebuilds the file from basis (a path on the
// server) and a zstd patch read on stdin to its end (it goes while it is
// made, so its length is not known before), then checks it and renames it
// into place as ReceiveScript does; the new file is hashed as zstd writes
// it, not read again. The basis is read, never written. --long=31 lets zstd
// take the patch's window whatever the file's size: without it, zstd raises
// its limit only to the basis's size, and a build grown past both 128 MiB
// and its basis would be refused. A patch cut short fails zstd's own check,
// and a wrong file the SHA-256's; a failure of zstd or of the write leaves a
// mark file, as a pipeline's status is its last command's. zstd runs with
// HugePages: loading the basis is most of its start.
//
// The patch is received into a file ($t.p) as fast as it comes, and zstd
// reads it from there as it grows (tail -f until the writer, cat $w, is
// gone): while zstd loads the basis (0.2 to 1 s on a small server), the
// SSH channel's window (2 MB for OpenSSH) would otherwise fill and the link
// stand idle. Only with GNU tail, whose -f reads the file once more after
// the writer is gone (uutils' does not, and BusyBox's has no --pid);
// with another, zstd reads stdin as before. The writer's output goes
// nowhere, so that the session ends with this shell: a failed rebuild
// does not wait for the rest of the patch (the writer then reads the end
// of its input and exits; it is not killed, as it may be gone and its
// process ID another's). The pipeline runs in the foreground, its hash
// into a file ($t.h), so that this shell reaps the writer as soon as it
// exits (a zombie would keep tail --pid waiting), and its status is there
// for wait. A write that fails (a full disk) leaves its own mark ($t.w).
// The temporary files are the deploy user's alone (umask 077; the version
// directory, made before, keeps its usual mode) until the rebuilt file
// gets its mode with the rename.
func PatchScript(basis string, f Target) string {
	r, b, d := shell.Quote(f.Remote), shell.Quote(basis), shell.Quote(path.Dir(f.Remote))
	return fmt.Sprintf(`set -e; { [ -d %s ] || mkdir -p %s; }; umask 077; t=%s.raijin-$$; trap 'rm -f "$t" "$t.x" "$t.p" "$t.w" "$t.h"' EXIT; w=; `+
		`case "$(tail --version 2>/dev/null)" in "tail (GNU coreutils)"*) exec 8<&0; : > "$t.p"; cat <&8 > "$t.p" 2>/dev/null & w=$!; exec 8<&-;; esac; `+
		`{ if [ -n "$w" ]; then tail -c +1 -s 0.02 --pid="$w" -f -- "$t.p"; else cat; fi || : > "$t.x"; } | `+
		`{ %s zstd -dcq --long=31 --patch-from=%s || : > "$t.x"; } | { tee -- "$t" || : > "$t.w"; } | sha256sum > "$t.h" || :; `+
		`{ read -r s < "$t.h"; } 2>/dev/null || s=; [ -n "$s" ] || : > "$t.w"; `+
		`if [ -n "$w" ] && [ ! -e "$t.x" ]; then wait "$w" || : > "$t.w"; fi; rm -f "$t.p" "$t.h"; `+
		`if [ -e "$t.w" ]; then printf 'could not write the rebuilt file next to %%s (is the disk full?); %%s is left as it was\n' %s %s >&2; exit 1; fi; `+
		`if [ -e "$t.x" ]; then printf 'zstd could not rebuild the file from the patch against %%s (changed on the server?); %%s is left as it was\n' %s %s >&2; exit 1; fi; %s`,
		d, d, r, hugePagesPrefix, b, r, r, b, r, placeHashed(f))
}

// placeScript renames the temporary file $t into place once its SHA-256 is
// the target's. A file that is not (cut short, damaged, rebuilt from a
// basis that changed) is removed and the file in place is left as it was.
func placeScript(f Target) string {
	return `s=$(sha256sum < "$t"); ` + placeHashed(f)
}

// placeHashed is placeScript with $s already sha256sum's line for $t. The
// sum note, when the target gets one, is written after the rename, through
// a new file renamed over it (never through a link planted at its name),
// mode 0600: the deploy user's, who reads it at the next check; failing to
// write it costs only a hash then.
func placeHashed(f Target) string {
	r, q := shell.Quote(f.Remote), shell.Quote(f.Sum)
	note := ""
	if f.Note {
		note = fmt.Sprintf(`; { umask 077; printf '%%s %%s\n' %s "%s" > "$t.s" && mv -Tf "$t.s" %s; } 2>/dev/null || rm -f "$t.s"`,
			q, statLine(r), shell.Quote(sumNote(f.Remote)))
	}
	return fmt.Sprintf(`if [ "${s%%%% *}" != %s ]; then `+
		`printf 'the new file is %%s bytes with SHA-256 %%s, not the %d bytes with SHA-256 %%s that were sent; %%s is left as it was\n' "$(wc -c < "$t")" "${s%%%% *}" %s %s >&2; exit 1; fi; `+
		`chmod %04o "$t"; mv -f "$t" %s; trap - EXIT%s`, q, f.Size, q, r, f.Mode, r, note)
}

// shaCache remembers the hash of a file that has not changed (same size and
// modification time), so a deploy to many hosts hashes its distfile once;
// a caller that asks while another hashes the same file waits for that
// hash (the build's end starts one in the background, see Prepare).
var shaCache sync.Map // shaKey -> *shaOnce

type shaKey struct {
	path  string
	size  int64
	mtime int64
}

type shaOnce struct {
	once sync.Once
	sum  string
	err  error
}

// FileSHA256 hashes a local file. The key is the open file's own stat, so
// that a file replaced meanwhile is not hashed under the old one's key.
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
	v, _ := shaCache.LoadOrStore(key, &shaOnce{})
	o := v.(*shaOnce)
	o.once.Do(func() {
		hh := sha256.New()
		if _, o.err = io.Copy(hh, f); o.err == nil {
			o.sum = hex.EncodeToString(hh.Sum(nil))
		}
	})
	if o.err != nil {
		shaCache.CompareAndDelete(key, o) // the next caller tries again
	}
	return o.sum, o.err
}

// Digest is what an upload needs to know of its local file.
func Digest(local string) (sum string, st os.FileInfo, err error) {
	if sum, err = FileSHA256(local); err != nil {
		return "", nil, err
	}
	st, err = os.Stat(local)
	return sum, st, err
}
