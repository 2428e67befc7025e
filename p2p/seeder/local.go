package seeder

import (
	"context"
	"io"
	"sync"

	"github.com/caddy-p2p/caddy-p2p/tracker"
)

// localQueue bounds the messages an in-process tracker connection holds
// for the seeder; more are dropped, as a full socket would be.
const localQueue = 1024

// LocalTracker returns a TrackerDialer that attaches the seeder to a
// tracker running in the same process: no WebSocket, no loopback hop and
// no URL that must be reachable from the server itself.
func LocalTracker(t *tracker.Tracker) TrackerDialer {
	return func(ctx context.Context) (TrackerConn, error) {
		lc := &localConn{in: make(chan []byte, localQueue), done: make(chan struct{})}
		lc.peer = t.AttachLocal(func(msg []byte) bool {
			select {
			case lc.in <- msg:
				return true
			default:
				return false
			}
		})
		return lc, ctx.Err()
	}
}

// localConn is a TrackerConn to an in-process tracker.
type localConn struct {
	peer *tracker.LocalPeer
	in   chan []byte
	done chan struct{}
	once sync.Once
}

func (l *localConn) ReadMessage() ([]byte, error) {
	select {
	case m := <-l.in:
		return m, nil
	case <-l.done:
		return nil, io.EOF
	}
}

func (l *localConn) WriteMessage(msg []byte) error { return l.peer.Handle(msg) }

func (l *localConn) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.peer.Close()
	})
	return nil
}
