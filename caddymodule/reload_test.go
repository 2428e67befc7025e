package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/gorilla/websocket"
)

const (
	peerB         = "-PM0203-asj3uA7gyGY6"
	otherInfoHash = "swarm-not-allowed-01"
)

// tryLoadCaddyfile is loadCaddyfileGlobals for a config that may be
// rejected: it returns the error of the load.
func tryLoadCaddyfile(t *testing.T, globals, body string) error {
	t.Helper()
	src := fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n\tauto_https off\n\tpersist_config off\n\tmetrics\n%s}\n%s", adminAddr, httpPort, globals, body)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	return caddy.Load(cfg, true)
}

func dialPort(t *testing.T, port int) *websocket.Conn {
	t.Helper()
	url := fmt.Sprintf("ws://127.0.0.1:%d/announce", port)
	var err error
	for range 50 {
		var ws *websocket.Conn
		ws, _, err = websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"http://127.0.0.1"}})
		if err == nil {
			t.Cleanup(func() { ws.Close() })
			return ws
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("dial %s: %v", url, err)
	return nil
}

// announceOn announces peer in swarm ih and returns the reply.
func announceOn(t *testing.T, ws *websocket.Conn, ih, peer string) map[string]any {
	t.Helper()
	msg, _ := json.Marshal(map[string]any{"action": "announce", "event": "started", "numwant": 5,
		"info_hash": ih, "peer_id": peer, "offers": []any{}})
	if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// freeUDPAddr returns a loopback UDP address nothing listens on.
func freeUDPAddr(t *testing.T) (string, int) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String(), pc.LocalAddr().(*net.UDPAddr).Port
}

func stopCaddy(t *testing.T) {
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// TestRejectedReloadKeepsTrackerSettings: a reload that fails after the
// tracker handler was provisioned, in a later module's provisioning or in
// an app's start, leaves the running tracker's limits and authorizer
// alone; with known_streams, the never-started p2p app of the rejected
// config must not make the tracker refuse the origin's streams.
func TestRejectedReloadKeepsTrackerSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	udpAddr, _ := freeUDPAddr(t)
	// A port another socket holds: the p2p app of a config using it
	// fails to start.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	globals := func(listen string) string {
		return fmt.Sprintf(`	p2p {
		tracker local
		stream http://127.0.0.1:%d/media/demo/master.m3u8
		source file %s {
			strip_prefix /media
		}
		webrtc_listen %s
		interfaces lo
		include_loopback
	}
`, httpPort, media, listen)
	}
	site := func(interval, extra string) string {
		return fmt.Sprintf(":%d {\n\tp2p_tracker /announce {\n\t\tinterval %s\n\t\tauthorizer known_streams\n\t}\n%s}\n", httpPort, interval, extra)
	}
	stopCaddy(t)
	loadCaddyfileGlobals(t, globals(udpAddr), site("90s", ""))

	// One of the seeder's swarms, which known_streams accepts.
	var seeded string
	waitUntil(t, "the seeder in its swarms", func() bool {
		var st struct {
			Trackers []struct {
				Swarms []struct {
					InfoHash string `json:"info_hash"`
					Complete int    `json:"complete"`
				} `json:"swarms"`
			} `json:"trackers"`
		}
		json.Unmarshal([]byte(getAdmin(t, "/p2p/tracker")), &st)
		for _, tr := range st.Trackers {
			for _, sw := range tr.Swarms {
				if sw.Complete == 1 {
					seeded = sw.InfoHash
					return true
				}
			}
		}
		return false
	})
	old := dialPort(t, httpPort)
	if r := announceOn(t, old, seeded, peerA); r["failure reason"] != nil || r["interval"] != 90.0 {
		t.Fatalf("before the reloads: %v", r)
	}
	if r := announceOn(t, old, otherInfoHash, peerA); r["failure reason"] == nil {
		t.Fatalf("known_streams let an unknown swarm in: %v", r)
	}

	for _, rejected := range []struct{ name, globals, site string }{
		{"a later handler fails to provision", globals(udpAddr), site("30s", "\tp2p_player {\n\t\thls_version bad\n\t}\n")},
		{"the p2p app fails to start", globals(busy.LocalAddr().String()), site("30s", "")},
	} {
		if err := tryLoadCaddyfile(t, rejected.globals, rejected.site); err == nil {
			t.Fatalf("%s: the reload was accepted", rejected.name)
		} else {
			t.Logf("%s: %v", rejected.name, err)
		}
		if r := announceOn(t, old, seeded, peerA); r["failure reason"] != nil || r["interval"] != 90.0 {
			t.Fatalf("%s: the running socket got %v, want the running config's interval and authorizer", rejected.name, r)
		}
		fresh := dialPort(t, httpPort)
		if r := announceOn(t, fresh, seeded, peerB); r["failure reason"] != nil || r["interval"] != 90.0 {
			t.Fatalf("%s: a new socket got %v", rejected.name, r)
		}
		fresh.Close()
	}

	// A good reload applies to the running socket (once the new seeder
	// is in the swarm, which the new known_streams asks).
	loadCaddyfileGlobals(t, globals(udpAddr), site("45s", ""))
	waitUntil(t, "the new settings on the running socket", func() bool {
		r := announceOn(t, old, seeded, peerA)
		return r["failure reason"] == nil && r["interval"] == 45.0
	})
}

