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

// writeNonBlocking writes nothing here: every frame takes the queue and the
// writer goroutine.
func writeNonBlocking(syscall.RawConn, []byte) (int, error) { return 0, nil }
