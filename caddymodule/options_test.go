package caddymodule

import (
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// TestAppNumberOptions: whole numbers only, no trailing junk, and 0 only
// where it means something (never silently the default).
func TestAppNumberOptions(t *testing.T) {
	for _, tc := range []struct {
		option string
		want   func(*App) bool
		err    string
	}{
		{"max_peers 10", func(a *App) bool { return a.MaxPeers == 10 }, ""},
		{"max_peers 10k", nil, `"10k" is not a whole number of at least 1`},
		{"max_peers 0", nil, "at least 1"},
		{"max_peers -5", nil, "at least 1"},
		{"max_peers 5 6", nil, "wrong argument count"},
		{"max_peers", nil, "wrong argument count"},
		{"offers_per_announce 2", func(a *App) bool { return a.OffersPerAnnounce == 2 }, ""},
		{"offers_per_announce 0", func(a *App) bool { return a.OffersPerAnnounce == -1 }, ""},
		{"offers_per_announce -1", func(a *App) bool { return a.OffersPerAnnounce == -1 }, ""},
		{"offers_per_announce -2", nil, "at least -1"},
		{"offers_per_announce 3x", nil, "not a whole number"},
		{"max_uploads 0", func(a *App) bool { return a.MaxUploads == 0 }, ""},
		{"max_uploads 200", func(a *App) bool { return a.MaxUploads == 200 }, ""},
		{"max_uploads -1", nil, "at least 0"},
		{"rare_only", func(a *App) bool { return a.RareOnly && a.RareThreshold == 0 }, ""},
		{"rare_only 1", func(a *App) bool { return a.RareOnly && a.RareThreshold == 1 }, ""},
		{"rare_only 0", nil, "at least 1"},
		{"rare_only 2.5", nil, "not a whole number"},
		{"socket_buffer 8MiB", func(a *App) bool { return a.SocketBuffer == 8<<20 }, ""},
		{"socket_buffer 0", nil, "not between"},
		{"socket_buffer 2GiB", nil, "not between"},
		{"cache_size 0", nil, "not between"},
		{"cache_size 1GiB", func(a *App) bool { return a.CacheSize == 1<<30 }, ""},
		{"upload_rate 0", func(a *App) bool { return a.UploadRate == 0 }, ""},
		{"upload_rate 1MB", func(a *App) bool { return a.UploadRate == 1e6 }, ""},
		{"upload_rate 1MB 2MB", nil, "wrong argument count"},
	} {
		t.Run(tc.option, func(t *testing.T) {
			a := new(App)
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("p2p {\n" + tc.option + "\n}"))
			checkOptionParse(t, err, tc.err, func() bool { return tc.want(a) }, a)
		})
	}
}

// checkOptionParse checks how one Caddyfile option parsed: with an error
// containing wantErr or, when wantErr is empty, without one and into a
// module for which ok holds.
func checkOptionParse(t *testing.T, err error, wantErr string, ok func() bool, parsed any) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !ok() {
		t.Fatalf("parsed into %+v", parsed)
	}
}

// TestAppNegativeJSON: the JSON form refuses negative values too, but for
// offers_per_announce's -1.
func TestAppNegativeJSON(t *testing.T) {
	for _, a := range []*App{{MaxPeers: -1}, {OffersPerAnnounce: -2}, {MaxUploads: -1}, {CacheSize: -1}} {
		if err := a.checkLimits(); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if err := (&App{OffersPerAnnounce: -1}).checkLimits(); err != nil {
		t.Errorf("offers_per_announce -1: %v", err)
	}
}

func TestTrackerNumberOptions(t *testing.T) {
	for _, tc := range []struct {
		option string
		want   func(*TrackerHandler) bool
		err    string
	}{
		{"max_offers 5", func(h *TrackerHandler) bool { return h.MaxOffers == 5 }, ""},
		{"max_offers 0", nil, "at least 1"},
		{"max_offers 5x", nil, `"5x" is not a whole number`},
		{"max_numwant 0", nil, "at least 1"},
		{"max_swarms_per_conn 0", nil, "at least 1"},
		{"write_queue 0", nil, "at least 1"},
		{"write_queue 64", func(h *TrackerHandler) bool { return h.WriteQueue == 64 }, ""},
		{"max_conns_per_ip 0", func(h *TrackerHandler) bool { return h.MaxConnsPerIP == -1 }, ""},
		{"max_conns_per_ip 8", func(h *TrackerHandler) bool { return h.MaxConnsPerIP == 8 }, ""},
		{"max_conns_per_ip -1", nil, "at least 0"},
		{"max_messages_per_second 0", func(h *TrackerHandler) bool { return h.MessagesPerSecond == -1 }, ""},
		{"max_messages_per_second 5 0", nil, "at least 1"},
		{"max_messages_per_second Inf", nil, "not a number"},
	} {
		t.Run(tc.option, func(t *testing.T) {
			h := new(TrackerHandler)
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("p2p_tracker {\n" + tc.option + "\n}"))
			checkOptionParse(t, err, tc.err, func() bool { return tc.want(h) }, h)
		})
	}
	// The JSON form gives negative values no meaning either.
	h := &TrackerHandler{MaxOffers: -1}
	if err := h.checkLimits(); err == nil || !strings.Contains(err.Error(), "max_offers") {
		t.Fatalf("negative max_offers: %v", err)
	}
}

