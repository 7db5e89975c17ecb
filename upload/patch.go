package upload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
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
// the cached file basisSum, checked to rebuild the file exactly; nil when
// there is no zstd command here, the cache lacks the basis, or the patch
// fails its check. Made once per run for each pair (hosts wait for the
// first to make it); an attempt cut short by its context is not kept.
func (c *Cache) Patch(ctx context.Context, basisSum, local, sum string) (patch []byte, took time.Duration) {
	zstdCmd := LocalZstd()
	if zstdCmd == "" {
		return nil, 0
	}
	c.mu.Lock()
	key := [2]string{basisSum, sum}
	o := c.patches[key]
	if o == nil {
		o = &patchOnce{}
		if c.patches == nil {
			c.patches = map[[2]string]*patchOnce{}
		}
		c.patches[key] = o
	}
	basis, ok := c.load(basisSum)
	c.mu.Unlock()
	if !ok {
		return nil, 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		t0 := time.Now()
		o.patch = makePatch(ctx, zstdCmd, c.path(basisSum), basis, local, sum)
		o.took = time.Since(t0)
		o.done = ctx.Err() == nil
	}
	return o.patch, o.took
}

type patchOnce struct {
	mu    sync.Mutex
	done  bool
	patch []byte
	took  time.Duration
}

func makePatch(ctx context.Context, zstdCmd, basisPath string, basis []byte, local, sum string) []byte {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, zstdCmd, "-q", "-c", fmt.Sprintf("-%d", PatchLevel), "--patch-from="+basisPath, "--", local)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil
	}
	if !PatchRebuilds(basis, out.Bytes(), sum) {
		return nil
	}
	return out.Bytes()
}

// PatchRebuilds reports whether patch, applied to basis, gives the file
// whose SHA-256 is sum.
func PatchRebuilds(basis, patch []byte, sum string) bool {
	d, err := zstd.NewReader(nil, zstd.WithDecoderDictRaw(0, basis), zstd.WithDecoderMaxWindow(1<<31),
		zstd.WithDecoderConcurrency(1))
	if err != nil {
		return false
	}
	defer d.Close()
	got, err := d.DecodeAll(patch, nil)
	return err == nil && SHA256Hex(got) == sum
}