// TestTrackerNameSharedBySites: two sites serve one tracker name with
// different authorizers; each site's sockets keep their own authorizer
// while sharing the swarms, and a reload that changes one site closes
// only that site's sockets (their clients reconnect through it).
func TestTrackerNameSharedBySites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	const port2 = httpPort + 1
	sites := func(allowed string) string {
		return fmt.Sprintf(":%d {\n\tp2p_tracker /announce {\n\t\tauthorizer allow_list %s\n\t}\n}\n:%d {\n\tp2p_tracker /announce\n}\n",
			httpPort, allowed, port2)
	}
	stopCaddy(t)
	loadCaddyfile(t, sites(infoHash))
	strict, open := dialPort(t, httpPort), dialPort(t, port2)
	if r := announceOn(t, strict, otherInfoHash, peerA); r["failure reason"] == nil {
		t.Fatalf("the allow_list site let an unlisted swarm in: %v", r)
	}
	if r := announceOn(t, open, otherInfoHash, peerB); r["failure reason"] != nil {
		t.Fatalf("the site without authorizer refused a swarm: %v", r)
	}
	announceOn(t, open, infoHash, peerB)
	if r := announceOn(t, strict, infoHash, peerA); r["failure reason"] != nil || r["incomplete"] != 2.0 {
		t.Fatalf("the sites do not share the swarm: %v", r)
	}

	loadCaddyfile(t, sites(otherInfoHash))
	if r := announceOn(t, open, otherInfoHash, peerB); r["failure reason"] != nil {
		t.Fatalf("after the reload, the unchanged site's socket: %v", r)
	}
	expectGoingAway(t, strict, "the changed site's socket")
	strict = dialPort(t, httpPort)
	if r := announceOn(t, strict, infoHash, peerA); r["failure reason"] == nil {
		t.Fatalf("the new allow_list let the old swarm in: %v", r)
	}
	if r := announceOn(t, strict, otherInfoHash, peerA); r["failure reason"] != nil {
		t.Fatalf("the new allow_list refused its swarm: %v", r)
	}
}

// TestWebRTCListenSpelling: writing the same UDP address another way, and
// changing socket_buffer, reloads onto the open socket.
func TestWebRTCListenSpelling(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	_, port := freeUDPAddr(t)
	globals := func(listen, buffer string) string {
		return fmt.Sprintf("\tp2p {\n\t\twebrtc_listen %s\n\t\tsocket_buffer %s\n\t\tinterfaces lo\n\t\tinclude_loopback\n\t}\n", listen, buffer)
	}
	site := fmt.Sprintf(":%d {\n\trespond ok\n}\n", httpPort)
	loadCaddyfileGlobals(t, globals(fmt.Sprintf("127.0.0.1:%d", port), "1MiB"), site)
	loadCaddyfileGlobals(t, globals(fmt.Sprintf("localhost:%d", port), "2MiB"), site)
	if st := seederStatus(t); !strings.HasPrefix(fmt.Sprint(st["peer_id"]), "-CP0001-") {
		t.Fatalf("seeder after the reload: %v", st)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("UDP port still bound after stop: %v", err)
	}
	pc.Close()
}
