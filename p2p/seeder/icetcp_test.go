package seeder

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// TestSeederOverICETCP: a browser that can only use TCP (UDP blocked)
// reaches the seeder through its passive ICE-TCP candidates.
func TestSeederOverICETCP(t *testing.T) {
	tcpMux, _, err := ListenTCPMux("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tcpMux.Close()
	env := newTestEnv(t, withWebRTC(t, func(wc *WebRTCConfig) { wc.TCPMux = tcpMux }))
	ih, ms := demoSwarm(t)
	env.seed(demoURL, ih)
	b := newBrowser(t, env, ih)
	// This browser has no UDP at all.
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	b.pc.Close()
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	b.pc = pc
	b.serveTracker()
	b.announceWithOffer()
	dc := b.channel()
	if _, ok := b.command().(p2p.SegmentsAnnouncement); !ok {
		t.Fatal("no announcement")
	}
	if got := b.request(dc, 2, 1, 0); !bytes.Equal(got, segmentFile(t, ms.Segments[2])) {
		t.Fatal("segment 2: wrong bytes")
	}
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair %v (%v), want TCP", pair, err)
	}
}

// TestSeederPublicIP: behind a 1:1 NAT the seeder's candidates carry the
// configured public address instead of the host's.
func TestSeederPublicIP(t *testing.T) {
	env := newTestEnv(t, withWebRTC(t, func(wc *WebRTCConfig) { wc.PublicIPs = []string{"203.0.113.7"} }))
	ih, _ := demoSwarm(t)
	env.seed(demoURL, ih)
	b := newBrowser(t, env, ih)
	b.serveTracker()
	b.announceWithOffer()
	select {
	case sdp := <-b.answers:
		if !strings.Contains(sdp, " 203.0.113.7 ") || strings.Contains(sdp, " 127.0.0.1 ") {
			t.Fatalf("answer candidates do not use the public IP only:\n%s", sdp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	if _, err := NewAPI(WebRTCConfig{PublicIPs: []string{"not-an-ip"}}); err == nil {
		t.Error("a bad public IP was accepted")
	}
}

// withWebRTC gives the seeder of a test environment an API made from the
// loopback settings as changed by mutate.
func withWebRTC(t *testing.T, mutate func(*WebRTCConfig)) func(*Config) {
	return func(c *Config) {
		wc := loopbackWebRTC(t)
		mutate(&wc)
		api, err := NewAPI(wc)
		if err != nil {
			t.Fatal(err)
		}
		c.API = api
	}
}
