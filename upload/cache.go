package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Cache keeps a copy of the last files raijin uploaded, named by their
// SHA-256, so that the next upload of a changed build can send only what
// changed against the copy the server has (see delta.go). It lives in the
// user's cache directory, readable by the user only.
type Cache struct {
	Dir  string
	Keep int // files kept (the newest)

	mu      sync.Mutex
	loaded  map[string][]byte
	deltas  map[[2]string][]Op
	patches map[[2]string]*patchOnce
	put     map[string]bool
}

var (
	sharedCache     *Cache
	sharedCacheOnce sync.Once
)

// SharedCache is the cache of this user, or nil when there is none
// or RAIJIN_DELTA=0 turns uploads by difference off.
func SharedCache() *Cache {
	sharedCacheOnce.Do(func() {
		if os.Getenv("RAIJIN_DELTA") == "0" {
			return
		}
		dir, err := os.UserCacheDir()
		if err != nil {
			return
		}
		sharedCache = &Cache{Dir: filepath.Join(dir, "raijin", "uploads"), Keep: 6}
	})
	return sharedCache
}

func (c *Cache) path(sum string) string { return filepath.Join(c.Dir, sum) }

// Sums lists the files the cache holds, newest first.
func (c *Cache) Sums() []string {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil
	}
	type ent struct {
		sum string
		t   int64
	}
	var es []ent
	for _, e := range ents {
		if len(e.Name()) != 64 || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			es = append(es, ent{e.Name(), info.ModTime().UnixNano()})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].t > es[j].t })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.sum
	}
	return out
}

// load reads a cached file once per run.
func (c *Cache) load(sum string) ([]byte, bool) {
	if b, ok := c.loaded[sum]; ok {
		return b, b != nil
	}
	b, err := os.ReadFile(c.path(sum))
	if err != nil || SHA256Hex(b) != sum {
		b = nil // missing or damaged: not a basis
	}
	if c.loaded == nil {
		c.loaded = map[string][]byte{}
	}
	c.loaded[sum] = b
	return b, b != nil
}

// Delta describes the local file (whose SHA-256 is sum) against the cached
// file basisSum, or returns nil when the cache lacks it or a delta would not
// pay. It is worked out once per run for each pair.
func (c *Cache) Delta(basisSum, local, sum string) []Op {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{basisSum, sum}
	if ops, ok := c.deltas[key]; ok {
		return ops
	}
	var ops []Op
	if basis, ok := c.load(basisSum); ok {
		if target, err := os.ReadFile(local); err == nil && SHA256Hex(target) == sum {
			ops = computeDelta(basis, target)
			if ops != nil && !deltaRebuilds(basis, target, ops) {
				ops = nil // never send a delta that does not rebuild the file
			}
		}
	}
	if c.deltas == nil {
		c.deltas = map[[2]string][]Op{}
	}
	c.deltas[key] = ops
	return ops
}

// Put keeps a copy of local (whose SHA-256 is sum) and drops the oldest
// copies beyond Keep. Failing to keep one only costs a full upload later.
func (c *Cache) Put(local, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.put[sum] {
		return
	}
	if st, err := os.Stat(local); err != nil || st.Size() < MinDeltaSize {
		return // small files go whole anyway
	}
	if c.put == nil {
		c.put = map[string]bool{}
	}
	c.put[sum] = true
	dst := c.path(sum)
	if _, err := os.Stat(dst); err == nil {
		now := time.Now()
		os.Chtimes(dst, now, now) // the newest again
	} else if err := copyToCache(local, dst); err != nil {
		return
	}
	sums := c.Sums()
	for _, old := range sums[min(len(sums), c.Keep):] {
		if c.loaded[old] == nil { // a basis this run uses stays (a patch reads its file)
			os.Remove(c.path(old))
		}
	}
}

func copyToCache(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func SHA256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
