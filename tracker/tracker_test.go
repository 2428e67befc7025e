package tracker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestAnnounceResponseMatchesReference(t *testing.T) {
	_, url := startTracker(t, Config{})
	a := dial(t, url)
	// The browser's first announce of §2.4, without offers.
	a.send(`{"numwant":5,"uploaded":0,"downloaded":0,"event":"started","action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerA + `","offers":[]}`)
	got := string(a.recvRaw())
	want := `{"complete":0,"incomplete":1,"action":"announce","interval":120,"info_hash":"tBBwJ0eaWm83RZGsvsTu"}`
	if got != want {
		t.Fatalf("announce response\n got %s\nwant %s", got, want)
	}
}

func TestOfferRelayAndAnswerRouting(t *testing.T) {
	_, url := startTracker(t, Config{})
	a, b := dial(t, url), dial(t, url)
	b.send(announce(specInfoHash, specPeerB, 0, `,"event":"started"`))
	b.recv()
	// A announces with a binary offer_id with control and high bytes.
	a.send(`{"numwant":5,"event":"started","action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerA +
		`","offers":[{"offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":` + binOfferIDJSON + `}]}`)
	if r := a.recv(); r["incomplete"] != 2.0 {
		t.Fatalf("A's announce response: %v", r)
	}
	relayed := b.recvRaw()
	wantRelay := `{"action":"announce","offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":` + binOfferIDJSON +
		`,"peer_id":"` + specPeerA + `","info_hash":"` + specInfoHash + `"}`
	if string(relayed) != wantRelay {
		t.Fatalf("relayed offer\n got %s\nwant %s", relayed, wantRelay)
	}
	// B answers; the answer goes to A without to_peer_id, and B gets no reply.
	b.send(`{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerB + `","to_peer_id":"` + specPeerA +
		`","answer":{"type":"answer","sdp":"v=0\r\n"},"offer_id":` + binOfferIDJSON + `}`)
	got := a.recvRaw()
	wantAnswer := `{"action":"announce","answer":{"type":"answer","sdp":"v=0\r\n"},"offer_id":` + binOfferIDJSON +
		`,"peer_id":"` + specPeerB + `","info_hash":"` + specInfoHash + `"}`
	if string(got) != wantAnswer {
		t.Fatalf("relayed answer\n got %s\nwant %s", got, wantAnswer)
	}
	var m map[string]string
	json.Unmarshal(got, &m)
	if id := m["offer_id"]; len([]rune(id)) != 20 || []rune(id)[7] != 7 {
		t.Fatalf("offer_id did not survive as a binary string: %q", id)
	}
	b.expectSilence(200 * time.Millisecond)
}

func TestHighCodePointsEchoedUnchanged(t *testing.T) {
	_, url := startTracker(t, Config{})
	a, b := dial(t, url), dial(t, url)
	ih := "¥¦§¨©ª«¬®¯°±²³´µ¶·¸ÿ"
	b.send(announce(ih, specPeerB, 0, ""))
	if r := b.recv(); r["info_hash"] != ih {
		t.Fatalf("info_hash changed: %q", r["info_hash"])
	}
	a.send(`{"action":"announce","info_hash":"` + ih + `","peer_id":"` + specPeerA + `","offers":[{"offer":{"type":"offer","sdp":"x"},"offer_id":` + highOfferIDJSON + `}]}`)
	a.recv()
	r := b.recv()
	if r["offer_id"] != "¥¦§¨©ª«¬®¯°±²³´µ¶·¸ÿ" || r["info_hash"] != ih {
		t.Fatalf("relayed offer changed binary fields: %v", r)
	}
}

func TestOffersGoToDistinctOtherSocketsUpToNumwant(t *testing.T) {
	_, url := startTracker(t, Config{})
	const ih = "swarm-distinct-00001"
	a := dial(t, url)
	// A holds two peer ids in the swarm on one socket; neither may get A's offers.
	a.send(announce(ih, "-PM0203-aaaaaaaaaaa1", 0, ""))
	a.recv()
	others := make([]*client, 6)
	for i := range others {
		others[i] = dial(t, url)
		others[i].send(announce(ih, "-PM0203-other0000000"[:19]+string(rune('a'+i)), 0, ""))
		others[i].recv()
	}
	a.send(announce(ih, "-PM0203-aaaaaaaaaaa2", 5, `,"numwant":3`))
	a.recv()
	got := 0
	seenOffers := map[string]bool{}
	for _, o := range others {
		o.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, data, err := o.ws.ReadMessage()
		if err != nil {
			continue
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		if m["peer_id"] != "-PM0203-aaaaaaaaaaa2" {
			t.Fatalf("unexpected message %s", data)
		}
		seenOffers[m["offer_id"].(string)] = true
		got++
	}
	if got != 3 || len(seenOffers) != 3 {
		t.Fatalf("offers relayed to %d sockets (%d distinct offers), want 3", got, len(seenOffers))
	}
	a.expectSilence(200 * time.Millisecond)
}

func TestPeerIDBelongsToFirstSocket(t *testing.T) {
	_, url := startTracker(t, Config{})
	a, thief, b := dial(t, url), dial(t, url), dial(t, url)
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	a.recv()
	thief.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := thief.recv(); !strings.Contains(r["failure reason"].(string), "in use") || r["info_hash"] != specInfoHash {
		t.Fatalf("takeover not refused: %v", r)
	}
	// An answer addressed to A reaches A's socket, never the thief's.
	b.send(announce(specInfoHash, specPeerB, 0, ""))
	b.recv()
	b.send(`{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerB + `","to_peer_id":"` + specPeerA + `","answer":{"type":"answer","sdp":"x"},"offer_id":"01234567890123456789"}`)
	if r := a.recv(); r["answer"] == nil {
		t.Fatalf("A did not get its answer: %v", r)
	}
	thief.expectSilence(200 * time.Millisecond)
}

func TestAnswersStayInTheirSwarm(t *testing.T) {
	_, url := startTracker(t, Config{})
	a, b := dial(t, url), dial(t, url)
	a.send(announce("swarm-one-0000000001", specPeerA, 0, ""))
	a.recv()
	b.send(announce("swarm-two-0000000002", specPeerB, 0, ""))
	b.recv()
	// B answers A, naming its own swarm: A is not a member there.
	b.send(`{"action":"announce","info_hash":"swarm-two-0000000002","peer_id":"` + specPeerB + `","to_peer_id":"` + specPeerA + `","answer":{"type":"answer","sdp":"x"},"offer_id":"01234567890123456789"}`)
	a.expectSilence(200 * time.Millisecond)
}

func TestEventsAndScrape(t *testing.T) {
	tr, url := startTracker(t, Config{})
	a, b, c := dial(t, url), dial(t, url), dial(t, url)
	a.send(announce("swarm-one-0000000001", specPeerA, 0, `,"event":"started"`))
	a.recv()
	b.send(announce("swarm-one-0000000001", specPeerB, 0, `,"event":"completed"`))
	if r := b.recv(); r["complete"] != 1.0 || r["incomplete"] != 1.0 {
		t.Fatalf("after completed: %v", r)
	}
	c.send(announce("swarm-two-0000000002", "-PM0203-cccccccccccc", 0, `,"left":0`))
	c.recv()

	// One info_hash.
	a.send(`{"action":"scrape","info_hash":"swarm-one-0000000001"}`)
	r := a.recv()
	files := r["files"].(map[string]any)
	one := files["swarm-one-0000000001"].(map[string]any)
	if r["action"] != "scrape" || one["complete"] != 1.0 || one["incomplete"] != 1.0 || one["downloaded"] != 1.0 {
		t.Fatalf("scrape one: %v", r)
	}
	// Several, including an unknown one.
	a.send(`{"action":"scrape","info_hash":["swarm-one-0000000001","swarm-two-0000000002","swarm-nil-0000000000"]}`)
	files = a.recv()["files"].(map[string]any)
	if len(files) != 3 || files["swarm-two-0000000002"].(map[string]any)["complete"] != 1.0 ||
		files["swarm-nil-0000000000"].(map[string]any)["incomplete"] != 0.0 {
		t.Fatalf("scrape several: %v", files)
	}
	// All.
	a.send(`{"action":"scrape"}`)
	if files = a.recv()["files"].(map[string]any); len(files) != 2 {
		t.Fatalf("scrape all: %v", files)
	}
	// Stopped removes the peer.
	b.send(announce("swarm-one-0000000001", specPeerB, 0, `,"event":"stopped"`))
	if r := b.recv(); r["complete"] != 0.0 || r["incomplete"] != 1.0 {
		t.Fatalf("after stopped: %v", r)
	}
	// Closing a socket removes everything it held.
	c.ws.Close()
	waitFor(t, func() bool { s, p := tr.Swarms().Totals(); return s == 1 && p == 1 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSilentPeersExpire(t *testing.T) {
	tr, url := startTracker(t, Config{AnnounceInterval: time.Second, PeerTimeout: time.Second})
	a := dial(t, url)
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["interval"] != 1.0 {
		t.Fatalf("interval not applied: %v", r)
	}
	waitFor(t, func() bool { _, p := tr.Swarms().Totals(); return p == 0 })
	if tr.Stats().PeersExpired != 1 {
		t.Fatalf("expired count: %+v", tr.Stats())
	}
	// The socket stays open and can re-join.
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["incomplete"] != 1.0 {
		t.Fatalf("re-join: %v", r)
	}
}

func TestOriginAndPerIPLimits(t *testing.T) {
	_, url := startTracker(t, Config{AllowedOrigins: []string{"https://player.example"}, MaxConnsPerIP: 2})
	if got := httpStatus(t, url, http.Header{"Origin": {"https://evil.example"}}); got != http.StatusForbidden {
		t.Fatalf("foreign origin: status %d", got)
	}
	ok := http.Header{"Origin": {"https://player.example"}}
	for i := 0; i < 2; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(url, ok)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
	}
	if got := httpStatus(t, url, ok); got != http.StatusTooManyRequests {
		t.Fatalf("third connection from one IP: status %d", got)
	}
	if got := httpStatus(t, url, nil); got != http.StatusTooManyRequests {
		t.Fatalf("non-browser client without Origin: status %d, want the per-IP refusal", got)
	}
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired { // no Origin: allowed, but not an upgrade
		t.Fatalf("plain GET: status %d", resp.StatusCode)
	}
}

func TestRateLimitDropsExcessMessages(t *testing.T) {
	tr, url := startTracker(t, Config{MessagesPerSecond: 1, MessageBurst: 3})
	a := dial(t, url)
	for i := 0; i < 10; i++ {
		a.send(`{"action":"scrape","info_hash":"` + specInfoHash + `"}`)
	}
	replies, limited := 0, 0
	for {
		a.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, data, err := a.ws.ReadMessage()
		if err != nil {
			break
		}
		if strings.Contains(string(data), "rate limit") {
			limited++
		} else {
			replies++
		}
	}
	if replies != 3 || limited != 1 {
		t.Fatalf("got %d replies and %d rate-limit notices, want 3 and 1", replies, limited)
	}
	if n := tr.Stats().Failures["rate_limited"]; n != 7 {
		t.Fatalf("rate_limited failures = %d, want 7", n)
	}
}

func TestTooManySwarmsPerSocket(t *testing.T) {
	_, url := startTracker(t, Config{MaxSwarmsPerConn: 2})
	a := dial(t, url)
	for i, ih := range []string{"swarm-aaaaaaaaaaaaa1", "swarm-aaaaaaaaaaaaa2", "swarm-aaaaaaaaaaaaa3"} {
		a.send(announce(ih, specPeerA, 0, ""))
		r := a.recv()
		if fr, _ := r["failure reason"].(string); (i == 2) != strings.Contains(fr, "too many swarms") {
			t.Fatalf("announce %d: %v", i, r)
		}
	}
}

func TestSlowReaderIsDropped(t *testing.T) {
	tr, url := startTracker(t, Config{WriteQueue: 4, MessagesPerSecond: -1, MaxMessageSize: 1 << 20})
	slow := dial(t, url)
	slow.send(announce(specInfoHash, specPeerB, 0, ""))
	slow.recv() // then never read again
	a := dial(t, url)
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	a.recv()
	big := strings.Repeat("x", 256<<10)
	msg := `{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerA + `","offers":[{"offer":{"type":"offer","sdp":"` + big + `"},"offer_id":"01234567890123456789"}]}`
	go func() {
		for i := 0; i < 400 && tr.Stats().SlowDropped == 0; i++ {
			if a.ws.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
				return
			}
		}
	}()
	go func() { // drain A's own replies so only the slow socket backs up
		for {
			if _, _, err := a.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	waitFor(t, func() bool { return tr.Stats().SlowDropped >= 1 })
	waitFor(t, func() bool { _, p := tr.Swarms().Totals(); t.Logf("%+v", tr.Stats()); return p == 1 })
}

func TestAuthorizerDenies(t *testing.T) {
	tr, url := startTracker(t, Config{})
	tr.SetAuthorizer(AuthorizerFunc(func(_ context.Context, r AuthRequest) error {
		if r.InfoHash == specInfoHash {
			return nil
		}
		return errors.New("unknown stream")
	}))
	a := dial(t, url)
	a.send(announce("swarm-not-allowed-01", specPeerA, 0, ""))
	r := a.recv()
	if r["failure reason"] != "not allowed: unknown stream" || r["info_hash"] != "swarm-not-allowed-01" || r["action"] != "announce" {
		t.Fatalf("denied announce: %v", r)
	}
	a.send(announce(specInfoHash, specPeerA, 0, ""))
	if r := a.recv(); r["failure reason"] != nil {
		t.Fatalf("allowed announce: %v", r)
	}
	a.send(`{"action":"scrape","info_hash":"swarm-not-allowed-01"}`)
	if r := a.recv(); r["action"] != "scrape" || r["failure reason"] == nil {
		t.Fatalf("denied scrape: %v", r)
	}
}

func TestCloseEndsSocketsAndGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := newLocalServer(t, tr)
	url := "ws://" + srv.Addr().String()
	clients := make([]*client, 5)
	for i := range clients {
		clients[i] = dial(t, url)
		clients[i].send(announce(specInfoHash, "-PM0203-closeclose0"+string(rune('a'+i)), 1, ""))
		clients[i].recv()
	}
	tr.Close()
	for _, c := range clients {
		if code := c.expectClose(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want %d", code, websocket.CloseGoingAway)
		}
		c.ws.Close()
	}
	srv.Close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+1 })
	if got := httpStatusAfterClose(t, tr); got != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Close: status %d", got)
	}
}

// TestSeederFirstGetsOneOfferOfEachNewPeer: with SeederFirst set, every new
// peer's first offer goes to the in-process seeding member with that
// prefix, the rest to others, and a re-announce is relayed at random again.
func TestSeederFirstGetsOneOfferOfEachNewPeer(t *testing.T) {
	tr, url := startTracker(t, Config{SeederFirst: "-CP0001-"})
	const ih = "swarm-seeder-first01"
	seed, seedGot := localPeer(t, tr)
	seed.Handle([]byte(announce(ih, "-CP0001-seederseeder", 0, `,"left":0`)))
	recvLocal(t, seedGot)
	others := make([]*client, 8)
	for i := range others {
		others[i] = dial(t, url)
		others[i].send(announce(ih, "-PM0203-other000000"+string(rune('a'+i)), 0, ""))
		others[i].recv()
	}
	for round := range 10 {
		b := dial(t, url)
		peer := fmt.Sprintf("-PM0203-newpeer%05d", round)
		b.send(announce(ih, peer, 2, `,"numwant":2`))
		b.recv()
		m := recvLocal(t, seedGot)
		if m["peer_id"] != peer || m["offer"] == nil {
			t.Fatalf("round %d: seeder got %v, want an offer of %s", round, m, peer)
		}
		got := 0
		// A gorilla connection is unusable after a read times out, so the
		// others are read with a fresh one each round.
		for i, o := range others {
			o.ws.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, _, err := o.ws.ReadMessage(); err == nil {
				got++
				continue
			}
			o.ws.Close()
			others[i] = dial(t, url)
			others[i].send(announce(ih, fmt.Sprintf("-PM0203-r%02dother%05d", round, i), 0, ""))
			others[i].recv()
		}
		if got != 1 {
			t.Fatalf("round %d: %d other peers got an offer, want 1", round, got)
		}
		b.ws.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if len(seedGot) > 0 { // exactly one offer per new peer
		t.Fatalf("seeder got more: %v", <-seedGot)
	}
}

// TestLocalPeer: an in-process peer announces, is relayed a socket
// peer's offer, and leaves every swarm on Close.
func TestLocalPeer(t *testing.T) {
	tr, url := startTracker(t, Config{})
	const ih = "swarm-local-peer-001"
	got := make(chan map[string]any, 16)
	lp := tr.AttachLocal(func(msg []byte) bool {
		var m map[string]any
		json.Unmarshal(msg, &m)
		got <- m
		return true
	})
	if err := lp.Handle([]byte(announce(ih, "-CP0001-localpeer001", 0, `,"left":0`))); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m["interval"] == nil || m["complete"] != float64(1) {
		t.Fatalf("announce response %v", m)
	}
	b := dial(t, url)
	b.send(announce(ih, "-PM0203-socketpeer01", 1, ""))
	b.recv()
	if m := <-got; m["offer"] == nil || m["peer_id"] != "-PM0203-socketpeer01" {
		t.Fatalf("relayed %v, want the socket peer's offer", m)
	}
	if n := tr.Stats().Connections; n != 1 {
		t.Errorf("%d connections counted, want only the socket", n)
	}
	lp.Close()
	if e, _ := tr.Swarms().Scrape(ih); e.Complete != 0 || e.Incomplete != 1 {
		t.Fatalf("after Close: %+v", e)
	}
	if err := lp.Handle([]byte(announce(ih, "-CP0001-localpeer001", 0, ""))); err == nil {
		t.Error("Handle after Close succeeded")
	}
}

// TestPingsGoToSilentSocketsOnly checks the keep-alive: a socket silent for
// a ping interval is pinged and kept open by its pongs, a socket that sends
// messages is never pinged, and one that answers nothing is closed after
// the read timeout.
func TestPingsGoToSilentSocketsOnly(t *testing.T) {
	tr, url := startTracker(t, Config{PingInterval: time.Second, ReadTimeout: 3 * time.Second})
	pingCounter := func(c *client) (*atomic.Int32, chan error) {
		var n atomic.Int32
		ended := make(chan error, 1)
		c.ws.SetPingHandler(func(data string) error {
			n.Add(1)
			return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		go func() {
			for {
				if _, _, err := c.ws.ReadMessage(); err != nil {
					ended <- err
					return
				}
			}
		}()
		return &n, ended
	}
	idle := dial(t, url)
	idlePings, idleEnded := pingCounter(idle)
	active := dial(t, url)
	activePings, activeEnded := pingCounter(active)
	mute := dial(t, url) // never reads, so never answers a ping

	stop := time.Now().Add(4500 * time.Millisecond)
	for time.Now().Before(stop) {
		// WriteControl (the pong) may run concurrently with WriteMessage.
		if err := active.ws.WriteMessage(websocket.TextMessage, []byte(`{"action":"scrape","info_hash":"`+specInfoHash+`"}`)); err != nil {
			t.Fatalf("active socket: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := activePings.Load(); n != 0 {
		t.Errorf("a socket that sends messages got %d pings", n)
	}
	if n := idlePings.Load(); n < 1 {
		t.Errorf("a silent socket got no ping in 4.5 s with a 1 s ping interval")
	}
	for name, ended := range map[string]chan error{"idle": idleEnded, "active": activeEnded} {
		select {
		case err := <-ended:
			t.Errorf("%s socket closed: %v", name, err)
		default:
		}
	}
	mute.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		if _, _, err := mute.ws.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("a socket that answered nothing for 4.5 s is still open (read timeout 3 s)")
			}
			break
		}
	}
	if got := tr.Stats().Connections; got != 2 {
		t.Errorf("connections: %d, want 2", got)
	}
}

// TestLargeRelaysArriveWholeAndInOrder fills a receiver's socket from
// several senders at once, so that frames go out partly at once and partly
// through the queue while other frames are queued behind them: every offer
// must still arrive whole, and each sender's in order.
func TestLargeRelaysArriveWholeAndInOrder(t *testing.T) {
	_, url := startTracker(t, Config{MessagesPerSecond: -1, MaxMessageSize: 1 << 20})
	const senders, each = 4, 8 // 32 x 300 KB: more than loopback socket buffers hold
	// One swarm per sender, each holding B and that sender, so that every
	// offer goes to B.
	b := dial(t, url)
	swarm := func(s int) string { return fmt.Sprintf("swarm-%014d", s) }
	for s := 0; s < senders; s++ {
		b.send(announce(swarm(s), specPeerB, 0, ""))
		b.recv()
	}
	done := make(chan error, senders)
	for s := 0; s < senders; s++ {
		a := dial(t, url)
		peer := fmt.Sprintf("-PM0203-sender%06d", s)
		a.send(announce(swarm(s), peer, 0, ""))
		a.recv()
		go func() {
			for i := 0; i < each; i++ {
				sdp := fmt.Sprintf("%d%02d", s, i) + strings.Repeat("x", 300<<10)
				msg := `{"action":"announce","info_hash":"` + swarm(s) + `","peer_id":"` + peer + `","numwant":1,"offers":[{"offer":{"type":"offer","sdp":"` + sdp + `"},"offer_id":"01234567890123456789"}]}`
				if err := a.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for s := 0; s < senders; s++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the tracker's queue for B build up
	next := make([]int, senders)
	for i := 0; i < senders*each; i++ {
		m := b.recv()
		sdp, _ := m["offer"].(map[string]any)["sdp"].(string)
		if len(sdp) != 3+300<<10 {
			t.Fatalf("offer %d: %d bytes", i, len(sdp))
		}
		var s, n int
		fmt.Sscanf(sdp[:3], "%1d%02d", &s, &n)
		if s >= senders || n != next[s] {
			t.Fatalf("offer %d: %.3q out of order (want sender %d's %d)", i, sdp, s, next[s%senders])
		}
		next[s]++
	}
}

// TestTLSAndPlainSocketsRelayToEachOther runs one tracker behind a TLS and
// a plain listener: a TLS socket has its own reader goroutine and queued
// writes, a plain one sits in the poller and gets frames written at once.
// Offers and answers must cross between the two.
func TestTLSAndPlainSocketsRelayToEachOther(t *testing.T) {
	tr, plainURL := startTracker(t, Config{})
	tlsSrv := httptest.NewTLSServer(tr)
	t.Cleanup(tlsSrv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}}
	ws, _, err := dialer.Dial("wss"+strings.TrimPrefix(tlsSrv.URL, "https"), nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	a := &client{t: t, ws: ws} // over TLS
	b := dial(t, plainURL)

	b.send(announce(specInfoHash, specPeerB, 0, ""))
	b.recv()
	a.send(announce(specInfoHash, specPeerA, 1, ""))
	if r := a.recv(); r["incomplete"] != 2.0 {
		t.Fatalf("A's announce response: %v", r)
	}
	if m := b.recv(); m["peer_id"] != specPeerA || m["offer"] == nil {
		t.Fatalf("B got %v, want A's offer", m)
	}
	b.send(`{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerB + `","to_peer_id":"` + specPeerA +
		`","answer":{"type":"answer","sdp":"v=0\r\n"},"offer_id":"offer-id-00000000000"}`)
	if m := a.recv(); m["peer_id"] != specPeerB || m["answer"] == nil {
		t.Fatalf("A got %v, want B's answer", m)
	}
	if s := tr.Stats(); s.Connections != 2 || (pollerAvailable && s.PolledConnections != 1) {
		t.Fatalf("connections %d, polled %d: want 2, of which the plain one polled", s.Connections, s.PolledConnections)
	}
}

// TestFrameSplitAcrossReads sends one announce in three TCP writes with
// pauses between them, so the tracker sees a partial frame, keeps it, and
// completes it on later reads; two frames in one write come next.
func TestFrameSplitAcrossReads(t *testing.T) {
	tr, url := startTracker(t, Config{})
	c := dial(t, url)
	raw := c.ws.UnderlyingConn()
	frame := clientFrame(true, opText, []byte(announce(specInfoHash, specPeerA, 0, "")))
	for _, part := range [][]byte{frame[:1], frame[1:40], frame[40:]} {
		if _, err := raw.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := c.recv(); r["incomplete"] != 1.0 {
		t.Fatalf("response to the split announce: %v", r)
	}
	scrape := clientFrame(true, opText, []byte(`{"action":"scrape","info_hash":"`+specInfoHash+`"}`))
	if _, err := raw.Write(append(append([]byte(nil), scrape...), scrape...)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if r := c.recv(); r["action"] != "scrape" {
			t.Fatalf("scrape reply %d: %v", i, r)
		}
	}
	if s := tr.Stats(); s.Connections != 1 {
		t.Fatalf("connections: %d", s.Connections)
	}
}

// A client's scrape of all swarms is computed at most once a second:
// listing every swarm is the one request whose cost grows with the tracker.
func TestScrapeAllReused(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	m := tr.Swarms()
	var ep discardEndpoint
	m.Announce("AAAAAAAAAAAAAAAAAAAA", "-PM0203-aaaaaaaaaaaa", ep, false, false, time.Now())
	first := tr.scrapeAll(10)
	m.Announce("BBBBBBBBBBBBBBBBBBBB", "-PM0203-bbbbbbbbbbbb", ep, false, false, time.Now())
	if again := tr.scrapeAll(10); len(again) != 1 || &again[0] != &first[0] {
		t.Fatalf("a second scrape within a second was computed again: %v", again)
	}
	if one := tr.scrapeAll(1); len(one) != 1 || cap(one) != 1 {
		t.Fatalf("a smaller limit from the same answer: len %d cap %d, want 1 and 1", len(one), cap(one))
	}
	time.Sleep(scrapeAllReuse)
	if later := tr.scrapeAll(10); len(later) != 2 {
		t.Fatalf("a scrape a second later lists %d swarms, want 2", len(later))
	}
	// The kept answer holds limit entries, not every swarm.
	for i := range 100 {
		m.Announce(fmt.Sprintf("%020d", i), "-PM0203-cccccccccccc", ep, false, false, time.Now())
	}
	time.Sleep(scrapeAllReuse)
	if got := tr.scrapeAll(10); len(got) != 10 || cap(tr.all) != 10 {
		t.Fatalf("the kept answer: len %d, cap %d of the array kept, want 10 and 10", len(got), cap(tr.all))
	}
}

// discardEndpoint is an Endpoint that drops what it is sent.
type discardEndpoint struct{}

func (discardEndpoint) Send([]byte) bool { return true }
