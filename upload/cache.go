package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

	// mu guards the maps only: files are read, deltas worked out and
	// patches made outside it, each once per run, so that a patch can be
	// made while the delta of the same pair is worked out.
	mu      sync.Mutex
	loads   map[string]*loadOnce
	deltas  map[[2]string]*deltaOnce
	patches map[[2]string]*Patching
	put     map[string]bool
}

type loadOnce struct {
	once sync.Once
	b    []byte
}

type deltaOnce struct {
	once sync.Once
	ops  []Op
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

// use marks the cached file sum as read in this run (Put keeps it) and
// returns its entry. Called with c.mu held.
func (c *Cache) use(sum string) *loadOnce {
	o := c.loads[sum]
	if o == nil {
		o = &loadOnce{}
		if c.loads == nil {
			c.loads = map[string]*loadOnce{}
		}
		c.loads[sum] = o
	}
	return o
}

// load reads a cached file once per run; a file missing or damaged is
// no basis.
func (c *Cache) load(sum string) ([]byte, bool) {
	c.mu.Lock()
	o := c.use(sum)
	c.mu.Unlock()
	o.once.Do(func() {
		b, err := os.ReadFile(c.path(sum))
		if err == nil && SHA256Hex(b) == sum {
			o.b = b
		}
	})
	return o.b, o.b != nil
}

// Delta describes the local file (whose SHA-256 is sum) against the cached
// file basisSum, or returns nil when the cache lacks it or a delta would not
// pay. It is worked out once per run for each pair.
func (c *Cache) Delta(basisSum, local, sum string) []Op {
	c.mu.Lock()
	key := [2]string{basisSum, sum}
	o := c.deltas[key]
	if o == nil {
		o = &deltaOnce{}
		if c.deltas == nil {
			c.deltas = map[[2]string]*deltaOnce{}
		}
		c.deltas[key] = o
	}
	c.mu.Unlock()
	o.once.Do(func() {
		basis, ok := c.load(basisSum)
		if !ok {
			return
		}
		if target, err := os.ReadFile(local); err == nil && SHA256Hex(target) == sum {
			ops := computeDelta(basis, target)
			if ops != nil && deltaRebuilds(basis, target, ops) {
				o.ops = ops // never send a delta that does not rebuild the file
			}
		}
	})
	return o.ops
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
	c.noteLast(local, sum)
	dst := c.path(sum)
	if _, err := os.Stat(dst); err == nil {
		now := time.Now()
		os.Chtimes(dst, now, now) // the newest again
	} else if err := copyToCache(local, dst); err != nil {
		return
	}
	sums := c.Sums()
	for _, old := range sums[min(len(sums), c.Keep):] {
		if c.loads[old] == nil { // a basis this run uses stays (a patch reads its file)
			os.Remove(c.path(old))
		}
	}
	// Notes of the last file sent from a path go with their file.
	notes, _ := filepath.Glob(filepath.Join(c.Dir, "last-*"))
	for _, n := range notes {
		b, err := os.ReadFile(n)
		if sum := strings.TrimSpace(string(b)); err == nil && isSHA256(sum) {
			if _, err := os.Stat(c.path(sum)); err == nil {
				continue
			}
		}
		os.Remove(n)
	}
}

// lastName is the name of the note that says which file was last sent or
// found on a server for the local path p.
func (c *Cache) lastName(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return filepath.Join(c.Dir, "last-"+SHA256Hex([]byte(p))[:32])
}

func (c *Cache) noteLast(local, sum string) {
	if os.MkdirAll(c.Dir, 0o700) == nil {
		os.WriteFile(c.lastName(local), []byte(sum+"\n"), 0o600)
	}
}

// A host mark is an empty file in the cache directory that says something
// went wrong with a server (named by its address) at its last upload:
// "nopatch", it could not apply zstd patches; "missed", the basis guessed
// for it was not its own. Marks are set on the bad news and removed on the
// good.
func (c *Cache) hostMark(kind, addr string) string {
	return filepath.Join(c.Dir, kind+"-"+SHA256Hex([]byte(addr))[:32])
}

func (c *Cache) setHostMark(kind, addr string, bad bool) {
	if !bad {
		os.Remove(c.hostMark(kind, addr))
	} else if os.MkdirAll(c.Dir, 0o700) == nil {
		os.WriteFile(c.hostMark(kind, addr), nil, 0o600)
	}
}

func (c *Cache) hostMarked(kind, addr string) bool {
	_, err := os.Stat(c.hostMark(kind, addr))
	return err == nil
}

// NotePatches keeps whether the server at addr applies zstd patches (it
// said so in its last check), so that no patch goes to one that cannot
// before its check's answer.
func (c *Cache) NotePatches(addr string, ok bool) { c.setHostMark("nopatch", addr, !ok) }

// Patches reports whether the server at addr applied zstd patches at its
// last check, as far as this machine knows (yes when it never asked).
func (c *Cache) Patches(addr string) bool { return !c.hostMarked("nopatch", addr) }

// NoteGuess keeps whether the basis guessed for the server at addr (see
// Last) was the one it named.
func (c *Cache) NoteGuess(addr string, right bool) { c.setHostMark("missed", addr, !right) }

// GuessedRight reports whether the last basis guessed for the server at
// addr was its own (yes when none was guessed yet).
func (c *Cache) GuessedRight(addr string) bool { return !c.hostMarked("missed", addr) }

// Last is the SHA-256 of the file last sent (or found on a server) for
// the local path, when the cache still holds a copy of it: the likeliest
// basis of the next upload from that path, worth a patch before the server
// names its own. "" when there is none.
func (c *Cache) Last(local string) string {
	b, err := os.ReadFile(c.lastName(local))
	sum := strings.TrimSpace(string(b))
	if err != nil || !isSHA256(sum) {
		return ""
	}
	if _, err := os.Stat(c.path(sum)); err != nil {
		return ""
	}
	return sum
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
