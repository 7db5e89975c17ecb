package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sync"

	"github.com/raijin-deploy/raijin/shell"
)

// SumFile is where raijin notes the SHA-256 of a file it uploaded: next to
// it, as .NAME.sha256. The note is trusted while the file is not newer than
// it, so that checking a file of many megabytes does not mean hashing it.
func SumFile(remote string) string {
	return path.Join(path.Dir(remote), "."+path.Base(remote)+".sha256")
}

// knownSum prints the SHA-256 of f: the note raijin left, or else sha256sum's.
func knownSum(f string) string {
	q, n := shell.Quote(f), shell.Quote(SumFile(f))
	return fmt.Sprintf(`{ if [ -f %s ] && ! [ %s -nt %s ]; then read -r s < %s && echo "$s"; else sha256sum %s 2>/dev/null | { read -r s _ && echo "$s"; }; fi; }`, n, q, n, n, q)
}

// noteSum records sum as the SHA-256 of f (see SumFile).
func noteSum(f, sum string) string {
	return fmt.Sprintf("printf '%%s\\n' %s > %s", sum, shell.Quote(SumFile(f)))
}

// CheckScript makes the directory and says "same" (and sets the mode) when
// remote already has sum, else "send", followed by the SHA-256 of basis
// when basis is given and exists (the server's copy to rebuild from).
func CheckScript(remote, sum string, mode os.FileMode, basis string) string {
	r, d := shell.Quote(remote), shell.Quote(path.Dir(remote))
	b := ""
	if basis != "" {
		b = fmt.Sprintf("; if [ -f %s ]; then %s; fi", shell.Quote(basis), knownSum(basis))
	}
	return fmt.Sprintf(`{ [ -d %s ] || mkdir -p %s; } && if [ -f %s ] && [ "$(%s)" = %s ]; then chmod %04o %s && %s && echo same; else echo send%s; fi`,
		d, d, r, knownSum(remote), sum, mode, r, noteSum(remote, sum), b)
}

// ReceiveScript reads exactly size bytes into a temporary file next to
// remote, checks that they all arrived, renames it into place and notes its
// SHA-256. (The SSH connection's message authentication guards the bytes
// themselves.)
func ReceiveScript(remote, sum string, size int64, mode os.FileMode) string {
	r := shell.Quote(remote)
	return fmt.Sprintf(`set -e; t=%s.raijin-$$; trap 'rm -f "$t"' EXIT; head -c %d > "$t"; `+
		`[ "$(wc -c < "$t")" -eq %d ] || { echo "the upload of %s arrived incomplete" >&2; exit 1; }; `+
		`chmod %04o "$t"; mv -f "$t" %s; trap - EXIT; %s`, r, size, size, path.Base(remote), mode, r, noteSum(remote, sum))
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
