//go:build unix && !linux

package tracker

import "syscall"

// writeNow is write(2) on a non-blocking descriptor (see sys_linux.go).
func writeNow(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
