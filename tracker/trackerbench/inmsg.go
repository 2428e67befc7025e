package main

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// inMessage is a message from the tracker. Optional fields are pointers or
// raw JSON so that an absent field can be told from an empty one; the SDP
// objects stay raw because only their o= line is read.
type inMessage struct {
	Action   string
	Failure  *string // "failure reason"
	Warning  *string // "warning message"
	InfoHash *string
	PeerID   *string
	OfferID  *string
	Offer    []byte // raw JSON value
	Answer   []byte // raw JSON value
	Interval *float64
	Complete *float64
}

var errBadMessage = errors.New("malformed message")

// parseInMessage reads a tracker message into m. It checks the structure
// it walks and the types of the fields it keeps, but unlike encoding/json
// it does not validate every byte of the values it skips or keeps raw: the
// generator shares the cores with the tracker it measures, and
// json.Unmarshal was a quarter of its CPU.
func parseInMessage(data []byte, m *inMessage) error {
	*m = inMessage{}
	s := jsonReader{b: data}
	if !s.take('{') {
		return errBadMessage
	}
	if s.take('}') {
		return s.end()
	}
	for {
		key, ok := s.rawString()
		if !ok || !s.take(':') {
			return errBadMessage
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			k, ok := unescape(key)
			if !ok {
				return errBadMessage
			}
			key = []byte(k)
		}
		switch string(key) {
		case "action":
			var v *string
			if v, ok = s.optString(); ok && v != nil {
				m.Action = *v
			}
		case "failure reason":
			m.Failure, ok = s.optString()
		case "warning message":
			m.Warning, ok = s.optString()
		case "info_hash":
			m.InfoHash, ok = s.optString()
		case "peer_id":
			m.PeerID, ok = s.optString()
		case "offer_id":
			m.OfferID, ok = s.optString()
		case "offer":
			m.Offer, ok = s.value()
		case "answer":
			m.Answer, ok = s.value()
		case "interval":
			m.Interval, ok = s.optNumber()
		case "complete":
			m.Complete, ok = s.optNumber()
		default:
			_, ok = s.value()
		}
		if !ok {
			return errBadMessage
		}
		if s.take(',') {
			continue
		}
		if s.take('}') {
			return s.end()
		}
		return errBadMessage
	}
}

// jsonReader walks JSON text.
type jsonReader struct {
	b   []byte
	pos int
}

func (s *jsonReader) space() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// take consumes c if it comes next.
func (s *jsonReader) take(c byte) bool {
	s.space()
	if s.pos < len(s.b) && s.b[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *jsonReader) end() error {
	s.space()
	if s.pos != len(s.b) {
		return errBadMessage
	}
	return nil
}

// rawString returns the bytes between the quotes of the next string,
// escapes left as they are.
func (s *jsonReader) rawString() ([]byte, bool) {
	s.space()
	if s.pos >= len(s.b) || s.b[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case '"':
			s.pos = i + 1
			return s.b[start:i], true
		}
	}
	return nil, false
}

// optString reads a string (nil for null).
func (s *jsonReader) optString() (*string, bool) {
	s.space()
	if s.literal("null") {
		return nil, true
	}
	raw, ok := s.rawString()
	if !ok {
		return nil, false
	}
	v, ok := unescape(raw)
	return &v, ok
}

// optNumber reads a number (nil for null).
func (s *jsonReader) optNumber() (*float64, bool) {
	s.space()
	if s.literal("null") {
		return nil, true
	}
	start := s.pos
	for s.pos < len(s.b) && isNumberByte(s.b[s.pos]) {
		s.pos++
	}
	v, err := strconv.ParseFloat(string(s.b[start:s.pos]), 64)
	if err != nil {
		return nil, false
	}
	return &v, true
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func (s *jsonReader) literal(word string) bool {
	if len(s.b)-s.pos >= len(word) && string(s.b[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// value skips one value of any type and returns its bytes.
func (s *jsonReader) value() ([]byte, bool) {
	s.space()
	start := s.pos
	if s.pos >= len(s.b) {
		return nil, false
	}
	switch c := s.b[s.pos]; {
	case c == '"':
		if _, ok := s.rawString(); !ok {
			return nil, false
		}
	case c == '{' || c == '[':
		depth := 0
		for s.pos < len(s.b) {
			switch s.b[s.pos] {
			case '"':
				if _, ok := s.rawString(); !ok {
					return nil, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return s.b[start:s.pos], true
			}
		}
		return nil, false
	case s.literal("true") || s.literal("false") || s.literal("null"):
	case isNumberByte(c):
		for s.pos < len(s.b) && isNumberByte(s.b[s.pos]) {
			s.pos++
		}
	default:
		return nil, false
	}
	return s.b[start:s.pos], true
}

// unescape decodes the inside of a JSON string.
func unescape(raw []byte) (string, bool) {
	i := 0
	for i < len(raw) && raw[i] != '\\' {
		i++
	}
	if i == len(raw) {
		return string(raw), true
	}
	out := append(make([]byte, 0, len(raw)), raw[:i]...)
	for i < len(raw) {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return "", false
		}
		e := raw[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw, i)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if v, ok := hex4(raw, i+2); ok {
						r2 = v
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
