//go:build unix

package upload

import (
	"os"
	"syscall"
)

// mapFile maps a file of the cache read-only: the patch's check reads a
// basis of tens of MB from the page cache without copying it. The cache
// replaces its files by renaming, never in place, so the bytes do not
// change under the mapping. unmap is to be called once they are no longer
// read.
func mapFile(p string) (b []byte, unmap func(), err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return []byte{}, func() {}, nil
	}
	b, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		b, err = os.ReadFile(p)
		return b, func() {}, err
	}
	return b, func() { syscall.Munmap(b) }, nil
}
