//go:build unix

package server

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process pid runs on this machine: signal
// 0 checks without sending anything (EPERM: it runs, as another user). It
// works where /proc does not exist (macOS, the BSDs).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
