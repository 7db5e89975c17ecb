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
// fails when f cannot be read. raijin used to note the sum next to each
// file and trust the note while the file was not newer than it; a file
// replaced with its mtime set back fooled that. A note keyed by inode, size,
// mtime and ctime would be harder to fool, but it leans on how precisely
// each filesystem keeps ctime and on the clock never going back; hashing
// leans on nothing, and costs 0.02 to 0.03 s for an 8.5 MB binary (0.1 to
// 0.2 s for 45 MB) on an idle 2-core machine. Reading stdin keeps odd file
// names out of sha256sum's output.
func serverSum(f string) string {
	return fmt.Sprintf(`s=$(sha256sum 2>/dev/null < %s)`, shell.Quote(f))
}

// CheckScript makes the directory and says "same" (and sets the mode) when
// remote already has sum, else "send" and, a line each, what the server can
// take: "zstd" (with its version when basis is given: a patch needs 1.4.5),
// "gzip", and "basis SUM" with the SHA-256 of basis when basis is given and
// exists (the server's copy to rebuild from).
func CheckScript(remote, sum string, mode os.FileMode, basis string) string {
	r, d := shell.Quote(remote), shell.Quote(path.Dir(remote))
	z, b := "echo zstd", ""
	if basis != "" {
		z = `echo "zstd $(zstd -V 2>/dev/null | head -n1)"`
		b = fmt.Sprintf(`; if [ -f %s ] && %s; then echo "basis ${s%%%% *}"; fi`, shell.Quote(basis), serverSum(basis))
	}
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p %s; } && if [ -f %s ] && %s && [ "${s%%%% *}" = %s ]; then chmod %04o %s && echo same; `+
		`else echo send; if command -v zstd >/dev/null; then %s; fi; if command -v gzip >/dev/null; then echo gzip; fi%s; fi`,
		d, d, r, serverSum(remote), shell.Quote(sum), mode, r, z, b)
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

// ReceiveScript reads exactly size bytes into a temporary file next to
// remote, undoing codec, checks that they are the file whose SHA-256 is
// sum and renames it into place.
func ReceiveScript(remote, sum string, size, wire int64, mode os.FileMode, codec Codec) string {
	r := shell.Quote(remote)
	undo := ""
	if codec != Plain {
		undo = fmt.Sprintf(` | %s > "$t" || { printf '%%s could not undo the compression; %%s is left as it was\n' %s %s >&2; exit 1; }`,
			codec.DecompressCommand(), shell.Quote(string(codec)), r)
	} else {
		undo = ` > "$t"`
	}
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; head -c %d%s; %s`,
		r, wire, undo, placeScript(remote, sum, size, mode))
}

// PatchScript makes remote's directory (the patch may go before the check
// that makes it) and rebuilds remote from basis (a path on the server) and a zstd
// patch read on stdin to its end (it goes while it is made, so its length
// is not known before), then checks it and renames it into place as
// ReceiveScript does; the new file is hashed as zstd writes it, not read
// again. The basis is read, never written. --long=31 lets zstd take the
// patch's window whatever the file's size: without it, zstd raises its
// limit only to the basis's size, and a build grown past both 128 MiB and
// its basis would be refused. A patch cut short fails zstd's own check, and
// a wrong file the SHA-256's; a failure of zstd or of the write leaves a
// mark file, as a pipeline's status is its last command's.
func PatchScript(basis, remote, sum string, size int64, mode os.FileMode) string {
	r, b, d := shell.Quote(remote), shell.Quote(basis), shell.Quote(path.Dir(remote))
	return fmt.Sprintf(`set -e; { [ -d %s ] || mkdir -p %s; }; t=%s.raijin-$$; trap 'rm -f "$t" "$t.x"' EXIT; `+
		`s=$( { zstd -dcq --long=31 --patch-from=%s || : > "$t.x"; } | { tee -- "$t" || : > "$t.x"; } | sha256sum ); `+
		`if [ -e "$t.x" ]; then printf 'zstd could not rebuild the file from the patch against %%s (changed on the server?); %%s is left as it was\n' %s %s >&2; exit 1; fi; %s`,
		d, d, r, b, b, r, placeHashed(remote, sum, size, mode))
}

// placeScript renames the temporary file $t into place once its SHA-256 is
// sum. A file that is not (cut short, damaged, rebuilt from a basis that
// changed) is removed and the file in place is left as it was.
func placeScript(remote, sum string, size int64, mode os.FileMode) string {
	return `s=$(sha256sum < "$t"); ` + placeHashed(remote, sum, size, mode)
}

// placeHashed is placeScript with $s already sha256sum's line for $t.
func placeHashed(remote, sum string, size int64, mode os.FileMode) string {
	r, q := shell.Quote(remote), shell.Quote(sum)
	return fmt.Sprintf(`if [ "${s%%%% *}" != %s ]; then `+
		`printf 'the new file is %%s bytes with SHA-256 %%s, not the %d bytes with SHA-256 %%s that were sent; %%s is left as it was\n' "$(wc -c < "$t")" "${s%%%% *}" %s %s >&2; exit 1; fi; `+
		`chmod %04o "$t"; mv -f "$t" %s; trap - EXIT`, q, size, q, r, mode, r)
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

// Digest is what an upload needs to know of its local file.
func Digest(local string) (sum string, st os.FileInfo, err error) {
	if sum, err = FileSHA256(local); err != nil {
		return "", nil, err
	}
	st, err = os.Stat(local)
	return sum, st, err
}
