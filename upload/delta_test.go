package upload

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func splice(b []byte, at, del int, ins []byte) []byte {
	out := append([]byte{}, b[:at]...)
	out = append(out, ins...)
	return append(out, b[at+del:]...)
}

// A delta rebuilds the new file exactly, through the real shell tools the
// server uses (dd, printf, head), and stays small for small changes.
func TestDeltaRebuildsChangedFiles(t *testing.T) {
	basis := randomBytes(1, 300_000)
	sub := append([]byte{}, basis...)
	copy(sub[4000:], "version 2.0.0")
	sub[250_000] ^= 0xff
	cases := map[string]struct {
		target    []byte
		maxLit    int
		maxCopies int
	}{
		"substitutions":  {sub, 64, 4},
		"insertion":      {splice(basis, 100_000, 0, randomBytes(2, 1000)), 1100, 3},
		"deletion":       {splice(basis, 100_000, 5000, nil), 0, 3},
		"prefix":         {append([]byte("#!new header\n"), basis...), 600, 2},
		"appended":       {append(append([]byte{}, basis...), randomBytes(3, 700)...), 700, 2},
		"nul and quotes": {splice(basis, 7, 3, []byte("\x00'\"%\\\n$")), 600, 3},
	}
	dir := t.TempDir()
	bpath := filepath.Join(dir, "basis")
	if err := os.WriteFile(bpath, basis, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ops := computeDelta(basis, tc.target)
			if ops == nil {
				t.Fatal("no delta for a small change")
			}
			if !bytes.Equal(applyDelta(basis, ops), tc.target) || !deltaRebuilds(basis, tc.target, ops) {
				t.Fatal("the delta does not rebuild the target")
			}
			if deltaRebuilds(basis, tc.target[1:], ops) {
				t.Fatal("deltaRebuilds accepts a delta for another file")
			}
			copies := 0
			for _, op := range ops {
				if op.Lit == nil {
					copies++
				}
			}
			if lit := DeltaLiteral(ops); lit > tc.maxLit || copies > tc.maxCopies {
				t.Errorf("%d new bytes in %d pieces of the basis, want at most %d and %d", lit, copies, tc.maxLit, tc.maxCopies)
			}
			remote := filepath.Join(dir, name+".out")
			c := exec.Command("sh", "-c", DeltaScript(bpath, Target{remote, SHA256Hex(tc.target), int64(len(tc.target)), 0o750, false}, ops))
			c.Stdin = bytes.NewReader(DeltaStdin(ops))
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("the script failed: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(remote)
			if !bytes.Equal(got, tc.target) {
				t.Fatalf("the server's rebuild differs from the file (%d bytes, want %d)", len(got), len(tc.target))
			}
			if st, _ := os.Stat(remote); st.Mode().Perm() != 0o750 {
				t.Errorf("mode %v", st.Mode())
			}
		})
	}
}

// A file with nothing in common is sent whole.
func TestDeltaGivesUpWhenItDoesNotPay(t *testing.T) {
	if ops := computeDelta(randomBytes(1, 100_000), randomBytes(9, 100_000)); ops != nil {
		t.Errorf("a delta of %d pieces for unrelated files", len(ops))
	}
	if ops := computeDelta([]byte("short"), []byte("shorter")); ops != nil {
		t.Error("a delta for files smaller than a block")
	}
}

// The upload cache keeps the newest files and never serves a damaged copy.
func TestUploadCacheKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	c := &Cache{Dir: filepath.Join(dir, "cache"), Keep: 2}
	var sums []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, "f")
		data := randomBytes(int64(i), MinDeltaSize)
		os.WriteFile(p, data, 0o644)
		sum := SHA256Hex(data)
		c.Put(p, sum)
		sums = append(sums, sum)
	}
	got := c.Sums()
	if len(got) != 2 || got[0] != sums[2] && got[1] != sums[2] {
		t.Fatalf("cache holds %q, want the last two of %q", got, sums)
	}
	os.WriteFile(filepath.Join(c.Dir, sums[2]), []byte("damaged"), 0o600)
	if ops := c.Delta(sums[2], filepath.Join(dir, "f"), sums[2]); ops != nil {
		t.Error("a damaged cached copy was used as a basis")
	}
}

func FuzzDelta(f *testing.F) {
	f.Add(int64(1), uint16(100), uint16(3), []byte("new"))
	f.Add(int64(2), uint16(0), uint16(0), []byte{})
	f.Fuzz(func(t *testing.T, seed int64, at, del uint16, ins []byte) {
		basis := randomBytes(seed, 5000)
		a := int(at) % len(basis)
		d := min(int(del), len(basis)-a)
		target := splice(basis, a, d, ins)
		if ops := computeDelta(basis, target); ops != nil && (!bytes.Equal(applyDelta(basis, ops), target) || !deltaRebuilds(basis, target, ops)) {
			t.Fatalf("delta does not rebuild the target (at %d, del %d, ins %d bytes)", a, d, len(ins))
		}
	})
}

// applyDelta rebuilds the target from basis and ops (what the server does), the plain way.
func applyDelta(basis []byte, ops []Op) []byte {
	var out []byte
	for _, op := range ops {
		if op.Lit != nil {
			out = append(out, op.Lit...)
		} else {
			out = append(out, basis[op.Off:op.Off+op.Len]...)
		}
	}
	return out
}
