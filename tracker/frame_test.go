package tracker

import (
	"bytes"
	"testing"
)

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

type recorder struct {
	texts  []string
	pings  []string
	pongs  int
	closes []int
}

func (r *recorder) onText(m []byte)  { r.texts = append(r.texts, string(m)) }
func (r *recorder) onPing(p []byte)  { r.pings = append(r.pings, string(p)) }
func (r *recorder) onPong()          { r.pongs++ }
func (r *recorder) onClose(code int) { r.closes = append(r.closes, code) }

func TestFrameParserMessagesAndControl(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 7000) // 70,000 bytes: 64-bit length
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte("hello"))...)
	stream = append(stream, clientFrame(false, opText, []byte("frag"))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p"))...) // control between fragments
	stream = append(stream, clientFrame(true, opContinuation, []byte("mented"))...)
	stream = append(stream, clientFrame(true, opText, long[:300])...) // 16-bit length
	stream = append(stream, clientFrame(true, opText, long)...)
	stream = append(stream, clientFrame(true, opPong, nil)...)
	stream = append(stream, clientFrame(true, opClose, []byte{0x03, 0xe9, 'b', 'y', 'e'})...)
	stream = append(stream, clientFrame(true, opText, []byte("after close"))...)

	// Feed it in every split to check partial frames wait for more bytes.
	for _, step := range []int{1, 7, 4096, len(stream)} {
		p := frameParser{maxMessage: 1 << 20}
		var r recorder
		var buf []byte
		for off := 0; off < len(stream); off += step {
			buf = append(buf, stream[off:min(off+step, len(stream))]...)
			used, err := p.parse(buf, &r)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			buf = buf[used:]
		}
		if len(r.texts) != 4 || r.texts[0] != "hello" || r.texts[1] != "fragmented" || r.texts[2] != string(long[:300]) || r.texts[3] != string(long) {
			t.Fatalf("step %d: texts %q", step, r.texts[:min(2, len(r.texts))])
		}
		if len(r.pings) != 1 || r.pings[0] != "p" || r.pongs != 1 || len(r.closes) != 1 || r.closes[0] != 1001 {
			t.Fatalf("step %d: pings %q pongs %d closes %v", step, r.pings, r.pongs, r.closes)
		}
	}
}

func TestFrameParserRejects(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		code  int
	}{
		{"unmasked", []byte{0x81, 0x01, 'x'}, closeProtocolError},
		{"reserved bit", append([]byte{0xC1}, clientFrame(true, opText, []byte("x"))[1:]...), closeProtocolError},
		{"binary", clientFrame(true, opBinary, []byte("cstr")), closeUnsupported},
		{"unknown opcode", clientFrame(true, 0x3, nil), closeProtocolError},
		{"fragmented ping", clientFrame(false, opPing, nil), closeProtocolError},
		{"long ping", clientFrame(true, opPing, make([]byte, 126)), closeProtocolError},
		{"stray continuation", clientFrame(true, opContinuation, []byte("x")), closeProtocolError},
		{"text inside fragments", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), closeProtocolError},
		{"too big in one frame", clientFrame(true, opText, make([]byte, 2000)), closeTooBig},
		{"too big over fragments", append(clientFrame(false, opText, make([]byte, 800)), clientFrame(true, opContinuation, make([]byte, 800))...), closeTooBig},
		{"huge declared length", []byte{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, closeTooBig},
		{"one-byte close", clientFrame(true, opClose, []byte{3}), closeProtocolError},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte{3, 0xe8, 0xff}), closeInvalidPayload},
		{"close code 1005 (no status, local only)", clientFrame(true, opClose, []byte{0x03, 0xed}), closeProtocolError},
		{"close code 1006 (abnormal, local only)", clientFrame(true, opClose, []byte{0x03, 0xee}), closeProtocolError},
		{"close code 999", clientFrame(true, opClose, []byte{0x03, 0xe7}), closeProtocolError},
		{"close code 2000 (unassigned)", clientFrame(true, opClose, []byte{0x07, 0xd0}), closeProtocolError},
	}
	for _, tc := range cases {
		p := frameParser{maxMessage: 1024}
		_, err := p.parse(tc.frame, &recorder{})
		if err == nil || err.code != tc.code {
			t.Errorf("%s: got %v, want close %d", tc.name, err, tc.code)
		}
	}
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := appendFrame(nil, opText, make([]byte, n))
		hdr := map[bool]int{true: 2}[n <= 125] + map[bool]int{true: 4}[n > 125 && n <= 65535] + map[bool]int{true: 10}[n > 65535]
		if len(f) != hdr+n || f[0] != 0x81 {
			t.Fatalf("frame of %d bytes: header %x, length %d", n, f[:2], len(f))
		}
	}
}

// FuzzFrameParser feeds arbitrary bytes, split at an arbitrary point, to the
// frame parser: it must never panic, never consume more than it was given,
// and never deliver a message above the limit.
func FuzzFrameParser(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte(`{"action":"scrape"}`)), uint16(3))
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...), uint16(9))
	f.Add(clientFrame(true, opClose, []byte{3, 0xe8}), uint16(0))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0}, uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		const limit = 4096
		p := frameParser{maxMessage: limit}
		h := &limitChecker{t: t, limit: limit}
		cut := int(split) % (len(data) + 1)
		buf := append([]byte(nil), data[:cut]...)
		used, err := p.parse(buf, h)
		if used > len(buf) {
			t.Fatalf("used %d of %d bytes", used, len(buf))
		}
		if err != nil {
			return
		}
		buf = append(buf[used:], data[cut:]...)
		if used, _ = p.parse(buf, h); used > len(buf) {
			t.Fatalf("used %d of %d bytes", used, len(buf))
		}
	})
}

type limitChecker struct {
	t     *testing.T
	limit int
}

func (l *limitChecker) onText(m []byte) {
	if len(m) > l.limit {
		l.t.Fatalf("message of %d bytes over the %d limit", len(m), l.limit)
	}
}
func (l *limitChecker) onPing(p []byte) {
	if len(p) > 125 {
		l.t.Fatalf("ping of %d bytes", len(p))
	}
}
func (l *limitChecker) onPong()     {}
func (l *limitChecker) onClose(int) {}

// A close frame with a code a peer may send is answered with the same
// code; one with a code reserved for local use gets 1002 (RFC 6455 §7.4).
func TestCloseCodeEchoed(t *testing.T) {
	_, url := startTracker(t, Config{})
	for _, tc := range []struct{ sent, want int }{
		{1000, 1000}, {1001, 1001}, {4000, 4000}, {1006, closeProtocolError}, {1015, closeProtocolError},
	} {
		c := dial(t, url)
		// gorilla refuses to send codes reserved for local use, so
		// the frame is written on the socket.
		payload := []byte{byte(tc.sent >> 8), byte(tc.sent)}
		if _, err := c.ws.UnderlyingConn().Write(clientFrame(true, opClose, payload)); err != nil {
			t.Fatal(err)
		}
		if got := c.expectClose(); got != tc.want {
			t.Errorf("close code %d answered with %d, want %d", tc.sent, got, tc.want)
		}
	}
}
