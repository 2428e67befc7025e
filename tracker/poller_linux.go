//go:build linux

package tracker

import (
	"context"
	"sync"
	"syscall"
)

// poller watches idle sockets with one epoll instance, so that an idle
// connection costs no goroutine at all. Each registration is one-shot:
// when a socket becomes readable the poller hands it to a short-lived
// goroutine, which reads and handles what arrived and re-arms it. Level
// triggering means data that arrives before the re-arm is reported at once.
type poller struct {
	epfd  int
	mu    sync.Mutex
	conns map[uint64]*conn
	next  uint64
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{epfd: fd, conns: make(map[uint64]*conn)}, nil
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// ctl applies op to c's socket. The socket is reached through RawConn, so
// a socket that was already closed is never touched (its number may have
// been reused).
func (p *poller) ctl(op int, c *conn) error {
	var cerr error
	err := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(c.pollID)), Pad: int32(uint32(c.pollID >> 32))}
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// add registers c; its readiness is then reported to serveReady.
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.next++
	c.pollID = p.next
	p.conns[c.pollID] = c
	p.mu.Unlock()
	if err := p.ctl(syscall.EPOLL_CTL_ADD, c); err != nil {
		p.mu.Lock()
		delete(p.conns, c.pollID)
		p.mu.Unlock()
		return err
	}
	return nil
}

// count returns the number of registered sockets.
func (p *poller) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *poller) rearm(c *conn) error { return p.ctl(syscall.EPOLL_CTL_MOD, c) }

// remove unregisters c; call it before closing the socket.
func (p *poller) remove(c *conn) {
	p.ctl(syscall.EPOLL_CTL_DEL, c)
	p.mu.Lock()
	delete(p.conns, c.pollID)
	p.mu.Unlock()
}

// run dispatches readiness until ctx ends, then finishes the sockets still
// registered (by then they have all been shut down by Tracker.Close).
func (p *poller) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	defer syscall.Close(p.epfd)
	events := make([]syscall.EpollEvent, 256)
	for ctx.Err() == nil {
		n, err := syscall.EpollWait(p.epfd, events, 200)
		if err != nil && err != syscall.EINTR {
			break
		}
		for i := 0; i < n; i++ {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil && c.inFlight.CompareAndSwap(false, true) {
				go c.serveReady()
			}
		}
	}
	p.mu.Lock()
	left := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		left = append(left, c)
	}
	p.mu.Unlock()
	for _, c := range left {
		if c.inFlight.CompareAndSwap(false, true) {
			go c.finish()
		}
	}
}

// pollerAvailable reports that this platform has a poller.
const pollerAvailable = true
