//go:build !unix

package tracker

import "syscall"

// waitReadable returns at once where MSG_PEEK is not available; the
// following Read then waits, holding its buffer.
func waitReadable(syscall.RawConn) error { return nil }
