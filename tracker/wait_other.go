//go:build !unix

package tracker

import (
	"errors"
	"syscall"
)

// waitReadable returns at once where MSG_PEEK is not available; the
// following Read then waits, holding its buffer.
func waitReadable(syscall.RawConn) error { return nil }

// shutdownSocket is not available here; the caller closes the connection.
func shutdownSocket(syscall.RawConn) error { return errors.New("shutdown not supported") }
