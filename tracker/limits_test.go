package tracker

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// localPeer attaches an in-process peer whose messages arrive decoded on
// the returned channel.
func localPeer(t *testing.T, tr *Tracker) (*LocalPeer, chan map[string]any) {
	t.Helper()
	got := make(chan map[string]any, 1024)
	lp := tr.AttachLocal(func(msg []byte) bool {
		var m map[string]any
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Errorf("local peer got bad JSON %q: %v", msg, err)
		}
		got <- m
		return true
	})
	t.Cleanup(func() { lp.Close() })
	return lp, got
}

// recvLocal returns the next message for a local peer.
func recvLocal(t *testing.T, got chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(3 * time.Second):
		t.Fatal("local peer: no message")
		return nil
	}
}

// TestLocalPeerJoinsMoreSwarmsThanASocketMay: the origin's seeder joins
// every variant and audio rendition of every stream twice (hls.js and
// shaka swarms) with one peer id on one LocalPeer, so five streams of 16
// swarms each already exceed MaxSwarmsPerConn; an in-process peer is
// exempt, and still leaves every swarm on Close.
func TestLocalPeerJoinsMoreSwarmsThanASocketMay(t *testing.T) {
	tr, _ := startTracker(t, Config{})
	lp, got := localPeer(t, tr)
	const swarms = 5 * 16
	if swarms <= DefaultMaxSwarmsPerConn {
		t.Fatalf("%d swarms do not exceed the cap of %d", swarms, DefaultMaxSwarmsPerConn)
	}
	for i := range swarms {
		ih := fmt.Sprintf("swarm-%014d", i)
		if err := lp.Handle([]byte(announce(ih, "-CP0001-localpeer001", 0, `,"left":0`))); err != nil {
			t.Fatal(err)
		}
		if m := recvLocal(t, got); m["failure reason"] != nil {
			t.Fatalf("swarm %d: %v", i, m)
		}
	}
	if s, p := tr.Swarms().Totals(); s != swarms || p != swarms {
		t.Fatalf("%d swarms and %d peers, want %d of each", s, p, swarms)
	}
	lp.Close()
	if s, p := tr.Swarms().Totals(); s != 0 || p != 0 {
		t.Fatalf("after Close: %d swarms and %d peers", s, p)
	}
}

