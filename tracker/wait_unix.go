//go:build unix

package tracker

import "syscall"

// waitReadable parks until the socket has data (or an error or EOF to
// report) without holding a buffer: a one-byte MSG_PEEK tells whether
// anything is there, and RawConn.Read waits in the runtime's poller when
// not. It honours the read deadline.
func waitReadable(rc syscall.RawConn) error {
	var one [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Data, EOF or an error all end the wait: the following Read
		// reports which.
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}

// shutdownSocket shuts both directions of the socket down without closing
// it, so its reader sees the end of the stream.
func shutdownSocket(rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

// writeNonBlocking writes what the socket takes now, without waiting. It
// returns the bytes written; a full socket buffer is not an error.
func writeNonBlocking(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	// Control, not Write: RawConn.Write fails once a write deadline set by
	// an earlier blocking write has passed, and this write never waits.
	err := rc.Control(func(fd uintptr) { n, werr = writeNow(int(fd), b) })
	if n < 0 {
		n = 0
	}
	if err != nil {
		return n, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		werr = nil
	}
	return n, werr
}
