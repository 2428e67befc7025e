package seeder

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// testSwarm registers a swarm of the demo VOD's first stream with s, for
// tests that drive peers and the tracker client by hand.
func testSwarm(t *testing.T, s *Seeder) *swarm {
	t.Helper()
	p, err := manifest.Load(context.Background(), demoURL, demoSource(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	st := &stream{s: s, cfg: StreamConfig{URL: demoURL}, ctx: ctx, cancel: cancel, done: make(chan struct{}), loaded: make(chan struct{})}
	sw := newSwarm(s, st, p.Streams[0], manifest.HLSJS)
	sw.setSegments(p.Streams[0].Segments, nil, true)
	s.mu.Lock()
	s.swarms[sw.infoHash] = sw
	s.mu.Unlock()
	return sw
}

// A browser's answer that arrives after the seeder's connect timer (30 s)
// closed the offering peer, but before the offer expired (50 s), must not
// register the closed peer under the browser's peer id: nothing would ever
// remove it, and every later offer of that browser would be refused.
func TestSeederLateAnswerToAClosedOffer(t *testing.T) {
	api, err := NewAPI(loopbackWebRTC(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{API: api, Source: demoSource()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sw := testSwarm(t, s)
	tc := newTrackerClient(s, "ws://unused")

	o, err := tc.makeOffer(context.Background(), sw)
	if err != nil {
		t.Fatal(err)
	}
	// The browser answers (late).
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	bpc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer bpc.Close()
	if err := bpc.SetRemoteDescription(o.Offer); err != nil {
		t.Fatal(err)
	}
	ans, _ := bpc.CreateAnswer(nil)
	g := webrtc.GatheringCompletePromise(bpc)
	_ = bpc.SetLocalDescription(ans)
	<-g

	// What p.connectTimer does at DefaultConnectTimeout (30 s) while the
	// pending offer lives until OfferTimeout (50 s).
	tc.mu.Lock()
	p := tc.offers[o.OfferID].p
	tc.mu.Unlock()
	p.close()

	const browserID = "-PM0203-A3uDGtPH5YH4"
	msg, _ := json.Marshal(map[string]any{"action": "announce", "info_hash": string(sw.infoHash),
		"peer_id": browserID, "offer_id": o.OfferID, "answer": bpc.LocalDescription()})
	tc.handle(nil, msg)

	sw.mu.Lock()
	stale, members := sw.peers[browserID], len(sw.members)
	sw.mu.Unlock()
	select {
	case <-p.closed:
	default:
		t.Fatal("peer not closed")
	}
	t.Logf("sw.peers[%q] = %p (closed peer %p), members=%d, hasPeer=%v, wantsOffers(incomplete=1)=%v",
		browserID, stale, p, members, sw.hasPeer(browserID), func() bool { sw.setIncomplete(1); return sw.wantsOffers() }())
	if sw.hasPeer(browserID) {
		t.Errorf("closed peer still registered: every later offer and answer of %s is refused", browserID)
	}
}

// A swarm closing while newPeer makes a peer closes that peer cleanly: the
// peer's connect timer existed before the swarm could see it (it was once
// set after, and close stopped a nil timer).
func TestSeederNewPeerRacesSwarmClose(t *testing.T) {
	api, err := NewAPI(loopbackWebRTC(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{API: api, Source: demoSource(), MaxPeers: 100000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 300; i++ {
		sw := testSwarm(t, s)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := 0; j < 4; j++ {
				p, err := s.newPeer(sw)
				if err != nil {
					return
				}
				_ = p
			}
		}()
		// close as soon as a member appears
		for {
			sw.mu.Lock()
			n := len(sw.members)
			sw.mu.Unlock()
			if n > 0 {
				break
			}
			select {
			case <-done:
			default:
				continue
			}
			break
		}
		sw.close()
		<-done
	}
}

// A live playlist whose window holds more than maxPrefetchQueue segments
// has all of them announced: the ones beyond the prefetch queue are
// announced uncached, since browsers request only announced segments.
func TestSeederAnnouncesALongLiveWindow(t *testing.T) {
	origin := &liveOrigin{start: time.Now(), step: time.Hour, win: 40}
	api, err := NewAPI(loopbackWebRTC(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{API: api, Source: origin})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AddStream(StreamConfig{URL: liveURL}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitStream(context.Background(), liveURL); err != nil {
		t.Fatal(err)
	}
	// The prefetches run against an in-memory origin: all are done
	// well within the deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var unannounced []string
		for _, sw := range s.allSwarms() {
			sw.mu.Lock()
			var missing []int64
			for id := range sw.segs {
				if !sw.avail[id] {
					missing = append(missing, id)
				}
			}
			if len(sw.segs) != origin.win {
				missing = append(missing, -1)
			}
			sw.mu.Unlock()
			if len(missing) > 0 {
				unannounced = append(unannounced, fmt.Sprintf("%s: %v", sw.client, missing))
			}
		}
		if len(unannounced) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments of the %d-segment window never announced: %v", origin.win, unannounced)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
