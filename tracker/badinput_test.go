package tracker

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestBadInput sends each hostile or malformed message on a fresh socket and
// checks the tracker's exact reaction: a failure reply naming action and,
// where it could be read, info_hash; or a clean close with a code.
func TestBadInput(t *testing.T) {
	const ih, pid = specInfoHash, specPeerA
	valid := func(extra string) string {
		return `{"action":"announce","info_hash":"` + ih + `","peer_id":"` + pid + `"` + extra + `}`
	}
	// offers are as small as valid ones can be, so that more than
	// maxOffersParsed fit in DefaultMaxMessageSize.
	offers := func(n int) string {
		var b strings.Builder
		b.WriteString(`,"offers":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"offer":{},"offer_id":"01234567890123456789"}`)
		}
		b.WriteString("]")
		return b.String()
	}
	cases := []struct {
		name     string
		frame    []byte
		binary   bool
		reason   string // substring of the failure reason; "" when closeCode is set
		action   string
		infoHash string
		close    int
	}{
		{name: "malformed JSON", frame: []byte(`{"action":"announce",`), reason: "malformed JSON", action: "announce"},
		{name: "not JSON at all", frame: []byte(`hello`), reason: "malformed JSON", action: "announce"},
		{name: "JSON array", frame: []byte(`[1,2,3]`), reason: "not a JSON object", action: "announce"},
		{name: "JSON string", frame: []byte(`"announce"`), reason: "not a JSON object", action: "announce"},
		{name: "empty object", frame: []byte(`{}`), reason: "missing action", action: "announce"},
		{name: "unknown action", frame: []byte(`{"action":"connect","info_hash":"` + ih + `"}`), reason: `unknown action "connect"`, action: "announce", infoHash: ih},
		{name: "action is a number", frame: []byte(`{"action":1,"info_hash":"` + ih + `"}`), reason: `field "action" has the wrong type`, action: "announce", infoHash: ih},
		{name: "missing info_hash", frame: []byte(`{"action":"announce","peer_id":"` + pid + `"}`), reason: "invalid info_hash: missing", action: "announce"},
		{name: "info_hash 19 chars", frame: []byte(`{"action":"announce","info_hash":"` + ih[:19] + `","peer_id":"` + pid + `"}`), reason: "19 characters", action: "announce"},
		{name: "info_hash 21 chars", frame: []byte(`{"action":"announce","info_hash":"` + ih + `x","peer_id":"` + pid + `"}`), reason: "longer than 20", action: "announce"},
		{name: "info_hash above U+00FF", frame: []byte(`{"action":"announce","info_hash":"tBBwJ0eaWm83RZGsvsT€","peer_id":"` + pid + `"}`), reason: "outside U+0000..U+00FF", action: "announce"},
		{name: "info_hash is a number", frame: []byte(`{"action":"announce","info_hash":12345,"peer_id":"` + pid + `"}`), reason: "not a string", action: "announce"},
		{name: "missing peer_id", frame: []byte(`{"action":"announce","info_hash":"` + ih + `"}`), reason: "invalid peer_id: missing", action: "announce", infoHash: ih},
		{name: "peer_id short", frame: []byte(`{"action":"announce","info_hash":"` + ih + `","peer_id":"-PM0203-"}`), reason: "invalid peer_id: 8 characters", action: "announce", infoHash: ih},
		{name: "peer_id is an object", frame: []byte(`{"action":"announce","info_hash":"` + ih + `","peer_id":{}}`), reason: `field "peer_id" has the wrong type`, action: "announce", infoHash: ih},
		{name: "numwant is a string", frame: []byte(valid(`,"numwant":"5"`)), reason: `field "numwant" has the wrong type`, action: "announce", infoHash: ih},
		{name: "numwant negative", frame: []byte(valid(`,"numwant":-1`)), reason: "invalid numwant", action: "announce", infoHash: ih},
		{name: "numwant fractional", frame: []byte(valid(`,"numwant":2.5`)), reason: "invalid numwant", action: "announce", infoHash: ih},
		{name: "unknown event", frame: []byte(valid(`,"event":"paused"`)), reason: `invalid event "paused"`, action: "announce", infoHash: ih},
		{name: "offers not an array", frame: []byte(valid(`,"offers":{"offer":1}`)), reason: `field "offers" has the wrong type`, action: "announce", infoHash: ih},
		{name: "too many offers", frame: []byte(valid(offers(maxOffersParsed + 1))), reason: "too many offers: more than 1000", action: "announce", infoHash: ih},
		{name: "offer not an object", frame: []byte(valid(`,"offers":[{"offer":"sdp","offer_id":"01234567890123456789"}]`)), reason: "invalid offer 0: not an object", action: "announce", infoHash: ih},
		{name: "offer_id short", frame: []byte(valid(`,"offers":[{"offer":{},"offer_id":"abc"}]`)), reason: "invalid offer_id in offer 0", action: "announce", infoHash: ih},
		{name: "answer without to_peer_id", frame: []byte(valid(`,"answer":{"type":"answer"},"offer_id":"01234567890123456789"`)), reason: "invalid to_peer_id: missing", action: "announce", infoHash: ih},
		{name: "answer without offer_id", frame: []byte(valid(`,"answer":{"type":"answer"},"to_peer_id":"` + specPeerB + `"`)), reason: "invalid offer_id: missing", action: "announce", infoHash: ih},
		{name: "answer not an object", frame: []byte(valid(`,"answer":"sdp","to_peer_id":"` + specPeerB + `","offer_id":"01234567890123456789"`)), reason: "invalid answer: not an object", action: "announce", infoHash: ih},
		{name: "scrape info_hash of wrong type", frame: []byte(`{"action":"scrape","info_hash":{"a":1}}`), reason: "not a string or an array of strings", action: "scrape"},
		{name: "scrape array with short hash", frame: []byte(`{"action":"scrape","info_hash":["` + ih + `","short"]}`), reason: "invalid info_hash: 5 characters", action: "scrape"},
		{name: "scrape array of numbers", frame: []byte(`{"action":"scrape","info_hash":[1,2]}`), reason: "not a string or an array of strings", action: "scrape"},
		{name: "deeply nested JSON", frame: []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), reason: "malformed JSON", action: "announce"},
		{name: "invalid UTF-8 in an offer", frame: []byte(valid(`,"offers":[{"offer":{"sdp":"` + "\xff\xfe" + `"},"offer_id":"01234567890123456789"}]`)), reason: "not valid UTF-8", action: "announce"},
		{name: "trailing garbage", frame: []byte(valid("") + `}`), reason: "malformed JSON", action: "announce"},
		{name: "bad escape in SDP", frame: []byte(valid(`,"offers":[{"offer":{"sdp":"\x"},"offer_id":"01234567890123456789"}]`)), reason: "malformed JSON", action: "announce"},
		{name: "binary frame", frame: []byte{0x63, 0x73, 0x74, 0x72}, binary: true, close: websocket.CloseUnsupportedData},
		{name: "oversized frame", frame: []byte(`{"action":"announce","x":"` + strings.Repeat("a", DefaultMaxMessageSize) + `"}`), close: websocket.CloseMessageTooBig},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	_, url := startTracker(t, Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, url)
			kind := websocket.TextMessage
			if tc.binary {
				kind = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(kind, tc.frame); err != nil {
				t.Fatal(err)
			}
			if tc.close != 0 {
				if code := c.expectClose(); code != tc.close {
					t.Fatalf("close code %d, want %d", code, tc.close)
				}
				return
			}
			r := c.recv()
			fr, _ := r["failure reason"].(string)
			if !strings.Contains(fr, tc.reason) {
				t.Fatalf("failure reason %q, want it to contain %q (reply %v)", fr, tc.reason, r)
			}
			if r["action"] != tc.action {
				t.Fatalf("action %v, want %q", r["action"], tc.action)
			}
			got, _ := r["info_hash"].(string)
			if got != tc.infoHash {
				t.Fatalf("info_hash %q, want %q", got, tc.infoHash)
			}
			// The socket stays usable after a failure reply.
			c.send(`{"action":"scrape","info_hash":"` + ih + `"}`)
			if r := c.recv(); r["action"] != "scrape" {
				t.Fatalf("socket unusable after bad input: %v", r)
			}
		})
	}
}

// TestNoReplyToUnroutableAnswer checks that an answer for a peer that is not
// in the swarm is dropped quietly, as the reference tracker does.
func TestNoReplyToUnroutableAnswer(t *testing.T) {
	tr, url := startTracker(t, Config{})
	c := dial(t, url)
	c.send(`{"action":"announce","info_hash":"` + specInfoHash + `","peer_id":"` + specPeerA + `","to_peer_id":"` + specPeerB + `","answer":{"type":"answer","sdp":"x"},"offer_id":"01234567890123456789"}`)
	c.expectSilence(200 * time.Millisecond)
	if tr.Stats().AnswersUndeliverable != 1 {
		t.Fatalf("stats: %+v", tr.Stats())
	}
}
