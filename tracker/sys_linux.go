package tracker

import (
	"syscall"
	"unsafe"
)

// The tracker's hot-path calls on non-blocking descriptors (Go's sockets
// always are, and so is the epoll descriptor once its os.File owns it) are
// made without the runtime's syscall bookkeeping. None of them can wait, and
// entering the runtime's syscall state for each woke its monitor thread
// (sysmon) and let it hand the processor to another thread: at 2,000
// announces/s perf put about a sixth of the tracker's CPU time in sysmon's
// sleeps and wake-ups, more than the writes themselves.

// writeNow is write(2) on a non-blocking descriptor.
func writeNow(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

// readNow is read(2) on a non-blocking descriptor.
func readNow(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b) }

// rawIO makes the read or write system call trap on fd with b.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// epollWaitNow is epoll_pwait(2) with a zero timeout: the ready events,
// without waiting. epoll_pwait rather than epoll_wait, which arm64 lacks.
func epollWaitNow(epfd int, events []syscall.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
