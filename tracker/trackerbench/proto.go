package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"github.com/caddy-p2p/caddy-p2p/tracker"
	"math/rand/v2"
	"strconv"
	"time"
)

// This file builds and parses the WebTorrent tracker messages exchanged by
// P2P Media Loader 2.x peers (shared/spec/p2pml-v2-wire.md §2.4). Outgoing
// messages are written by hand, in the key order the browser client uses,
// because the load generator shares the machine's cores with the tracker it
// measures and encoding/json would cost it several times more CPU.

// Message kinds the load generator sends.
const (
	kindStarted  = iota // first announce, event "started"
	kindAnnounce        // periodic re-announce, no event
	kindAnswer          // answer to a relayed offer
)

// offersPerAnnounce is what P2P Media Loader always sends: numwant 5 and 5
// offers per announce.
const offersPerAnnounce = 5

// alnum is the alphabet of P2P Media Loader's random peer_id characters.
const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// iceChars is the alphabet of ICE ufrag and pwd characters in Chromium's SDP.
const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// swarmInfoHash returns the info_hash of swarm number i: 20 base64
// characters derived from 15 bytes of a SHA-1, like P2P Media Loader 2.3's
// getStreamHash. Every worker process derives the same value for i.
func swarmInfoHash(i int) string {
	sum := sha1.Sum(fmt.Appendf(nil, "v2-https://bench.example/live/%d/master.m3u8-main-0", i))
	return base64.StdEncoding.EncodeToString(sum[:15])
}

// newPeerID returns a random 20-character peer_id in P2P Media Loader 2.3's
// format: "-PM0203-" followed by 12 alphanumerics.
func newPeerID() string {
	b := []byte("-PM0203-............")
	for i := 8; i < len(b); i++ {
		b[i] = alnum[rand.IntN(len(alnum))]
	}
	return string(b)
}

// offerKey is this process's secret for tagging offer_ids.
var offerKey = rand.Uint64()

// offerTag authenticates the first 12 bytes of an offer_id made by peerID.
func offerTag(peerID string, b []byte) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037) ^ offerKey
	for i := range len(peerID) {
		h = (h ^ uint64(peerID[i])) * prime
	}
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	return h
}

// newOfferID returns a 20-byte offer_id as a "binary string": each byte
// becomes the code point of the same value, so that encoding the string as
// JSON gives what JavaScript's JSON.stringify gives for the browser's
// random offer_id. The bytes look random to the tracker but carry the send
// time (masked) and a tag, so the offering peer can tell its own offer_ids
// from others and time the whole offer-to-answer round trip without
// keeping any state per offer.
func newOfferID(peerID string, sentNanos int64) string {
	var raw [20]byte
	binary.LittleEndian.PutUint64(raw[0:8], uint64(sentNanos)^offerKey)
	binary.LittleEndian.PutUint32(raw[8:12], rand.Uint32())
	binary.LittleEndian.PutUint64(raw[12:20], offerTag(peerID, raw[:12]))
	return binaryString(raw[:])
}

// checkOfferID reports whether id was made by newOfferID for peerID in
// this process, and if so when the offer was sent.
func checkOfferID(peerID, id string) (int64, bool) {
	var raw [20]byte
	n := 0
	for _, r := range id {
		if r > 0xff || n == len(raw) {
			return 0, false
		}
		raw[n] = byte(r)
		n++
	}
	if n != len(raw) || binary.LittleEndian.Uint64(raw[12:20]) != offerTag(peerID, raw[:12]) {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(raw[0:8]) ^ offerKey), true
}

