package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// seederStatus reads the admin API's view of the seeder.
func seederStatus(t *testing.T) map[string]any {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(getAdmin(t, "/p2p/seeder")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSeederAppInCaddy runs the p2p app beside the tracker in a real Caddy:
// it joins the demo stream's swarms through the tracker, shows them on the
// admin API and in the metrics, survives a reload on the same UDP port
// (the new seeder replaces the old one in the swarms) and releases the
// port on shutdown.
func TestSeederAppInCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	// A free UDP port for the seeder.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := pc.LocalAddr().String()
	pc.Close()
	globals := func(swarmID string) string {
		return fmt.Sprintf(`	p2p {
		tracker ws://127.0.0.1:%d/announce
		stream http://127.0.0.1:%d/media/demo/master.m3u8 %s
		source file %s {
			strip_prefix /media
		}
		webrtc_listen %s
		interfaces lo
		include_loopback
	}
`, httpPort, httpPort, swarmID, media, udpAddr)
	}
	site := fmt.Sprintf(":%d {\n\tp2p_tracker /announce {\n\t\tseeder_first\n\t}\n}\n", httpPort)
	loadCaddyfileGlobals(t, globals("swarm-one"), site)
	var first string
	waitUntil(t, "the seeder in 4 swarms", func() bool {
		st := seederStatus(t)
		streams, _ := st["streams"].([]any)
		if len(streams) != 1 {
			return false
		}
		swarms, _ := streams[0].(map[string]any)["swarms"].([]any)
		trackers, _ := st["trackers"].([]any)
		first, _ = st["peer_id"].(string)
		return len(swarms) == 4 && len(trackers) == 1 && trackers[0].(map[string]any)["connected"] == true
	})
	if !strings.HasPrefix(first, "-CP0001-") {
		t.Fatalf("peer id %q lacks the seeder prefix", first)
	}
	waitUntil(t, "4 seeded swarms on the tracker", func() bool {
		return strings.Count(getAdmin(t, "/p2p/tracker"), `"complete":1`) == 4
	})
	if m := getAdmin(t, "/metrics"); !strings.Contains(m, `caddy_p2p_seeder_swarms{client="hlsjs"} 2`) {
		t.Errorf("metrics lack the seeder's swarms:\n%s", grepLines(m, "caddy_p2p_seeder"))
	}

	// Reload with another swarm id: a new seeder on the same socket.
	loadCaddyfileGlobals(t, globals("swarm-two"), site)
	waitUntil(t, "the new seeder", func() bool {
		id, _ := seederStatus(t)["peer_id"].(string)
		return id != "" && id != first
	})
	waitUntil(t, "only the new seeder's 4 swarms on the tracker", func() bool {
		tr := getAdmin(t, "/p2p/tracker")
		return strings.Count(tr, `"complete":1`) == 4 && strings.Contains(tr, `"swarms":4,`)
	})

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	// The UDP port is free again.
	pc, err = net.ListenPacket("udp", udpAddr)
	if err != nil {
		t.Fatalf("UDP port still bound after stop: %v", err)
	}
	pc.Close()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
