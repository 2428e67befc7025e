package tracker

import (
	"strings"
	"testing"
)

// realisticAnnounce is a browser re-announce with 5 offers of Chromium-sized
// SDP (about 800 bytes each), as P2P Media Loader sends every interval.
func realisticAnnounce() []byte {
	sdp := `v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n` +
		strings.Repeat(`a=candidate:1467250027 1 udp 2122260223 10.201.0.1 46154 typ host generation 0 network-id 1\r\n`, 4) +
		`a=ice-ufrag:Hl4V\r\na=ice-pwd:lSqLRIxXGK0SVoy1xXcLvgCg\r\na=ice-options:trickle\r\na=fingerprint:sha-256 3C:4F:0A:9B:6E:21:AB:3F:58:7C:11:0E:2D:9A:BC:44:61:87:F0:1D:2E:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n`
	var b strings.Builder
	b.WriteString(`{"numwant":5,"uploaded":0,"downloaded":0,"action":"announce","info_hash":"tBBwJ0eaWm83RZGsvsTu","peer_id":"-PM0203-A3uDGtPH5YH4","offers":[`)
	for i := 0; i < 5; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"offer":{"type":"offer","sdp":"` + sdp + `"},"offer_id":"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013"}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkDecodeAnnounce5Offers measures decoding one realistic announce
// into a recycled request, as a socket's handler does.
func BenchmarkDecodeAnnounce5Offers(b *testing.B) {
	msg := realisticAnnounce()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		req := requestPool.Get().(*request)
		if err := decodeRequest(msg, req); err != nil {
			b.Fatal(err)
		}
		putRequest(req)
	}
}

// BenchmarkEncodeRelayedOffer measures building one relayed offer message.
func BenchmarkEncodeRelayedOffer(b *testing.B) {
	req := new(request)
	if err := decodeRequest(realisticAnnounce(), req); err != nil {
		b.Fatal(err)
	}
	ih := req.InfoHash
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRelayed(buf[:0], "offer", ih, *req.PeerID, req.Offers[0].OfferID, req.Offers[0].Offer)
	}
}