// binaryString converts bytes to a string of the code points 0-255 with the
// same values.
func binaryString(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// randomBits hands out random bits, drawing 64 at a time: the SDP of every
// offer has about 100 random characters, and one draw per character was a
// tenth of the generator's CPU.
type randomBits struct {
	v uint64
	n int
}

// take returns k (at most 64) random bits.
func (r *randomBits) take(k int) uint64 {
	if r.n < k {
		r.v, r.n = rand.Uint64(), 64
	}
	v := r.v & (1<<k - 1)
	r.v >>= k
	r.n -= k
	return v
}

// appendICEChars appends n random characters of iceChars (64 of them, so
// 6 bits each).
func appendICEChars(dst []byte, r *randomBits, n int) []byte {
	for range n {
		dst = append(dst, iceChars[r.take(6)])
	}
	return dst
}

// appendUUID appends a random version 4 UUID, the form of Chromium's mDNS
// host candidate names.
func appendUUID(dst []byte, r *randomBits) []byte {
	const hex = "0123456789abcdef"
	for i := range 36 {
		switch i {
		case 8, 13, 18, 23:
			dst = append(dst, '-')
		case 14:
			dst = append(dst, '4')
		default:
			dst = append(dst, hex[r.take(4)])
		}
	}
	return dst
}

// crlf is an SDP line end as it appears inside a JSON string.
const crlf = `\r\n`

// appendSDP appends, already escaped for a JSON string, an SDP shaped like
// the non-trickle data-channel offer (or answer) of Chromium as
// simple-peer sends it: all candidates inline and no ice-options line. The
// session id of the o= line carries sentNanos, the Unix time in
// nanoseconds when the message was sent, so that the receiving peer (in any
// worker process) can compute the relay latency. An offer (two host
// candidates on two networks and one server-reflexive candidate) is about
// 860 bytes and an answer (one of each) about 740 bytes, as in real traffic.
func appendSDP(dst []byte, answer bool, sentNanos int64) []byte {
	var r randomBits
	port := 1024 + rand.IntN(64000)
	var hostBuf [36]byte
	host := appendUUID(hostBuf[:0], &r)
	dst = append(dst, "v=0"+crlf+"o=- "...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	dst = append(dst, " 2 IN IP4 127.0.0.1"+crlf+"s=-"+crlf+"t=0 0"+crlf+
		"a=group:BUNDLE 0"+crlf+"a=extmap-allow-mixed"+crlf+"a=msid-semantic: WMS"+crlf+
		"m=application "...)
	dst = strconv.AppendInt(dst, int64(port), 10)
	dst = append(dst, " UDP/DTLS/SCTP webrtc-datachannel"+crlf+"c=IN IP4 203.0.113."...)
	srflx := 1 + rand.IntN(250)
	dst = strconv.AppendInt(dst, int64(srflx), 10)
	dst = append(dst, crlf...)
	candidate := func(prio int64, proto, addr string, cport int, typ string, network int) {
		dst = append(dst, "a=candidate:"...)
		dst = strconv.AppendUint(dst, r.take(32), 10)
		dst = append(dst, " 1 "...)
		dst = append(dst, proto...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, prio, 10)
		dst = append(dst, ' ')
		if addr == "" {
			dst = append(dst, host...)
			dst = append(dst, ".local"...)
		} else {
			dst = append(dst, addr...)
			dst = strconv.AppendInt(dst, int64(srflx), 10)
		}
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(cport), 10)
		dst = append(dst, " typ "...)
		dst = append(dst, typ...)
		if typ == "srflx" {
			dst = append(dst, " raddr 0.0.0.0 rport 0"...)
		}
		dst = append(dst, " generation 0 network-id "...)
		dst = strconv.AppendInt(dst, int64(network), 10)
		dst = append(dst, " network-cost 10"+crlf...)
	}
	candidate(2122260223, "udp", "", port, "host", 1)
	if !answer {
		candidate(2122194687, "udp", "", 1024+rand.IntN(64000), "host", 2)
	}
	candidate(1686052607, "udp", "203.0.113.", port, "srflx", 1)
	dst = append(dst, "a=ice-ufrag:"...)
	dst = appendICEChars(dst, &r, 4)
	dst = append(dst, crlf+"a=ice-pwd:"...)
	dst = appendICEChars(dst, &r, 24)
	dst = append(dst, crlf+"a=fingerprint:sha-256 "...)
	const hex = "0123456789ABCDEF"
	for i := range 32 {
		if i > 0 {
			dst = append(dst, ':')
		}
		b := r.take(8)
		dst = append(dst, hex[b>>4], hex[b&0xf])
	}
	if answer {
		dst = append(dst, crlf+"a=setup:active"...)
	} else {
		dst = append(dst, crlf+"a=setup:actpass"...)
	}
	dst = append(dst, crlf+"a=mid:0"+crlf+"a=sctp-port:5000"+crlf+"a=max-message-size:262144"+crlf...)
	return dst
}

// appendAnnounce appends an announce with 5 fresh offers, as P2P Media
// Loader sends it, stamped with sentNanos.
func appendAnnounce(dst []byte, started bool, infoHash, peerID string, sentNanos int64) []byte {
	dst = append(dst, `{"numwant":5,"uploaded":0,"downloaded":0,`...)
	if started {
		dst = append(dst, `"event":"started",`...)
	}
	dst = append(dst, `"action":"announce","info_hash":`...)
	dst = tracker.AppendJSONString(dst, infoHash)
	dst = append(dst, `,"peer_id":`...)
	dst = tracker.AppendJSONString(dst, peerID)
	dst = append(dst, `,"offers":[`...)
	for i := range offersPerAnnounce {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"offer":{"type":"offer","sdp":"`...)
		dst = appendSDP(dst, false, sentNanos)
		dst = append(dst, `"},"offer_id":`...)
		dst = tracker.AppendJSONString(dst, newOfferID(peerID, sentNanos))
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendAnswer appends the answer a browser sends back through the tracker
// for a relayed offer, stamped with sentNanos.
func appendAnswer(dst []byte, infoHash, peerID, toPeerID, offerID string, sentNanos int64) []byte {
	dst = append(dst, `{"action":"announce","info_hash":`...)
	dst = tracker.AppendJSONString(dst, infoHash)
	dst = append(dst, `,"peer_id":`...)
	dst = tracker.AppendJSONString(dst, peerID)
	dst = append(dst, `,"to_peer_id":`...)
	dst = tracker.AppendJSONString(dst, toPeerID)
	dst = append(dst, `,"answer":{"type":"answer","sdp":"`...)
	dst = appendSDP(dst, true, sentNanos)
	dst = append(dst, `"},"offer_id":`...)
	dst = tracker.AppendJSONString(dst, offerID)
	return append(dst, '}')
}

// sdpTimestamp reads the send time that appendSDP put in the o= line of the
// raw JSON of an offer or answer object. It reports false when the object
// has no such line or the time is implausible (not within the last hour).
func sdpTimestamp(raw []byte, now int64) (int64, bool) {
	i := bytes.Index(raw, []byte("o=- "))
	if i < 0 {
		return 0, false
	}
	raw = raw[i+4:]
	var ts int64
	n := 0
	for n < len(raw) && n < 19 && raw[n] >= '0' && raw[n] <= '9' {
		ts = ts*10 + int64(raw[n]-'0')
		n++
	}
	if n == 0 || ts > now+int64(time.Second) || ts < now-int64(time.Hour) {
		return 0, false
	}
	return ts, true
}
