package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/gorilla/websocket"

	_ "github.com/caddy-p2p/caddy-p2p/caddymodule"
)

const (
	adminAddr = "localhost:2999"
	httpPort  = 9080
	infoHash  = "tBBwJ0eaWm83RZGsvsTu"
	peerA     = "-PM0203-A3uDGtPH5YH4"
)

// loadCaddyfile adapts and runs a Caddyfile in this process, replacing any
// running config the way a reload does.
func loadCaddyfile(t *testing.T, body string) {
	t.Helper()
	loadCaddyfileGlobals(t, "", body)
}

// loadCaddyfileGlobals is loadCaddyfile with more global options.
func loadCaddyfileGlobals(t *testing.T, globals, body string) {
	t.Helper()
	src := fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n\tauto_https off\n\tpersist_config off\n\tmetrics\n%s}\n%s", adminAddr, httpPort, globals, body)
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
}

func dialTracker(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	url := fmt.Sprintf("ws://127.0.0.1:%d%s", httpPort, path)
	var ws *websocket.Conn
	var err error
	for i := 0; i < 50; i++ {
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

// demoMedia returns the absolute path of testdata/media, which holds the
// demo stream.
func demoMedia(t *testing.T) string {
	t.Helper()
	media, err := filepath.Abs(filepath.Join("..", "testdata", "media"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(media, "demo", "master.m3u8")); err != nil {
		t.Fatal(err)
	}
	return media
}

// expectGoingAway reads ws until it ends, which must be with a close frame
// of code 1001 (going away); what names the socket in the failure.
func expectGoingAway(t *testing.T, ws *websocket.Conn, what string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("%s ended with %v, want close 1001", what, err)
		}
		return
	}
}

// announceAndRead announces peerA in the test swarm on ws and returns the
// reply.
func announceAndRead(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	return announceOn(t, ws, infoHash, peerA)
}

func getAdmin(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// TestTrackerInCaddy runs the handler in a real Caddy: behind encode with
// and without access logging (caddy-notes §4.1), across a reload, on the
// admin API and in the metrics, and through shutdown.
func TestTrackerInCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	baseline := runtime.NumGoroutine()
	site := func(extra, interval string) string {
		return fmt.Sprintf(":%d {\n\t%s\n\tencode gzip\n\tp2p_tracker /announce {\n\t\tinterval %s\n\t}\n\trespond \"not the tracker\"\n}\n", httpPort, extra, interval)
	}

	// Without access logging the outer writers do not implement Hijacker.
	loadCaddyfile(t, site("", "90s"))
	ws := dialTracker(t, "/announce")
	if r := announceAndRead(t, ws); r["interval"] != 90.0 || r["incomplete"] != 1.0 {
		t.Fatalf("announce through Caddy: %v", r)
	}
	// A plain request to the tracker path gets 426, other paths reach respond.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/announce", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET /announce: %d", resp.StatusCode)
	}

	// Reload with access logging and a new interval: the old socket and its
	// swarm membership survive; the new interval applies.
	loadCaddyfile(t, site("log", "45s"))
	if r := announceAndRead(t, ws); r["interval"] != 45.0 || r["incomplete"] != 1.0 {
		t.Fatalf("announce on the old socket after reload: %v", r)
	}
	ws2 := dialTracker(t, "/announce")
	msg := `{"action":"scrape","info_hash":"` + infoHash + `"}`
	ws2.WriteMessage(websocket.TextMessage, []byte(msg))
	ws2.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, data, err := ws2.ReadMessage()
	if err != nil || !strings.Contains(string(data), `"incomplete":1`) {
		t.Fatalf("scrape on a new socket (with logging): %s %v", data, err)
	}

	// Admin API and metrics.
	var status struct {
		Trackers []struct {
			Name  string `json:"name"`
			Stats struct {
				Connections int `json:"connections"`
				Polled      int `json:"polled_connections"`
				Peers       int `json:"peers"`
				Announces   int `json:"announces"`
			} `json:"stats"`
			Swarms []struct {
				InfoHash string `json:"info_hash"`
				Peers    int    `json:"peers"`
			} `json:"swarms"`
		} `json:"trackers"`
	}
	if err := json.Unmarshal([]byte(getAdmin(t, "/p2p/tracker")), &status); err != nil {
		t.Fatal(err)
	}
	if len(status.Trackers) != 1 || status.Trackers[0].Stats.Peers != 1 || status.Trackers[0].Stats.Connections != 2 ||
		status.Trackers[0].Stats.Announces != 2 || len(status.Trackers[0].Swarms) != 1 || status.Trackers[0].Swarms[0].InfoHash != infoHash {
		t.Fatalf("admin status: %+v", status)
	}
	// With access logging and metrics on, Caddy's recorder would hand out a
	// wrapped connection; the tracker must still get the TCP socket itself.
	if runtime.GOOS == "linux" && status.Trackers[0].Stats.Polled != 2 {
		t.Fatalf("%d of 2 sockets on the poller", status.Trackers[0].Stats.Polled)
	}
	metrics := getAdmin(t, "/metrics")
	for _, want := range []string{`caddy_p2p_tracker_peers{tracker="default"} 1`, `caddy_p2p_tracker_messages_total{action="announce",tracker="default"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}

	// Stopping Caddy closes the sockets with "going away" and ends every
	// goroutine of the tracker.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{ws, ws2} {
		expectGoingAway(t, c, "socket")
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after stop (baseline %d):\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
