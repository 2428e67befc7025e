package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// allowOnly is an authorizer that accepts one info_hash.
func allowOnly(ih string) Authorizer {
	return AuthorizerFunc(func(_ context.Context, r AuthRequest) error {
		if r.InfoHash == ih {
			return nil
		}
		return errors.New("unknown stream")
	})
}

// servePolicy serves tr's sockets under p at a URL of their own.
func servePolicy(t *testing.T, tr *Tracker, p *Policy) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.ServePolicy(w, r, p)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func mustPolicy(t *testing.T, cfg Config, auth Authorizer) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg, auth)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPoliciesShareSwarms: sockets of two policies on one tracker meet in
// the same swarms, and each socket gets its own policy's interval and
// authorizer.
func TestPoliciesShareSwarms(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	const other = "swarm-of-policy-open"
	strict := mustPolicy(t, Config{AnnounceInterval: 30 * time.Second}, allowOnly(specInfoHash))
	open := mustPolicy(t, Config{AnnounceInterval: 45 * time.Second}, nil)
	a := dial(t, servePolicy(t, tr, strict))
	b := dial(t, servePolicy(t, tr, open))

	a.send(announce(other, specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] != "not allowed: unknown stream" {
		t.Fatalf("strict policy let %s in: %v", other, r)
	}
	b.send(announce(other, specPeerB, 0, ""))
	if r := b.recv(); r["failure reason"] != nil || r["interval"] != 45.0 {
		t.Fatalf("open policy: %v", r)
	}
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] != nil || r["interval"] != 30.0 {
		t.Fatalf("strict policy, allowed swarm: %v", r)
	}
	b.send(announce(specInfoHash, specPeerB, 1, ""))
	if r := b.recv(); r["incomplete"] != 2.0 {
		t.Fatalf("the two policies' peers are not in one swarm: %v", r)
	}
	if r := a.recv(); r["offer"] == nil {
		t.Fatalf("offer not relayed across policies: %v", r)
	}
}

// TestMoveAndCloseSockets: MoveSockets hands live sockets and the default
// policy (which in-process peers follow) to another policy; CloseSockets
// closes a policy's sockets with 1001 and leaves the others.
func TestMoveAndCloseSockets(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	first := mustPolicy(t, Config{AnnounceInterval: 30 * time.Second}, nil)
	second := mustPolicy(t, Config{AnnounceInterval: 60 * time.Second}, allowOnly(specInfoHash))
	third := mustPolicy(t, Config{}, nil)
	if n := tr.MoveSockets(tr.Policy(), first); n != 0 || tr.Policy() != first {
		t.Fatalf("making first the default: %d moved, default %p", n, tr.Policy())
	}
	a := dial(t, servePolicy(t, tr, first))
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["interval"] != 30.0 {
		t.Fatalf("before the move: %v", r)
	}
	c := dial(t, servePolicy(t, tr, third))
	c.send(announce(specInfoHash, specPeerB, 0, ""))
	c.recv()

	if n := tr.MoveSockets(first, second); n != 1 {
		t.Fatalf("%d sockets moved, want 1", n)
	}
	if tr.Policy() != second {
		t.Fatal("the default policy did not move")
	}
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["interval"] != 60.0 {
		t.Fatalf("after the move: %v", r)
	}
	a.send(announce("swarm-not-allowed-01", specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] == nil {
		t.Fatalf("the moved socket kept the old authorizer: %v", r)
	}

	// An in-process peer follows the default policy's limits but is not
	// judged by its authorizer.
	got := make(chan map[string]any, 4)
	lp := tr.AttachLocal(func(msg []byte) bool {
		var m map[string]any
		json.Unmarshal(msg, &m)
		got <- m
		return true
	})
	defer lp.Close()
	lp.Handle([]byte(announce("swarm-not-allowed-01", "-CP0001-localpeer001", 0, `,"left":0`)))
	if m := <-got; m["failure reason"] != nil || m["interval"] != 60.0 {
		t.Fatalf("in-process peer: %v", m)
	}

	if n := tr.CloseSockets(second, "settings changed"); n != 1 {
		t.Fatalf("%d sockets closed, want 1", n)
	}
	if code := a.expectClose(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	c.send(announce(specInfoHash, specPeerB, 0, ""))
	if r := c.recv(); r["failure reason"] != nil {
		t.Fatalf("a socket of another policy: %v", r)
	}
}

// TestPeerTimeoutIsTheLongestInUse: the swarms are shared, so a peer
// expires only after the longest peer timeout of the policies in use.
func TestPeerTimeoutIsTheLongestInUse(t *testing.T) {
	tr, err := New(Config{AnnounceInterval: time.Second, PeerTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	long := mustPolicy(t, Config{AnnounceInterval: time.Second, PeerTimeout: time.Hour}, nil)
	a := dial(t, servePolicy(t, tr, long))
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	a.recv()
	time.Sleep(2500 * time.Millisecond)
	if _, peers := tr.Swarms().Totals(); peers != 1 {
		t.Fatalf("%d peers after the default's timeout, want 1 (the socket's policy keeps it)", peers)
	}
	if n := tr.Stats().PeersExpired; n != 0 {
		t.Fatalf("%d peers expired", n)
	}
}
