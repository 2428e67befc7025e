package tracker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Frames from ../shared/spec/p2pml-v2-wire.md §2.4 (the offer SDP shortened).
const (
	specInfoHash = "tBBwJ0eaWm83RZGsvsTu"
	specPeerA    = "-PM0203-A3uDGtPH5YH4"
	specPeerB    = "-PM0203-asj3uA7gyGY6"
	// A binary offer id: bytes 0x00..0x13 as code points, JSON-escaped.
	binOfferIDJSON  = `"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013"`
	highOfferIDJSON = `"¥¦§¨©ª«¬®¯°±²³´µ¶·¸ÿ"`
)

func startTracker(t *testing.T, cfg Config, opts ...Option) (*Tracker, string) {
	t.Helper()
	tr, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr)
	t.Cleanup(func() {
		tr.Close()
		srv.Close()
	})
	return tr, "ws" + strings.TrimPrefix(srv.URL, "http")
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(b))
}

// recv reads one message and decodes it into a map.
func (c *client) recv() map[string]any {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("recv: bad JSON %q: %v", data, err)
	}
	return m
}

// recvRaw reads one message as bytes.
func (c *client) recvRaw() []byte {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return data
}

// expectSilence asserts nothing arrives within d.
func (c *client) expectSilence(d time.Duration) {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(d))
	_, data, err := c.ws.ReadMessage()
	if err == nil {
		c.t.Fatalf("expected no message, got %s", data)
	}
	if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		c.t.Fatalf("expected a timeout, got %v", err)
	}
}

// expectClose reads until the socket closes and returns the close code.
func (c *client) expectClose() int {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
}

func announce(ih, peer string, offers int, extra string) string {
	var b strings.Builder
	b.WriteString(`{"numwant":5,"uploaded":0,"downloaded":0,"action":"announce","info_hash":"` + ih + `","peer_id":"` + peer + `"`)
	if offers > 0 {
		b.WriteString(`,"offers":[`)
		for i := 0; i < offers; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"offer":{"type":"offer","sdp":"v=0\r\no=- ` + string(rune('0'+i)) + ` 2 IN IP4 127.0.0.1\r\n"},"offer_id":"offer-id-0000000000` + string(rune('0'+i)) + `"}`)
		}
		b.WriteString(`]`)
	}
	b.WriteString(extra + `}`)
	return b.String()
}

func httpStatus(t *testing.T, url string, header http.Header) int {
	t.Helper()
	_, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err == nil {
		t.Fatalf("dial %s: expected refusal", url)
	}
	if resp == nil {
		t.Fatalf("dial %s: no HTTP response: %v", url, err)
	}
	return resp.StatusCode
}
