package tracker

import (
	"errors"
	"sync"
)

// ErrLocalPeerClosed is returned by LocalPeer.Handle after Close.
var ErrLocalPeerClosed = errors.New("tracker: local peer closed")

// LocalPeer is an in-process client of the tracker, such as the origin's
// own seeding peer when it runs in the same process: it sends requests
// and receives relayed offers and answers exactly as a WebSocket client
// would, without a socket, a frame layer, a per-IP or rate limit or a cap
// on its swarms (Config.MaxSwarmsPerConn). Being in the process, it is
// the origin's own peer (see TrustedEndpoint): Config.SeederFirst picks
// the seeder among local peers only.
type LocalPeer struct {
	mu     sync.Mutex
	c      *conn
	closed bool
}

// AttachLocal connects an in-process peer. deliver receives every message
// the tracker would write to a socket (announce responses, relayed offers
// and answers, failures), each in a slice of its own that it may keep; it
// is called from other peers' request handling and must not block: it
// reports false to drop a message it cannot take.
func (t *Tracker) AttachLocal(deliver func(msg []byte) bool) *LocalPeer {
	return &LocalPeer{c: &conn{t: t, remoteIP: "local", local: deliver}}
}

// Handle processes one request message, as a text frame from a socket.
func (l *LocalPeer) Handle(msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLocalPeerClosed
	}
	cfg := l.c.config()
	l.c.cfg = cfg
	l.c.handle(msg, cfg)
	return nil
}

// Close removes the peer from every swarm it joined, as a socket's close
// does. It is safe to call more than once.
func (l *LocalPeer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.c.t.removeConn(l.c)
	return nil
}