// TestListenKey: the spellings of one address share the pooled socket.
func TestListenKey(t *testing.T) {
	key := func(network, addr string) string {
		t.Helper()
		k, _, err := listenKey(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, same := range [][]string{
		{":50000", "0.0.0.0:50000", "[::]:50000"},
		{"127.0.0.1:50000", "localhost:50000"},
	} {
		for _, addr := range same[1:] {
			if a, b := key("udp", same[0]), key("udp", addr); a != b {
				t.Errorf("%q and %q: keys %q and %q", same[0], addr, a, b)
			}
		}
	}
	if key("udp", ":50000") == key("udp", "127.0.0.1:50000") {
		t.Error("the wildcard and loopback addresses share a key")
	}
	if key("udp", ":50000") == key("tcp", ":50000") {
		t.Error("udp and tcp share a key")
	}
	if _, bind, _ := listenKey("udp", "0.0.0.0:50000"); bind != ":50000" {
		t.Errorf("bind %q", bind)
	}
	if _, _, err := listenKey("udp", "50000"); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// TestUDPSocketBuffer: the newest app's socket_buffer is set on the pooled
// socket, and the older app's comes back when the newer one stops (a
// reload that failed).
func TestUDPSocketBuffer(t *testing.T) {
	sock, err := listenUDPSocket("127.0.0.1:0", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Destruct()
	running, failed := &App{log: zap.NewNop()}, &App{log: zap.NewNop()}
	sock.hold(running, 1<<20)
	sock.hold(failed, 2<<20)
	if sock.applied != 2<<20 {
		t.Fatalf("buffer %d after the new app started", sock.applied)
	}
	sock.release(failed)
	if sock.applied != 1<<20 {
		t.Fatalf("buffer %d after the new app stopped", sock.applied)
	}
	if _, ok := sock.conn.LocalAddr().(*net.UDPAddr); !ok {
		t.Fatal("not a UDP socket")
	}
}

// TestUploadCountersMonotonic: removing a stream, or removing and adding it
// again between two looks, never lowers the totals.
func TestUploadCountersMonotonic(t *testing.T) {
	stream := func(url, ih string, bytes, completed uint64) seeder.StreamStats {
		return seeder.StreamStats{URL: url, Swarms: []seeder.SwarmStats{{
			InfoHash: ih, Client: "hlsjs", Kind: "main",
			Upload: p2p.UploadStats{BytesSent: bytes, Completed: completed},
		}}}
	}
	u := newUploadTotals()
	hlsjs := clientKind{"hlsjs", "main"}
	got := u.observe(&seeder.Stats{Streams: []seeder.StreamStats{stream("a", "ih-a", 100, 1), stream("b", "ih-b", 50, 2)}})
	if got[hlsjs].bytes != 150 || got[hlsjs].completed != 3 {
		t.Fatalf("two streams: %+v", got)
	}
	got = u.observe(&seeder.Stats{Streams: []seeder.StreamStats{stream("a", "ih-a", 120, 1)}})
	if got[hlsjs].bytes != 170 || got[hlsjs].completed != 3 {
		t.Fatalf("after b went: %+v", got)
	}
	// a removed and added again: its new swarm starts from zero.
	got = u.observe(&seeder.Stats{Streams: []seeder.StreamStats{stream("a", "ih-a", 10, 0)}})
	if got[hlsjs].bytes != 180 || got[hlsjs].completed != 3 {
		t.Fatalf("after a came back: %+v", got)
	}
	got = u.observe(&seeder.Stats{})
	if got[hlsjs].bytes != 180 || got[hlsjs].completed != 3 {
		t.Fatalf("with no stream: %+v", got)
	}
}

func TestOffloadKeepsForgottenHTTPBytes(t *testing.T) {
	o := newOffload()
	o.addHTTP("a", 100)
	o.addHTTP("b", 50)
	o.forget(map[string]bool{"a": true})
	o.mu.Lock()
	n := o.forgotten.bytes
	o.mu.Unlock()
	if n != 50 {
		t.Fatalf("forgotten %d bytes, want 50", n)
	}
	if total := o.httpBytesTotal(); total != 150 {
		t.Fatalf("HTTP bytes counter %d after forgetting a stream, want 150", total)
	}
}

// TestKnownStreamsUsesTheRunningApp: when the authorizer's own app does
// not run (its config failed to start, or is being unloaded), it asks the
// newest app that does.
func TestKnownStreamsUsesTheRunningApp(t *testing.T) {
	s, err := seeder.New(seeder.Config{API: webrtc.NewAPI(), Source: seeder.FileSource{Root: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gens := &generations{streams: newRuntimeStreams()}
	running := &App{seeder: s, gens: gens}
	k := &KnownStreamsAuthorizer{app: &App{gens: gens}}
	if k.seeder() != nil {
		t.Fatal("a seeder without any app running")
	}
	gens.appStarted(running)
	if k.seeder() != s {
		t.Fatal("the running app's seeder is not used")
	}
	gens.appStopped(running)
	if k.seeder() != nil {
		t.Fatal("a stopped app's seeder is still used")
	}
	k.app = running
	if k.seeder() != s {
		t.Fatal("the authorizer's own running app is not used")
	}
}
