//go:build !unix

package upload

import "os"

// mapFile reads a file of the cache (see mapfile_unix.go).
func mapFile(p string) ([]byte, func(), error) {
	b, err := os.ReadFile(p)
	return b, func() {}, err
}
