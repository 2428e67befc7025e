package seeder

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/tracker"
)

// demoURL is the URL the test "browser" plays; FileSource maps its path
// onto testdata/media.
const demoURL = "http://origin.test/demo/master.m3u8"

func demoSource() FileSource {
	return FileSource{Root: filepath.Join("..", "..", "testdata", "media")}
}

func loopbackWebRTC(t *testing.T) WebRTCConfig {
	t.Helper()
	mux, _, err := ListenUDPMux("127.0.0.1:0", 4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	return WebRTCConfig{UDPMux: mux, IncludeLoopback: true, InterfaceFilter: func(n string) bool { return n == "lo" }}
}

// testEnv is a real tracker on a real WebSocket and a seeder using it.
type testEnv struct {
	t       *testing.T
	tracker *tracker.Tracker
	srv     *httptest.Server
	wsURL   string
	seeder  *Seeder
}

func newTestEnv(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	tr, err := tracker.New(tracker.Config{AnnounceInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr)
	env := &testEnv{t: t, tracker: tr, srv: srv, wsURL: "ws" + strings.TrimPrefix(srv.URL, "http")}
	api, err := NewAPI(loopbackWebRTC(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{API: api, Source: demoSource(), Trackers: []string{env.wsURL},
		TrackerDialers: map[string]TrackerDialer{"local": LocalTracker(tr)}}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.seeder = s
	t.Cleanup(func() {
		s.Close()
		srv.CloseClientConnections()
		tr.Close()
		srv.Close()
	})
	return env
}

// seed adds the stream at url and waits until the tracker counts the
// seeder in the swarm ih.
func (env *testEnv) seed(url string, ih p2p.InfoHash) {
	env.t.Helper()
	if _, err := env.seeder.AddStream(StreamConfig{URL: url}); err != nil {
		env.t.Fatal(err)
	}
	waitFor(env.t, "the seeder in the swarm", func() bool {
		e, _ := env.tracker.Swarms().Scrape(string(ih))
		return e.Complete == 1
	})
}

// connect has a new browser offer a connection in swarm ih and returns
// it with its open data channel.
func (env *testEnv) connect(ih p2p.InfoHash) (*browser, *webrtc.DataChannel) {
	env.t.Helper()
	b := newBrowser(env.t, env, ih)
	b.serveTracker()
	b.announceWithOffer()
	return b, b.channel()
}

// demoSwarm returns the first hls.js video swarm of the demo and its
// segments.
func demoSwarm(t *testing.T) (p2p.InfoHash, *manifest.Stream) {
	t.Helper()
	p, err := manifest.Load(context.Background(), demoURL, demoSource(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	return s.Swarms[manifest.HLSJS].InfoHash, s
}

// browser is a pion peer that behaves like P2P Media Loader towards the
// seeder: it signals through the tracker and speaks the wire protocol.
type browser struct {
	t        *testing.T
	peerID   string
	infoHash p2p.InfoHash
	ws       *websocket.Conn
	api      *webrtc.API
	pc       *webrtc.PeerConnection
	dc       chan *webrtc.DataChannel
	msgs     chan []byte
	wsMu     sync.Mutex
	offerID  string
	answers  chan string // SDPs of answers received
}

func newBrowser(t *testing.T, env *testEnv, ih p2p.InfoHash) *browser {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(env.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	b := &browser{
		t: t, peerID: "-PM0203-" + randomASCII(12), infoHash: ih, ws: ws,
		api: webrtc.NewAPI(webrtc.WithSettingEngine(se)), dc: make(chan *webrtc.DataChannel, 1),
		msgs: make(chan []byte, 1024), answers: make(chan string, 4),
	}
	pc, err := b.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b.pc = pc
	t.Cleanup(func() { ws.Close(); pc.Close() })
	return b
}

func (b *browser) write(v any) {
	b.wsMu.Lock()
	defer b.wsMu.Unlock()
	if err := b.ws.WriteJSON(v); err != nil {
		b.t.Errorf("browser: writing to tracker: %v", err)
	}
}

func (b *browser) hookChannel(dc *webrtc.DataChannel) {
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case b.msgs <- append([]byte(nil), m.Data...):
		default:
		}
	})
	dc.OnOpen(func() { b.dc <- dc })
}

// announceWithOffer joins the swarm offering one connection, like the
// browser's first announce.
func (b *browser) announceWithOffer() {
	dc, err := b.pc.CreateDataChannel(strings.Repeat("ab", 20), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	b.hookChannel(dc)
	offer, err := b.pc.CreateOffer(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(offer); err != nil {
		b.t.Fatal(err)
	}
	<-done
	b.offerID = "\u00a5\u0007" + randomASCII(18) // binary-string bytes, as browsers send
	b.write(map[string]any{
		"action": "announce", "info_hash": string(b.infoHash), "peer_id": b.peerID, "numwant": 5,
		"uploaded": 0, "downloaded": 0, "event": "started",
		"offers": []any{map[string]any{"offer": b.pc.LocalDescription(), "offer_id": b.offerID}},
	})
}

// announcePlain joins the swarm without offers.
func (b *browser) announcePlain() {
	b.write(map[string]any{"action": "announce", "info_hash": string(b.infoHash), "peer_id": b.peerID,
		"numwant": 5, "uploaded": 0, "downloaded": 0, "event": "started"})
}

// serveTracker reads tracker messages: answers to the browser's offer are
// applied, relayed offers answered.
func (b *browser) serveTracker() {
	b.pc.OnDataChannel(b.hookChannel)
	go func() {
		for {
			var m incomingMsg
			if err := b.ws.ReadJSON(&m); err != nil {
				return
			}
			switch {
			case m.Answer != nil:
				select {
				case b.answers <- m.Answer.SDP:
				default:
				}
				if m.OfferID != b.offerID {
					b.t.Errorf("browser: answer for offer id %q, sent %q", m.OfferID, b.offerID)
				}
				if err := b.pc.SetRemoteDescription(*m.Answer); err != nil && b.pc.SignalingState() != webrtc.SignalingStateClosed {
					b.t.Errorf("browser: %v", err)
				}
			case m.Offer != nil:
				if b.offerID != "" {
					// A real browser answers with a new connection;
					// this one has a single connection, its own offer's.
					continue
				}
				if err := b.pc.SetRemoteDescription(*m.Offer); err != nil {
					b.t.Errorf("browser: %v", err)
					continue
				}
				ans, _ := b.pc.CreateAnswer(nil)
				done := webrtc.GatheringCompletePromise(b.pc)
				_ = b.pc.SetLocalDescription(ans)
				<-done
				b.write(map[string]any{"action": "announce", "info_hash": m.InfoHash, "peer_id": b.peerID,
					"to_peer_id": m.PeerID, "offer_id": m.OfferID, "answer": b.pc.LocalDescription()})
			}
		}
	}()
}

func (b *browser) channel() *webrtc.DataChannel {
	select {
	case dc := <-b.dc:
		return dc
	case <-time.After(20 * time.Second):
		b.t.Fatal("browser: no data channel opened with the seeder")
		return nil
	}
}

// command reads the next command, joining frames.
func (b *browser) command() p2p.Command {
	j := p2p.NewJoiner(1 << 20)
	for {
		select {
		case m := <-b.msgs:
			if !p2p.IsCommandFrame(m) {
				b.t.Fatalf("browser: payload %d bytes where a command was expected", len(m))
			}
			body, done, err := j.Push(m)
			if err != nil {
				b.t.Fatal(err)
			}
			if !done {
				continue
			}
			cmd, err := p2p.Decode(body)
			if err != nil {
				b.t.Fatal(err)
			}
			return cmd
		case <-time.After(10 * time.Second):
			b.t.Fatal("browser: no command from the seeder")
		}
	}
}

func (b *browser) request(dc *webrtc.DataChannel, id, rid, from int64) []byte {
	frames, err := p2p.Encode(p2p.SegmentRequest{ID: id, RequestID: rid, ByteFrom: from}, p2p.DefaultMaxMessageSize)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, f := range frames {
		if err := dc.Send(f); err != nil {
			b.t.Fatal(err)
		}
	}
	hdr, ok := b.command().(p2p.SegmentData)
	if !ok || hdr.ID != id || hdr.RequestID != rid {
		b.t.Fatalf("browser: header %#v for request %d/%d", hdr, id, rid)
	}
	var got []byte
	for int64(len(got)) < hdr.Size {
		select {
		case m := <-b.msgs:
			if p2p.IsCommandFrame(m) {
				b.t.Fatalf("browser: command after %d of %d bytes", len(got), hdr.Size)
			}
			if len(m) > p2p.DefaultMaxMessageSize {
				b.t.Fatalf("browser: chunk of %d bytes", len(m))
			}
			got = append(got, m...)
		case <-time.After(5 * time.Second):
			b.t.Fatalf("browser: stalled after %d of %d bytes", len(got), hdr.Size)
		}
	}
	if c, ok := b.command().(p2p.SegmentDataSendingCompleted); !ok || c.ID != id || c.RequestID != rid {
		b.t.Fatalf("browser: %#v instead of completion", c)
	}
	return got
}

func segmentFile(t *testing.T, seg *manifest.Segment) []byte {
	t.Helper()
	data, _, err := demoSource().Fetch(context.Background(), seg.URL, seg.ByteRange)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSeederAnswersBrowserOffer: a browser announces with an offer; the
// tracker relays it to the seeder, which answers, announces every VOD
// segment and serves one byte for byte, also resumed from an offset.
func TestSeederAnswersBrowserOffer(t *testing.T) {
	env := newTestEnv(t, nil)
	ih, ms := demoSwarm(t)
	env.seed(demoURL, ih)
	b, dc := env.connect(ih)
	ann, ok := b.command().(p2p.SegmentsAnnouncement)
	if !ok || len(ann.Loaded) != len(ms.Segments) || ann.Loaded[0] != 0 || ann.Loaded[len(ann.Loaded)-1] != int64(len(ms.Segments)-1) {
		t.Fatalf("announcement %v, want ids 0..%d", ann, len(ms.Segments)-1)
	}
	want := segmentFile(t, ms.Segments[3])
	if got := b.request(dc, 3, 1, 0); !bytes.Equal(got, want) {
		t.Fatalf("segment 3: %d bytes differ from the file's %d", len(got), len(want))
	}
	if got := b.request(dc, 4, 2, 1000); !bytes.Equal(got, segmentFile(t, ms.Segments[4])[1000:]) {
		t.Fatalf("segment 4 from 1000: wrong bytes")
	}
	st := env.seeder.Stats()
	if st.Cache.Misses != 2 || st.AnswersSent != 1 {
		t.Errorf("stats: cache %+v, answers %d", st.Cache, st.AnswersSent)
	}
	var served uint64
	for _, s := range st.Streams {
		for _, sw := range s.Swarms {
			served += sw.Upload.BytesSent
		}
	}
	if want := uint64(len(want) + len(segmentFile(t, ms.Segments[4])) - 1000); served != want {
		t.Errorf("bytes served %d, want %d", served, want)
	}
}

// TestSeederOffersToBrowser: a browser already in the swarm gets the
// seeder's offer when the seeder joins, answers it and is served.
func TestSeederOffersToBrowser(t *testing.T) {
	env := newTestEnv(t, nil)
	ih, ms := demoSwarm(t)
	b := newBrowser(t, env, ih)
	b.serveTracker()
	b.announcePlain()
	waitFor(t, "the browser in the swarm", func() bool {
		e, _ := env.tracker.Swarms().Scrape(string(ih))
		return e.Incomplete == 1
	})
	if _, err := env.seeder.AddStream(StreamConfig{URL: demoURL}); err != nil {
		t.Fatal(err)
	}
	dc := b.channel()
	if _, ok := b.command().(p2p.SegmentsAnnouncement); !ok {
		t.Fatal("no announcement first")
	}
	if got := b.request(dc, 0, 7, 0); !bytes.Equal(got, segmentFile(t, ms.Segments[0])) {
		t.Fatal("segment 0: wrong bytes")
	}
	if st := env.seeder.Stats(); st.OffersAnswered != 1 {
		t.Errorf("offers answered %d, want 1", st.OffersAnswered)
	}
}

// TestSeederCloseEndsEverything: Close leaves no goroutine behind.
func TestSeederCloseEndsEverything(t *testing.T) {
	func() {
		env := newTestEnv(t, nil)
		ih, _ := demoSwarm(t)
		env.seed(demoURL, ih)
		env.connect(ih)
		env.seeder.Close()
		if n := env.seeder.Stats().PeerConnections; n != 0 {
			t.Errorf("%d peer connections after Close", n)
		}
	}()
	var stacks []byte
	leaked := func() bool {
		buf := make([]byte, 1<<20)
		stacks = buf[:runtime.Stack(buf, true)]
		for _, g := range bytes.Split(stacks, []byte("\n\n")) {
			// The test's own goroutines (its browser) live in
			// seeder_test.go and end at cleanup, and so does the UDP
			// mux's reader (the mux belongs to the caller, who may
			// share it across seeders: see ListenUDPMux).
			if bytes.Contains(g, []byte("p2p/seeder.")) && !bytes.Contains(g, []byte("seeder_test.go")) &&
				!bytes.Contains(g, []byte("p2p/seeder.(*yieldingConn).ReadFromAddrPort")) ||
				bytes.Contains(g, []byte("p2p.(*UploadSession)")) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for leaked() {
		if time.Now().After(deadline) {
			t.Fatalf("seeder goroutines left after Close:\n%s", stacks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSeederLocalTracker: attached in-process, the seeder joins the swarm
// without a socket and serves a browser that signals over WebSocket.
func TestSeederLocalTracker(t *testing.T) {
	// newTestEnv maps "local" to its tracker, in-process.
	env := newTestEnv(t, func(c *Config) { c.Trackers = []string{"local"} })
	tr := env.tracker
	ih, ms := demoSwarm(t)
	env.seed(demoURL, ih)
	if n := tr.Stats().Connections; n != 0 {
		t.Fatalf("%d tracker sockets, want none for an in-process seeder", n)
	}
	b, dc := env.connect(ih)
	if _, ok := b.command().(p2p.SegmentsAnnouncement); !ok {
		t.Fatal("no announcement")
	}
	if got := b.request(dc, 5, 1, 0); !bytes.Equal(got, segmentFile(t, ms.Segments[5])) {
		t.Fatal("segment 5: wrong bytes")
	}
	env.seeder.RemoveStream(demoURL)
	waitFor(t, "the seeder to leave", func() bool {
		e, _ := tr.Swarms().Scrape(string(ih))
		return e.Complete == 0
	})
}

// TestSeederRemovingADuplicateStreamKeepsTheSwarm: the same presentation
// under a second URL (another query) shares the first's swarms; removing
// the second does not take the seeder out of them (it sent "stopped" for
// swarms it never registered).
func TestSeederRemovingADuplicateStreamKeepsTheSwarm(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Trackers = []string{"local"} })
	ih, _ := demoSwarm(t)
	env.seed(demoURL, ih)
	second := demoURL + "?token=2"
	if _, err := env.seeder.AddStream(StreamConfig{URL: second}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.seeder.WaitStream(ctx, second); err != nil {
		t.Fatal(err)
	}
	env.seeder.RemoveStream(second)
	// The tracker handles the seeder's messages in order: a scrape
	// after one more announce of the remaining stream would come after
	// a "stopped". Give a stopped time to arrive, then check.
	time.Sleep(300 * time.Millisecond)
	if e, _ := env.tracker.Swarms().Scrape(string(ih)); e.Complete != 1 {
		t.Fatalf("after removing the duplicate stream the swarm has %d complete peers, want the seeder", e.Complete)
	}
	if !env.seeder.HasSwarm(ih) {
		t.Fatal("the seeder forgot the first stream's swarm")
	}
}
