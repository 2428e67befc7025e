package tracker

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// slowHijack holds a hijack until release is closed.
type slowHijack struct {
	http.ResponseWriter
	started, release chan struct{}
}

func (w slowHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	close(w.started)
	<-w.release
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

// socketFDs counts this process's open sockets.
func socketFDs() int {
	e, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, d := range e {
		if l, _ := os.Readlink("/proc/self/fd/" + d.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// An upgrade whose hijack completes after Close has returned gets its
// close frame and its socket closed at once, and starts no goroutine after
// Close's wait (a finalizer used to be the only thing closing it).
func TestUpgradeFinishingDuringCloseClosesTheSocket(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no finalizer may close it for us
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.ServeHTTP(slowHijack{w, started, release}, r)
	}))
	defer srv.Close()
	before := socketFDs()
	done := make(chan error, 1)
	go func() {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			done <- err
			return
		}
		ws.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _, err = ws.ReadMessage()
		ws.Close()
		done <- err
	}()
	<-started
	tr.Close()
	close(release)
	if err := <-done; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("client: %v, want 1001", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for socketFDs() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets open, %d before: the upgraded socket was never closed", socketFDs(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A socket whose upgrade completes after MoveSockets (a reload's cleanup
// does not wait for hijacked requests) follows the move, and one that
// completes after CloseSockets is closed with 1001.
func TestUpgradeInFlightFollowsMoveAndClose(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	old := mustPolicy(t, Config{AnnounceInterval: 30 * time.Second}, nil)
	moved := mustPolicy(t, Config{AnnounceInterval: 60 * time.Second}, nil)
	closing := mustPolicy(t, Config{AnnounceInterval: 90 * time.Second}, nil)
	serve := func(p *Policy, act func()) (interval float64, err error) {
		started, release := make(chan struct{}), make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tr.ServePolicy(slowHijack{w, started, release}, r, p)
		}))
		defer srv.Close()
		type result struct {
			interval float64
			err      error
		}
		got := make(chan result, 1)
		go func() {
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				got <- result{err: err}
				return
			}
			defer ws.Close()
			ws.WriteMessage(websocket.TextMessage, []byte(announce(specInfoHash, specPeerA, 0, "")))
			ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			var m map[string]any
			err = ws.ReadJSON(&m)
			f, _ := m["interval"].(float64)
			got <- result{f, err}
		}()
		<-started
		act()
		close(release)
		r := <-got
		return r.interval, r.err
	}
	if iv, err := serve(old, func() { tr.MoveSockets(old, moved) }); err != nil || iv != 60 {
		t.Errorf("a socket upgraded during a move got interval %v (%v), want the new policy's 60", iv, err)
	}
	if _, err := serve(closing, func() { tr.CloseSockets(closing, "settings changed") }); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("a socket upgraded during a close: %v, want close 1001", err)
	}
}
