package main

import (
	"github.com/caddy-p2p/caddy-p2p/tracker"

	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestAnnounceShape checks that a generated announce is valid JSON in the
// shape P2P Media Loader sends, with realistic offers and binary offer_ids.
func TestAnnounceShape(t *testing.T) {
	now := time.Now().UnixNano()
	ih, pid := swarmInfoHash(7), newPeerID()
	data := appendAnnounce(nil, true, ih, pid, now)
	var m struct {
		Numwant  int     `json:"numwant"`
		Event    *string `json:"event"`
		Action   string  `json:"action"`
		InfoHash string  `json:"info_hash"`
		PeerID   string  `json:"peer_id"`
		Offers   []struct {
			Offer struct {
				Type string `json:"type"`
				SDP  string `json:"sdp"`
			} `json:"offer"`
			OfferID string `json:"offer_id"`
		} `json:"offers"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("announce is not valid JSON: %v\n%s", err, data)
	}
	if m.Numwant != 5 || m.Event == nil || *m.Event != "started" || m.Action != "announce" ||
		m.InfoHash != ih || m.PeerID != pid || len(m.Offers) != 5 {
		t.Fatalf("unexpected announce %+v", m)
	}
	if len(ih) != 20 || len(pid) != 20 || !strings.HasPrefix(pid, "-PM0203-") {
		t.Fatalf("info_hash %q or peer_id %q is not 20 ASCII characters", ih, pid)
	}
	for i, o := range m.Offers {
		if o.Offer.Type != "offer" || !strings.HasPrefix(o.Offer.SDP, "v=0\r\no=- ") ||
			!strings.HasSuffix(o.Offer.SDP, "\r\n") {
			t.Fatalf("offer %d is not an SDP offer: %q", i, o.Offer.SDP)
		}
		if n := len(o.Offer.SDP); n < 600 || n > 900 {
			t.Errorf("offer SDP is %d bytes, want 600-900", n)
		}
		if utf8.RuneCountInString(o.OfferID) != 20 {
			t.Errorf("offer_id %d = %q, want 20 code points", i, o.OfferID)
		}
		if sent, ok := checkOfferID(pid, o.OfferID); !ok || sent != now {
			t.Errorf("offer_id %d: checkOfferID = %d, %v; want %d", i, sent, ok, now)
		}
		if _, ok := checkOfferID(newPeerID(), o.OfferID); ok {
			t.Errorf("offer_id %d is accepted for another peer", i)
		}
		for _, r := range o.OfferID {
			if r > 0xff {
				t.Errorf("offer_id has code point %U above U+00FF", r)
			}
		}
	}
	var raw struct {
		Offers []struct {
			Offer json.RawMessage `json:"offer"`
		} `json:"offers"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if ts, ok := sdpTimestamp(raw.Offers[0].Offer, now); !ok || ts != now {
		t.Errorf("sdpTimestamp = %d, %v; want %d", ts, ok, now)
	}
	reannounce := appendAnnounce(nil, false, ih, pid, now)
	if strings.Contains(string(reannounce), `"event"`) {
		t.Errorf("re-announce carries an event")
	}
}

// TestAnswerShape checks the answer message and its SDP size.
func TestAnswerShape(t *testing.T) {
	now := time.Now().UnixNano()
	offerID := binaryString([]byte{0, 1, 0x1f, '"', '\\', 0x7f, 0x80, 0xa5, 0xff, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	data := appendAnswer(nil, "tBBwJ0eaWm83RZGsvsTu", "-PM0203-A3uDGtPH5YH4", "-PM0203-asj3uA7gyGY6", offerID, now)
	var m struct {
		Action   string `json:"action"`
		ToPeerID string `json:"to_peer_id"`
		Answer   struct {
			Type string `json:"type"`
			SDP  string `json:"sdp"`
		} `json:"answer"`
		OfferID string `json:"offer_id"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("answer is not valid JSON: %v\n%s", err, data)
	}
	if m.Action != "announce" || m.ToPeerID != "-PM0203-asj3uA7gyGY6" || m.Answer.Type != "answer" {
		t.Fatalf("unexpected answer %+v", m)
	}
	if m.OfferID != offerID {
		t.Errorf("offer_id %q did not survive JSON, got %q", offerID, m.OfferID)
	}
	if n := len(m.Answer.SDP); n < 500 || n > 900 {
		t.Errorf("answer SDP is %d bytes, want 500-900", n)
	}
}

// TestJSONStringMatchesEncodingJSON checks the hand-written string encoder
// against encoding/json for every code point 0-255.
func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	var r []rune
	for c := range 256 {
		r = append(r, rune(c))
	}
	s := string(r)
	var back string
	if err := json.Unmarshal(tracker.AppendJSONString(nil, s), &back); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Fatalf("round trip changed the string")
	}
	if got := string(tracker.AppendJSONString(nil, "\x07")); got != `"\u0007"` {
		t.Errorf("control byte encoded as %s, want \"\\u0007\" as JSON.stringify does", got)
	}
}

// TestHist checks bucket round trips and quantiles.
func TestHist(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 12345, 1 << 30} {
		b := histBucket(v)
		hi := histValue(b)
		if hi < v || float64(hi-v) > float64(v)/64+1 {
			t.Errorf("value %d: bucket %d upper edge %d", v, b, hi)
		}
	}
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	var m Hist
	m.Merge(h)
	for _, q := range []float64{0.5, 0.99} {
		want := q * 1000
		if got := m.Quantile(q); math.Abs(got-want)/want > 0.02 {
			t.Errorf("p%g = %.1f ms, want about %.0f", q*100, got, want)
		}
	}
	if m.Quantile(1) != 1000 || m.MaxUS != 1000000 {
		t.Errorf("max = %v", m.Quantile(1))
	}
}

// TestSDPTimestampRejects checks that implausible timestamps are refused.
func TestSDPTimestampRejects(t *testing.T) {
	now := time.Now().UnixNano()
	for _, raw := range []string{`{}`, `{"sdp":"o=- 123 2"}`, `{"sdp":"o=- x"}`, `{"sdp":"o=- 99999999999999999999"}`} {
		if _, ok := sdpTimestamp([]byte(raw), now); ok {
			t.Errorf("sdpTimestamp accepted %s", raw)
		}
	}
}

// TestQuickFlags checks that -quick sets a small run and explicit flags win.
func TestQuickFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-rate", "300", "-ours-env", "GOGC=50, GOMEMLIMIT=1GiB"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Peers != 1000 || o.Swarms != 20 || o.Rate != 300 || o.Duration != 5*time.Second || o.Workers != 2 ||
		len(o.OursEnv) != 2 || o.OursEnv[1] != "GOMEMLIMIT=1GiB" {
		t.Errorf("unexpected options %+v", o)
	}
	o, err = parseFlags([]string{"-peers", "19000"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Swarms != 396 || o.Workers != 4 {
		t.Errorf("19000 peers: %d swarms, %d workers", o.Swarms, o.Workers)
	}
	if _, err := parseFlags([]string{"-trackers", "nope"}); err == nil {
		t.Error("unknown tracker accepted")
	}
	if _, err := parseFlags([]string{"-ours-env", "GOGC"}); err == nil {
		t.Error("-ours-env without = accepted")
	}
}

// TestAckRing checks that announce responses are matched in order, also
// when more announces wait than the ring holds.
func TestAckRing(t *testing.T) {
	var p peer
	if _, ok := p.acked(); ok {
		t.Fatal("response matched with no announce waiting")
	}
	n := len(p.sent) + 3
	for i := 1; i <= n; i++ {
		p.announced(int64(i))
	}
	if p.unacked() != n {
		t.Fatalf("unacked = %d, want %d", p.unacked(), n)
	}
	for i := 1; i <= n; i++ {
		ts, ok := p.acked()
		want := int64(i)
		if i <= 3 {
			want = 0 // dropped from the ring
		}
		if !ok || ts != want {
			t.Fatalf("response %d: %d, %v; want %d, true", i, ts, ok, want)
		}
	}
	if _, ok := p.acked(); ok {
		t.Fatal("extra response matched")
	}
}

// TestHandleBadReplies feeds malformed tracker messages to a peer: each
// must be counted, none may panic.
func TestHandleBadReplies(t *testing.T) {
	w := &worker{stats: &Stats{}}
	p := &peer{infoHash: swarmInfoHash(1), peerID: newPeerID()}
	bad := []string{
		``, `null`, `[]`, `"x"`, `{`, `{}`, `{"offer":null}`, `{"offer":{"sdp":"o=- 1"}}`,
		`{"offer":{"sdp":"v=0"},"peer_id":"-PM0203-aaaaaaaaaaaa","offer_id":"x"}`,
		`{"answer":{}}`, `{"answer":"x","offer_id":7}`, `{"action":"announce","interval":"x"}`,
		`{"failure reason":5}`, `{"info_hash":123,"action":"announce","interval":120}`,
		`{"action":"scrape","files":{}}`,
	}
	for _, m := range bad {
		w.handle(p, []byte(m))
	}
	s := w.takeStats()
	if got := s.BadMessages; got != int64(len(bad)) {
		t.Errorf("%d bad messages counted, want %d (stats %+v)", got, len(bad), s)
	}
	w.handle(p, []byte(`{"action":"announce","failure reason":"nope","info_hash":"x"}`))
	w.handle(p, []byte(`{"action":"announce","interval":120,"info_hash":"`+p.infoHash+`"}`))
	s = w.takeStats()
	if s.Failures["nope"] != 1 || s.UnsolicitedAcks != 1 {
		t.Errorf("failure or unsolicited response not counted: %+v", s)
	}
}
