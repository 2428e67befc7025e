package tracker

import (
	"encoding/binary"
	"unicode/utf8"
)

// The tracker reads and writes WebSocket frames itself (RFC 6455, server
// side, no extensions); gorilla/websocket only does the handshake. Reading
// from a pooled buffer only when the socket has data lets an idle socket
// hold no buffer and park its goroutine on a shallow stack, which is most
// of the memory a connected peer costs.

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// WebSocket close codes used by the tracker.
const (
	closeNormal         = 1000
	closeGoingAway      = 1001
	closeProtocolError  = 1002
	closeUnsupported    = 1003
	closeInvalidPayload = 1007
	closePolicy         = 1008
	closeTooBig         = 1009
)

// frameError ends a connection with a close code.
type frameError struct {
	code   int
	reason string
}

func (e *frameError) Error() string { return e.reason }

// frameHandler receives what the parser finds.
type frameHandler interface {
	// onText gets a complete text message. The slice is only valid
	// during the call.
	onText(msg []byte)
	onPing(payload []byte)
	onPong()
	// onClose gets the peer's close frame; the parser stops after it.
	onClose(code int)
}

// frameParser turns client bytes into messages. It keeps only the
// fragments of an unfinished message between calls.
type frameParser struct {
	maxMessage int
	fragments  []byte // text fragments so far, nil when none
	inMessage  bool
	closed     bool
}

// parse consumes the complete frames at the start of buf, unmasking them
// in place, and returns how many bytes it used. The rest of buf is an
// unfinished frame for the next call.
func (p *frameParser) parse(buf []byte, h frameHandler) (int, *frameError) {
	used := 0
	for !p.closed {
		b := buf[used:]
		if len(b) < 2 {
			return used, nil
		}
		fin := b[0]&0x80 != 0
		if b[0]&0x70 != 0 {
			return used, &frameError{closeProtocolError, "reserved bits set"}
		}
		op := b[0] & 0x0F
		if b[1]&0x80 == 0 {
			return used, &frameError{closeProtocolError, "client frame not masked"}
		}
		n := uint64(b[1] & 0x7F)
		hdr := 2
		switch n {
		case 126:
			if len(b) < 4 {
				return used, nil
			}
			n = uint64(binary.BigEndian.Uint16(b[2:]))
			hdr = 4
		case 127:
			if len(b) < 10 {
				return used, nil
			}
			n = binary.BigEndian.Uint64(b[2:])
			hdr = 10
		}
		control := op >= opClose
		if control && (n > 125 || !fin) {
			return used, &frameError{closeProtocolError, "invalid control frame"}
		}
		if !control && n > uint64(p.maxMessage) {
			return used, &frameError{closeTooBig, "message too big"}
		}
		if !control && len(p.fragments)+int(n) > p.maxMessage {
			return used, &frameError{closeTooBig, "message too big"}
		}
		total := hdr + 4 + int(n)
		if len(b) < total {
			return used, nil
		}
		mask := b[hdr : hdr+4]
		payload := b[hdr+4 : total]
		unmask(payload, mask)
		used += total
		switch op {
		case opText, opBinary:
			if p.inMessage {
				return used, &frameError{closeProtocolError, "new message inside a fragmented one"}
			}
			if op == opBinary {
				return used, &frameError{closeUnsupported, errNotText.Error()}
			}
			if fin {
				h.onText(payload)
				continue
			}
			p.inMessage = true
			p.fragments = append(p.fragments[:0], payload...)
		case opContinuation:
			if !p.inMessage {
				return used, &frameError{closeProtocolError, "continuation without a message"}
			}
			p.fragments = append(p.fragments, payload...)
			if fin {
				h.onText(p.fragments)
				p.fragments, p.inMessage = nil, false
			}
		case opPing:
			h.onPing(payload)
		case opPong:
			h.onPong()
		case opClose:
			code := closeNormal
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
				if !validCloseCode(code) {
					return used, &frameError{closeProtocolError, "invalid close code"}
				}
			} else if len(payload) == 1 {
				return used, &frameError{closeProtocolError, "invalid close frame"}
			}
			if len(payload) > 2 && !utf8.Valid(payload[2:]) {
				return used, &frameError{closeInvalidPayload, "invalid close reason"}
			}
			p.closed = true
			h.onClose(code)
		default:
			return used, &frameError{closeProtocolError, "unknown opcode"}
		}
	}
	return used, nil
}

// unmask applies the client's masking key to payload in place.
func unmask(payload, mask []byte) {
	if len(payload) >= 8 {
		k := uint64(binary.LittleEndian.Uint32(mask))
		k |= k << 32
		for len(payload) >= 8 {
			binary.LittleEndian.PutUint64(payload, binary.LittleEndian.Uint64(payload)^k)
			payload = payload[8:]
		}
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
}

// appendFrame appends an unmasked server frame.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closePayload is the body of a close frame.
func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = truncate(reason, 120)
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return append(b, reason...)
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): the defined codes that are not reserved for
// local use (1005, 1006, 1015) or unassigned (1004, 1016-2999), and
// 3000-4999 for libraries and applications.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}
