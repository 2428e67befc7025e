//go:build linux

package tracker

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// poller watches the tracker's plain TCP sockets with epoll, in one loop
// per two CPUs (see eventLoops), each loop owning the sockets registered
// with it. A loop reads a ready socket and runs the protocol on what
// arrived in place: no goroutine per message and, since only the owning
// loop ever reads a socket, level triggering with no re-arm after each
// read. An idle socket costs no goroutine and no buffer.
//
// Because a loop handles messages itself, nothing on that path may block:
// sends write without waiting or queue (see conn.enqueue), and authorizers
// must answer from memory.
type poller struct {
	loops []*pollLoop
	next  atomic.Uint32
}

// eventLoops is the number of loops for procs usable CPUs: one per two.
// A loop relays about 20,000 offers a second on one core; fewer loops
// batch more messages per wake-up, and with one loop per CPU the tracker
// used 12-27% more CPU per message on 2 cores (trackerbench). The
// other CPUs are left to the writers, the runtime and the rest of Caddy.
func eventLoops(procs int) int { return max(1, (procs+1)/2) }

// pollLoop is one epoll instance and the goroutine that serves it.
type pollLoop struct {
	epfd   int
	mu     sync.Mutex
	conns  map[uint64]*conn
	nextID uint64

	// The loop's read call, made once so a read allocates nothing.
	readBuf []byte
	readN   int
	readErr error
	readFn  func(fd uintptr)
}

func newPoller() (*poller, error) {
	p := &poller{}
	for range eventLoops(runtime.GOMAXPROCS(0)) {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			for _, l := range p.loops {
				syscall.Close(l.epfd)
			}
			return nil, err
		}
		l := &pollLoop{epfd: fd, conns: make(map[uint64]*conn)}
		l.readFn = func(fd uintptr) { l.readN, l.readErr = readNow(int(fd), l.readBuf) }
		p.loops = append(p.loops, l)
	}
	return p, nil
}

// add registers c with one of the loops, in turn; its messages are then
// handled by that loop.
func (p *poller) add(c *conn) error {
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	l.mu.Lock()
	l.nextID++
	c.pollID = l.nextID
	c.loop = l
	l.conns[c.pollID] = c
	l.mu.Unlock()
	var cerr error
	err := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(uint32(c.pollID)), Pad: int32(uint32(c.pollID >> 32))}
		cerr = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		l.mu.Lock()
		delete(l.conns, c.pollID)
		l.mu.Unlock()
		c.loop = nil
		return err
	}
	return nil
}

// count returns the number of registered sockets.
func (p *poller) count() int {
	n := 0
	for _, l := range p.loops {
		l.mu.Lock()
		n += len(l.conns)
		l.mu.Unlock()
	}
	return n
}

// remove unregisters c; call it before closing the socket. The socket is
// reached through RawConn, so one already closed is never touched (its
// number may have been reused).
func (p *poller) remove(c *conn) {
	l := c.loop
	c.raw.Control(func(fd uintptr) { syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
	l.mu.Lock()
	delete(l.conns, c.pollID)
	l.mu.Unlock()
}

// run serves every loop until ctx ends, then finishes the sockets still
// registered (by then they have all been shut down by Tracker.Close).
func (p *poller) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	var loops sync.WaitGroup
	for _, l := range p.loops {
		loops.Add(1)
		go func() {
			defer loops.Done()
			l.run(ctx)
		}()
	}
	loops.Wait()
}

// run waits for ready sockets and serves them until ctx ends, then
// finishes the sockets still registered.
//
// The wait itself goes through the Go runtime's poller, which watches the
// epoll descriptor like any other file: a goroutine blocked in a raw
// epoll_wait would hold a thread in a system call, and the runtime then
// polls every 20 µs to take its processor back, which at a few hundred
// messages a second cost more CPU than the messages did.
func (l *pollLoop) run(ctx context.Context) {
	events := make([]syscall.EpollEvent, 128)
	serve := func(n int) {
		for i := 0; i < n; i++ {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			l.mu.Lock()
			c := l.conns[id]
			l.mu.Unlock()
			if c != nil && !c.readReady(l) {
				c.finish()
			}
		}
	}
	// From here f owns the descriptor and closes it.
	syscall.SetNonblock(l.epfd, true)
	f := os.NewFile(uintptr(l.epfd), "tracker-epoll")
	defer f.Close()
	// Only a file in the runtime's poller takes deadlines, which is also
	// how the wait is stopped.
	rc, err := f.SyscallConn()
	if err == nil && f.SetReadDeadline(time.Time{}) == nil {
		stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
		var n int
		ready := func(fd uintptr) bool {
			for {
				var err error
				n, err = epollWaitNow(int(fd), events)
				if err != syscall.EINTR {
					return n > 0 // false: wait in the runtime's poller
				}
			}
		}
		for ctx.Err() == nil && rc.Read(ready) == nil {
			serve(n)
		}
		stop()
	} else {
		// Not pollable: block in epoll_wait, waking up to check ctx.
		for ctx.Err() == nil {
			n, err := syscall.EpollWait(l.epfd, events, 200)
			if err != nil && err != syscall.EINTR {
				break
			}
			serve(n)
		}
	}
	l.mu.Lock()
	left := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		left = append(left, c)
	}
	l.mu.Unlock()
	for _, c := range left {
		c.finish()
	}
}

// read reads what the socket has without waiting. It returns the bytes
// read, or eof at the end of the stream; no data yet is neither.
func (l *pollLoop) read(rc syscall.RawConn, b []byte) (n int, eof bool, err error) {
	l.readBuf = b
	cerr := rc.Control(l.readFn)
	l.readBuf = nil
	n, err = l.readN, l.readErr
	switch {
	case cerr != nil:
		return 0, false, cerr
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case n == 0:
		return 0, true, nil
	}
	return n, false, nil
}

// pollerAvailable reports that this platform has a poller.
const pollerAvailable = true

// maxReadsPerEvent bounds the reads one readiness event gets, so a socket
// that keeps sending cannot starve the others of its loop; level
// triggering reports it again in the next round.
const maxReadsPerEvent = 16

// readReady runs on c's loop when the socket is readable: it reads what is
// there without waiting and handles the complete messages. A partial frame
// stays in c.pending until the rest arrives (the janitor closes sockets
// silent for the read timeout). It reports whether the socket is still
// open.
func (c *conn) readReady(l *pollLoop) bool {
	c.cfg = c.config()
	c.parser.maxMessage = int(c.cfg.MaxMessageSize)
	if c.pending == nil {
		c.pending = getBuffer()
	}
	open := true
	for range maxReadsPerEvent {
		b := *c.pending
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow; the frame size limit bounds it
		}
		space := cap(b) - len(b)
		n, eof, err := l.read(c.raw, b[len(b):cap(b)])
		*c.pending = b[:len(b)+n]
		if n > 0 && !c.consume(c.pending) {
			open = false
			break
		}
		if eof || err != nil || c.parser.closed {
			open = false
			break
		}
		if n < space {
			break // drained for now
		}
	}
	if len(*c.pending) == 0 {
		putBuffer(c.pending)
		c.pending = nil
	}
	return open
}
