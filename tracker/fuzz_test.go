package tracker

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequest feeds arbitrary bytes to the message decoder: it must
// return a request or a *requestError, never panic, and any reply it leads
// to must be valid JSON carrying an action.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"numwant":5,"uploaded":0,"downloaded":0,"event":"started","action":"announce","info_hash":"tBBwJ0eaWm83RZGsvsTu","peer_id":"-PM0203-A3uDGtPH5YH4","offers":[{"offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013"}]}`))
	f.Add([]byte(`{"action":"scrape","info_hash":["tBBwJ0eaWm83RZGsvsTu"]}`))
	f.Add([]byte(`{"action":"announce","info_hash":"…","peer_id":"-PM0203-asj3uA7gyGY6","to_peer_id":"-PM0203-A3uDGtPH5YH4","answer":{"type":"answer","sdp":"…"},"offer_id":"01234567890123456789"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(request)
		if err := decodeRequest(data, req); err != nil {
			re, ok := err.(*requestError)
			if !ok {
				t.Fatalf("error of type %T", err)
			}
			out := appendFailure(nil, re)
			var m map[string]any
			if json.Unmarshal(out, &m) != nil || m["action"] == nil || m["failure reason"] == nil {
				t.Fatalf("failure reply is not valid: %s", out)
			}
			return
		}
		if req.Action != actionAnnounce && req.Action != actionScrape {
			t.Fatalf("accepted action %q", req.Action)
		}
		if req.Action == actionAnnounce {
			ih := req.InfoHash
			if err := checkBinaryString(ih); err != nil || checkBinaryString(*req.PeerID) != nil {
				t.Fatalf("accepted announce with bad ids: %q %v", ih, err)
			}
			for _, o := range req.Offers {
				out := appendRelayed(nil, "offer", ih, *req.PeerID, o.OfferID, o.Offer)
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					t.Fatalf("relayed offer is not JSON: %v: %s", err, out)
				}
				if m["offer_id"] != o.OfferID || m["info_hash"] != ih {
					t.Fatalf("relayed offer changed ids: %s", out)
				}
			}
		}
	})
}

// FuzzAppendString checks that every binary string survives being written
// by appendString and read back by a JSON decoder.
func FuzzAppendString(f *testing.F) {
	f.Add([]byte("\x00\x01\x08\x0c\x1f\"\\\xa5\xff abc"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		runes := make([]rune, len(raw))
		for i, b := range raw {
			runes[i] = rune(b)
		}
		s := string(runes)
		var back string
		out := AppendJSONString(nil, s)
		if err := json.Unmarshal(out, &back); err != nil || back != s {
			t.Fatalf("round trip of %q gave %q (%v) via %s", s, back, err, out)
		}
	})
}

// FuzzScannerMatchesEncodingJSON checks the hand-written scanner against
// encoding/json: it must reject everything json.Valid rejects, accept every
// valid object (unless nested deeper than it allows), and read the same
// field values.
func FuzzScannerMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"action":"announce","info_hash":"a\u00e9\ud83d\ude00","peer_id":"x\"y","numwant":5e0,"offers":[{"offer":{"sdp":"v=0\r\n"},"offer_id":"\u0000"}],"extra":[1,true,null,{"a":-0.5E+3}]}`))
	f.Add([]byte(`{"answer":{"type":"answer"},"to_peer_id":"\ud800","offer_id":"\\\/"}`))
	f.Add([]byte(` {"info_hash":["a","b"],"left":0} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // decodeRequest refuses it before scanning
		}
		var req request
		typeErr, err := parseRequest(data, &req)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			return
		}
		var m map[string]any
		// encoding/json decodes a bare null into a nil map without an
		// error; it is no object either.
		if json.Unmarshal(data, &m) != nil || m == nil {
			if err == nil {
				t.Fatalf("accepted a non-object: %q", data)
			}
			return
		}
		if err != nil {
			if bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) > maxDepth {
				return // deeper than the scanner allows
			}
			t.Fatalf("rejected a valid object %q: %v", data, err)
		}
		str := func(key string, got *string) {
			v, present := m[key]
			s, isString := v.(string)
			switch {
			case isString && (got == nil || *got != s):
				t.Fatalf("%s: scanner read %v, encoding/json %q", key, got, s)
			case present && !isString && v != nil && typeErr == "":
				t.Fatalf("%s: wrong type %T not reported", key, v)
			}
		}
		str("peer_id", req.PeerID)
		str("event", req.Event)
		str("offer_id", req.OfferID)
		str("to_peer_id", req.ToPeerID)
		if s, ok := m["action"].(string); ok && req.Action != s {
			t.Fatalf("action: scanner %q, encoding/json %q", req.Action, s)
		}
		if s, ok := m["info_hash"].(string); ok && req.InfoHash != s {
			t.Fatalf("info_hash: scanner %q, encoding/json %q", req.InfoHash, s)
		}
		if n, ok := m["numwant"].(float64); ok && (req.Numwant == nil || *req.Numwant != n) {
			t.Fatalf("numwant: scanner %v, encoding/json %v", req.Numwant, n)
		}
		if a, ok := m["answer"]; ok && a != nil {
			var back any
			if json.Unmarshal(req.Answer, &back) != nil {
				t.Fatalf("answer raw value is not JSON: %q", req.Answer)
			}
		}
	})
}
