package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// A patch: the new build compressed with the basis (the live version's
// file, which the server has and this machine's cache holds) as zstd's
// dictionary, the format of `zstd --patch-from`. A real upgrade of a Go
// program moves most of its machine code, so the delta of delta.go, made of
// whole 512-byte pieces of the basis, gives up; zstd finds the matches a
// few bytes long between moved code, and the server rebuilds the file with
// `zstd -d --patch-from=BASIS`.
//
// The patch is made by the zstd command on this machine, when it has one:
// zstd's long-distance matcher indexes a basis of tens of MB in a fraction
// of a second. The Go library raijin compresses with has no such matcher (at
// its default level a 14 MB basis makes the patch hardly smaller than the
// file compressed alone; at its best level it matches the command's result
// but takes 2.4 s where the command takes 0.4 s), so without the command a
// changed build goes whole, compressed. Every patch is checked on this
// machine, decoded by that library, before it is sent.

// patchFromVersion is the first zstd with --patch-from.
var patchFromVersion = [3]int{1, 4, 5}

var zstdVersionRE = regexp.MustCompile(`v(\d+)\.(\d+)\.(\d+)`)

// ZstdPatches reports whether a `zstd -V` line names a version that
// applies patches (--patch-from).
func ZstdPatches(versionLine string) bool {
	m := zstdVersionRE.FindStringSubmatch(versionLine)
	if m == nil {
		return false
	}
	for i := 0; i < 3; i++ {
		n, _ := strconv.Atoi(m[i+1])
		if n != patchFromVersion[i] {
			return n > patchFromVersion[i]
		}
	}
	return true
}

var localZstd struct {
	once sync.Once
	path string
}

// LocalZstd is the zstd command this machine makes patches with, or "".
// RAIJIN_PATCH=0 turns patches off.
func LocalZstd() string {
	localZstd.once.Do(func() {
		if os.Getenv("RAIJIN_PATCH") == "0" {
			return
		}
		p, err := exec.LookPath("zstd")
		if err != nil {
			return
		}
		out, err := exec.Command(p, "-V").Output()
		if err == nil && ZstdPatches(string(out)) {
			localZstd.path = p
		}
	})
	return localZstd.path
}

// PatchLevel is the zstd level of patches: 3 makes a 45 MB binary's patch
// in a quarter of a second; 19 makes it a quarter smaller in 20 s.
const PatchLevel = 3

// Patch is the local file (whose SHA-256 is sum) as a zstd patch against
// the cached file basisSum, as a stream: zstd writes it while the first
// server already reads it, and this machine decodes it alongside, with the
// basis as dictionary, and ends the stream with an error when it does not
// rebuild the file exactly (the server checks the SHA-256 too, before it
// renames anything into place). nil when there is no zstd command here or
// the cache lacks the basis. Made once per run for each pair, by the first
// caller (a guess made before the server named its basis, say); the others
// read the same bytes.
func (c *Cache) Patch(ctx context.Context, basisSum, local, sum string) *Patching {
	zstdCmd := LocalZstd()
	if zstdCmd == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{basisSum, sum}
	if p := c.patches[key]; p != nil {
		return p
	}
	if st, err := os.Stat(c.path(basisSum)); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	c.use(basisSum) // kept while zstd reads it
	p := &Patching{Stream: NewStream(), start: time.Now()}
	if c.patches == nil {
		c.patches = map[[2]string]*Patching{}
	}
	c.patches[key] = p
	// zstd reads the basis from the cache's file; the check here maps the
	// same file. Its SHA-256 is not checked again: a cached file damaged
	// since it was kept gives a patch that rebuilds here but not on the
	// server, which then refuses the result, and the file goes another way
	// (the difference checks the basis's SHA-256 before it is made).
	// Not cancelled with the caller: other hosts may read the same stream
	// after this one's phase ended.
	go p.make(context.WithoutCancel(ctx), zstdCmd, c.path(basisSum), local, sum)
	return p
}

// Prepare hashes the local file and starts its patch against the file last
// sent from the same path (see Cache.Last), in the background: a deploy
// calls it when its build is done, so that both are under way while the
// hosts' first phases run and the server is asked what it has. Uploads
// find both made once per run. Nothing happens without a cache, a zstd
// command, or an earlier file from the path.
func Prepare(ctx context.Context, c *Cache, local string) {
	if c == nil || LocalZstd() == "" {
		return
	}
	st, err := os.Stat(local)
	if err != nil || !st.Mode().IsRegular() || st.Size() < MinDeltaSize {
		return
	}
	last := c.Last(local)
	if last == "" {
		return
	}
	go func() {
		if sum, err := FileSHA256(local); err == nil && sum != last {
			c.Patch(ctx, last, local, sum)
		}
	}()
}

// Making reports whether a patch of sum against basisSum was started in
// this run.
func (c *Cache) Making(basisSum, sum string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.patches[[2]string{basisSum, sum}] != nil
}

// Patching is a patch being made.
type Patching struct {
	*Stream
	start time.Time
	took  time.Duration // set before the stream ends
}

// Took is how long the patch took to make, once it is made.
func (p *Patching) Took() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.took
}

// ErrBadPatch ends a patch stream that does not rebuild the file.
var ErrBadPatch = errors.New("the patch does not rebuild the file on this machine")

func (p *Patching) make(ctx context.Context, zstdCmd, basisPath, local, sum string) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, zstdCmd, "-q", "-c", fmt.Sprintf("-%d", PatchLevel), "--patch-from="+basisPath, "--", local)
	cmd.Env = withHugePages(os.Environ())
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(p.Stream, pw), &stderr
	checked := make(chan bool, 1)
	go func() {
		b, unmap, err := mapFile(basisPath)
		checked <- err == nil && rebuildsFrom(b, pr, sum)
		io.Copy(io.Discard, pr) // when the basis could not be read
		if err == nil {
			unmap()
		}
	}()
	err := cmd.Run()
	pw.CloseWithError(err)
	ok := <-checked
	p.mu.Lock()
	p.took = time.Since(p.start)
	p.mu.Unlock()
	switch {
	case err != nil:
		p.Finish(fmt.Errorf("zstd could not make the patch: %v %s", err, bytes.TrimSpace(stderr.Bytes())))
	case !ok:
		p.Finish(ErrBadPatch)
	default:
		p.Finish(nil)
	}
}

// withHugePages is env with HugePages added to its GLIBC_TUNABLES (a list
// separated by colons, applied in order; a setting of the user's stays,
// after it, and wins).
func withHugePages(env []string) []string {
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GLIBC_TUNABLES="); ok {
			out := append([]string(nil), env...)
			if out[i] = HugePages; v != "" {
				out[i] += ":" + v
			}
			return out
		}
	}
	return append(env[:len(env):len(env)], HugePages)
}

// rebuildsFrom reports whether the patch read from r, applied to basis,
// gives the file whose SHA-256 is sum. It reads r to its end whatever
// happens, so the writer never blocks.
func rebuildsFrom(basis []byte, r io.Reader, sum string) bool {
	defer io.Copy(io.Discard, r)
	d, err := zstd.NewReader(r, zstd.WithDecoderDictRaw(0, basis), zstd.WithDecoderMaxWindow(1<<31),
		zstd.WithDecoderConcurrency(1))
	if err != nil {
		return false
	}
	defer d.Close()
	h := sha256.New()
	if _, err := io.Copy(h, d); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}
