package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// jsonInMessage is inMessage as encoding/json reads it: the reference the
// generator's own reader must agree with.
type jsonInMessage struct {
	Action   string          `json:"action"`
	Failure  *string         `json:"failure reason"`
	Warning  *string         `json:"warning message"`
	InfoHash *string         `json:"info_hash"`
	PeerID   *string         `json:"peer_id"`
	OfferID  *string         `json:"offer_id"`
	Offer    json.RawMessage `json:"offer"`
	Answer   json.RawMessage `json:"answer"`
	Interval *float64        `json:"interval"`
	Complete *float64        `json:"complete"`
}

// inMessageSeeds are the shapes both trackers send, with binary strings.
var inMessageSeeds = []string{
	`{"complete":0,"incomplete":2,"action":"announce","interval":120,"info_hash":"tBBwJ0eaWm83RZGsvsTu"}`,
	`{"action":"announce","offer":{"type":"offer","sdp":"v=0\r\no=- 17 2 IN IP4 127.0.0.1\r\n"},"offer_id":"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013","peer_id":"-PM0203-A3uDGtPH5YH4","info_hash":"tBBwJ0eaWm83RZGsvsTu"}`,
	`{"action":"announce","answer":{"type":"answer","sdp":"v=0\r\n"},"offer_id":"¥¦§¨©ª«¬®¯°±²³´µ¶·¸ÿ","peer_id":"-PM0203-asj3uA7gyGY6","info_hash":"tBBwJ0eaWm83RZGsvsTu"}`,
	`{"action":"announce","failure reason":"rate limit exceeded: message dropped","info_hash":"x"}`,
	`{"action":"announce","warning message":"w","interval":1.5e2,"complete":null}`,
	` { "action" : "scrape" , "files" : { "a" : { "complete" : 1 } } , "x" : [ true , false , null , -1.5 , "\"]" ] } `,
	`{"peer_id":"\ud83d\ude00 and \ud800 alone","action":null}`,
}

func TestParseInMessageMatchesEncodingJSON(t *testing.T) {
	for _, seed := range inMessageSeeds {
		checkInMessage(t, []byte(seed), true)
	}
}

func FuzzParseInMessage(f *testing.F) {
	for _, seed := range inMessageSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkInMessage(t, data, false) })
}

// checkInMessage asserts that whatever encoding/json reads as an object,
// parseInMessage reads the same way. (It may accept some text encoding/json
// refuses: it does not validate what it skips.)
func checkInMessage(t *testing.T, data []byte, mustParse bool) {
	t.Helper()
	var ref jsonInMessage
	refErr := json.Unmarshal(data, &ref)
	if refErr == nil && !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		refErr = errBadMessage // null and such: not an object
	}
	// encoding/json replaces invalid UTF-8 with U+FFFD; text frames are
	// UTF-8, so the generator's reader need not.
	if !utf8.Valid(data) {
		return
	}
	// encoding/json also matches keys that differ in case; trackers send
	// the exact keys, and the generator's reader matches only those.
	lower := bytes.ToLower(data)
	for _, k := range []string{"action", "failure reason", "warning message", "info_hash", "peer_id", "offer_id", "offer", "answer", "interval", "complete"} {
		if q := []byte(`"` + k + `"`); bytes.Count(lower, q) != bytes.Count(data, q) {
			return
		}
	}
	var got inMessage
	err := parseInMessage(data, &got)
	if refErr != nil {
		if mustParse {
			t.Fatalf("seed %q is not valid: %v", data, refErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v, but encoding/json reads it", data, err)
	}
	want := inMessage{Action: ref.Action, Failure: ref.Failure, Warning: ref.Warning, InfoHash: ref.InfoHash,
		PeerID: ref.PeerID, OfferID: ref.OfferID, Interval: ref.Interval, Complete: ref.Complete}
	if ref.Offer != nil {
		want.Offer = ref.Offer
	}
	if ref.Answer != nil {
		want.Answer = ref.Answer
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
}