// TestExpiredMembershipsFreeTheSwarmCap: P2P Media Loader never sends
// "stopped" and keeps one socket per page, so the swarms a page left end
// by expiry. Those must stop counting toward MaxSwarmsPerConn, while the
// live ones still do.
func TestExpiredMembershipsFreeTheSwarmCap(t *testing.T) {
	tr, url := startTracker(t, Config{MaxSwarmsPerConn: 1, AnnounceInterval: time.Second, PeerTimeout: time.Second})
	a := dial(t, url)
	a.send(announce("swarm-aaaaaaaaaaaaa1", specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] != nil {
		t.Fatalf("first swarm: %v", r)
	}
	waitFor(t, func() bool { _, p := tr.Swarms().Totals(); return p == 0 })
	a.send(announce("swarm-aaaaaaaaaaaaa2", specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] != nil {
		t.Fatalf("socket in no swarm refused a new one: %v", r)
	}
	// Peers expire a second or more after their last announce: the
	// second swarm's membership is still live and fills the cap.
	a.send(announce("swarm-aaaaaaaaaaaaa3", specPeerA, 0, ""))
	r := a.recv()
	if fr, _ := r["failure reason"].(string); !strings.Contains(fr, "too many swarms") || r["info_hash"] != "swarm-aaaaaaaaaaaaa3" {
		t.Fatalf("third swarm with the second live: %v", r)
	}
}

// TestExpiredPeerIDTakenByAnotherSocketFreesTheCap: once a socket's peer
// has expired, another socket may take its peer id in that swarm; the
// first socket no longer holds that membership, for the cap or on close.
func TestExpiredPeerIDTakenByAnotherSocketFreesTheCap(t *testing.T) {
	tr, url := startTracker(t, Config{MaxSwarmsPerConn: 1, AnnounceInterval: time.Second, PeerTimeout: time.Second})
	const ih = "swarm-aaaaaaaaaaaaa1"
	a := dial(t, url)
	a.send(announce(ih, specPeerA, 0, ""))
	a.recv()
	waitFor(t, func() bool { _, p := tr.Swarms().Totals(); return p == 0 })
	b := dial(t, url)
	b.send(announce(ih, specPeerA, 0, ""))
	if r := b.recv(); r["failure reason"] != nil {
		t.Fatalf("expired peer id not free: %v", r)
	}
	a.send(announce("swarm-aaaaaaaaaaaaa2", specPeerB, 0, ""))
	if r := a.recv(); r["failure reason"] != nil {
		t.Fatalf("socket whose only peer id was taken over refused a new swarm: %v", r)
	}
	a.ws.Close()
	waitFor(t, func() bool { return tr.Stats().Connections == 1 })
	if e, _ := tr.Swarms().Scrape(ih); e.Incomplete != 1 {
		t.Fatalf("closing the first socket removed the second's peer: %+v", e)
	}
}

// TestMaxOffersCapsRelaysNotAnnounces: max_offers caps the offers relayed
// per announce. P2P Media Loader always sends 5, so an announce with more
// than the cap is served and its first offers relayed.
func TestMaxOffersCapsRelaysNotAnnounces(t *testing.T) {
	tr, url := startTracker(t, Config{MaxOffers: 3})
	const ih = specInfoHash
	others := make([]*client, 6)
	for i := range others {
		others[i] = dial(t, url)
		others[i].send(announce(ih, fmt.Sprintf("-PM0203-other%07d", i), 0, ""))
		others[i].recv()
	}
	a := dial(t, url)
	a.send(announce(ih, specPeerA, 5, ""))
	if r := a.recv(); r["failure reason"] != nil || r["incomplete"] != float64(len(others)+1) {
		t.Fatalf("reply to a 5-offer announce with max_offers 3: %v", r)
	}
	offered := map[string]bool{}
	for _, o := range others {
		o.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, data, err := o.ws.ReadMessage()
		if err != nil {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil || m["offer"] == nil {
			t.Fatalf("relayed %s, want an offer", data)
		}
		offered[m["offer_id"].(string)] = true
	}
	want := map[string]bool{"offer-id-00000000000": true, "offer-id-00000000001": true, "offer-id-00000000002": true}
	if fmt.Sprint(offered) != fmt.Sprint(want) {
		t.Fatalf("offers relayed %v, want the first 3: %v", offered, want)
	}
	if n := tr.Stats().OffersRelayed; n != 3 {
		t.Fatalf("%d offers relayed, want 3", n)
	}
}

// TestSeederFirstIgnoresSocketsClaimingThePrefix: any client can announce
// the seeder's peer id prefix with left=0. Only the in-process seeder gets
// the "seeder first" offer, and an impostor socket alone in a swarm with a
// new peer gets the offer only as an ordinary random member.
func TestSeederFirstIgnoresSocketsClaimingThePrefix(t *testing.T) {
	tr, url := startTracker(t, Config{SeederFirst: "-CP0001-", MessagesPerSecond: -1})
	const ih = "swarm-seederfirst-01"
	seeder, got := localPeer(t, tr)
	seeder.Handle([]byte(announce(ih, "-CP0001-realseeder01", 0, `,"left":0`)))
	recvLocal(t, got)
	impostor := dial(t, url)
	impostor.send(announce(ih, "-CP0001-impostor0001", 0, `,"left":0`))
	impostor.recv()
	for i := range 10 {
		v := dial(t, url)
		peer := fmt.Sprintf("-PM0203-viewer%06d", i)
		v.send(announce(ih, peer, 1, "")) // one offer: it goes to the seeder
		v.recv()
		if m := recvLocal(t, got); m["offer"] == nil || m["peer_id"] != peer {
			t.Fatalf("viewer %d: seeder got %v, want its offer", i, m)
		}
	}
	impostor.expectSilence(200 * time.Millisecond)

	// Without an in-process seeder the prefix is worth nothing: the new
	// peer's offers go to random members, whoever claims what.
	const alone = "swarm-seederfirst-02"
	impostor = dial(t, url)
	impostor.send(announce(alone, "-CP0001-impostor0002", 0, `,"left":0`))
	impostor.recv()
	other := dial(t, url)
	other.send(announce(alone, "-PM0203-otherpeer001", 0, ""))
	other.recv()
	v := dial(t, url)
	v.send(announce(alone, "-PM0203-newviewer001", 2, ""))
	v.recv()
	if m := impostor.recv(); m["offer"] == nil {
		t.Fatalf("impostor got %v, want an ordinary offer", m)
	}
	if m := other.recv(); m["offer"] == nil {
		t.Fatalf("other peer got %v, want an ordinary offer", m)
	}
}

// TestRateLimitReplyNamesInfoHash: clients drop replies without their own
// info_hash (wire spec §2.4), so the rate-limit notice carries the action
// and info_hash of the message it drops.
func TestRateLimitReplyNamesInfoHash(t *testing.T) {
	_, url := startTracker(t, Config{MessagesPerSecond: 0.001, MessageBurst: 1})
	a := dial(t, url)
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	a.recv()
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	r := a.recv()
	if fr, _ := r["failure reason"].(string); !strings.Contains(fr, "rate limit") || r["action"] != "announce" || r["info_hash"] != specInfoHash {
		t.Fatalf("rate-limited announce: %v", r)
	}
	s := dial(t, url)
	s.send(`{"action":"scrape","info_hash":"` + specInfoHash + `"}`)
	s.recv()
	s.send(`{"action":"scrape","info_hash":"swarm-aaaaaaaaaaaaa1"}`)
	r = s.recv()
	if fr, _ := r["failure reason"].(string); !strings.Contains(fr, "rate limit") || r["action"] != "scrape" || r["info_hash"] != "swarm-aaaaaaaaaaaaa1" {
		t.Fatalf("rate-limited scrape: %v", r)
	}
	m := dial(t, url)
	m.send(`{"action":"scrape"}`)
	m.recv()
	m.send(`{"action":"announce",`) // unreadable: the notice has no info_hash
	r = m.recv()
	if fr, _ := r["failure reason"].(string); !strings.Contains(fr, "rate limit") || r["action"] != "announce" || r["info_hash"] != nil {
		t.Fatalf("rate-limited malformed message: %v", r)
	}
}

// TestSlowReaderIsDroppedByQueuedBytes: a socket that stops reading is
// dropped once the bytes queued for it pass WriteQueueBytes, long before
// a message count would stop large relays piling up.
func TestSlowReaderIsDroppedByQueuedBytes(t *testing.T) {
	const queueBytes = 256 << 10
	tr, url := startTracker(t, Config{WriteQueue: 100000, WriteQueueBytes: queueBytes, MessagesPerSecond: -1})
	slow := dial(t, url)
	slow.send(announce(specInfoHash, specPeerB, 0, ""))
	slow.recv() // then never read again
	a := dial(t, url)
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	a.recv()
	go func() { // drain A's own replies so only the slow socket backs up
		for {
			if _, _, err := a.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	sdp := strings.Repeat("x", 60<<10)
	msg := []byte(`{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerA + `","offers":[{"offer":{"type":"offer","sdp":"` + sdp + `"},"offer_id":"01234567890123456789"}]}`)
	// 48 MiB: more than loopback socket buffers hold, far less than the
	// message count allows.
	sent := 0
	for ; sent < 800 && tr.Stats().SlowDropped == 0; sent++ {
		if err := a.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return tr.Stats().SlowDropped == 1 })
	waitFor(t, func() bool { _, p := tr.Swarms().Totals(); return p == 1 })
	t.Logf("dropped after %d relays of %d KiB", sent, len(sdp)>>10)
}
