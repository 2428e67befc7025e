package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Actions a client may send.
const (
	actionAnnounce = "announce"
	actionScrape   = "scrape"
)

// Announce events.
const (
	eventStarted   = "started"
	eventCompleted = "completed"
	eventStopped   = "stopped"
	eventUpdate    = "update"
)

// request is one decoded client message. Pointer and raw fields tell an
// absent field from an empty one.
type request struct {
	Action   string          `json:"action"`
	InfoHash json.RawMessage `json:"info_hash"`
	PeerID   *string         `json:"peer_id"`
	Numwant  *float64        `json:"numwant"`
	Event    *string         `json:"event"`
	Left     *float64        `json:"left"`
	Offers   []offer         `json:"offers"`
	Answer   json.RawMessage `json:"answer"`
	OfferID  *string         `json:"offer_id"`
	ToPeerID *string         `json:"to_peer_id"`
}

// offer is one entry of an announce's offers array.
type offer struct {
	Offer   json.RawMessage `json:"offer"`
	OfferID string          `json:"offer_id"`
}

// requestError is a client error answered with a failure reason.
type requestError struct {
	action   string
	infoHash string
	reason   string
}

func (e *requestError) Error() string { return e.reason }

// errNotText is returned for binary WebSocket frames.
var errNotText = errors.New("binary frames are not part of the protocol")

// decodeRequest parses and validates one client message. On failure it
// returns a *requestError carrying whatever action and info_hash could be
// read, so the reply can name them.
func decodeRequest(data []byte, cfg *Config) (*request, error) {
	var req request
	err := json.Unmarshal(data, &req)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return nil, &requestError{action: actionAnnounce, reason: "invalid message: malformed JSON"}
	}
	action := req.Action
	if action != actionAnnounce && action != actionScrape {
		action = actionAnnounce
	}
	ih, ihErr := singleInfoHash(req.InfoHash)
	if typeErr != nil {
		field := typeErr.Field
		if field == "" {
			return nil, &requestError{action: action, infoHash: ih, reason: "invalid message: not a JSON object"}
		}
		return nil, &requestError{action: action, infoHash: ih,
			reason: fmt.Sprintf("invalid message: field %q has the wrong type", field)}
	}
	fail := func(format string, a ...any) (*request, error) {
		return nil, &requestError{action: action, infoHash: ih, reason: fmt.Sprintf(format, a...)}
	}
	switch req.Action {
	case actionAnnounce:
		if ihErr != nil {
			return fail("invalid info_hash: %v", ihErr)
		}
		if req.PeerID == nil {
			return fail("invalid peer_id: missing")
		}
		if err := checkBinaryString(*req.PeerID); err != nil {
			return fail("invalid peer_id: %v", err)
		}
		if req.Event != nil {
			switch *req.Event {
			case eventStarted, eventCompleted, eventStopped, eventUpdate, "":
			default:
				return fail("invalid event %q", truncate(*req.Event, 32))
			}
		}
		if req.Numwant != nil && (*req.Numwant < 0 || *req.Numwant != float64(int(*req.Numwant))) {
			return fail("invalid numwant")
		}
		if len(req.Offers) > cfg.MaxOffers {
			return fail("too many offers: %d, at most %d", len(req.Offers), cfg.MaxOffers)
		}
		for i := range req.Offers {
			if !isObject(req.Offers[i].Offer) {
				return fail("invalid offer %d: not an object", i)
			}
			if err := checkBinaryString(req.Offers[i].OfferID); err != nil {
				return fail("invalid offer_id in offer %d: %v", i, err)
			}
		}
		if req.Answer != nil {
			if !isObject(req.Answer) {
				return fail("invalid answer: not an object")
			}
			if req.ToPeerID == nil {
				return fail("invalid to_peer_id: missing")
			}
			if err := checkBinaryString(*req.ToPeerID); err != nil {
				return fail("invalid to_peer_id: %v", err)
			}
			if req.OfferID == nil {
				return fail("invalid offer_id: missing")
			}
			if err := checkBinaryString(*req.OfferID); err != nil {
				return fail("invalid offer_id: %v", err)
			}
		}
		return &req, nil
	case actionScrape:
		return &req, nil
	case "":
		return fail("invalid message: missing action")
	default:
		return fail("unknown action %q", truncate(req.Action, 32))
	}
}

// singleInfoHash reads an info_hash field that must be one binary string.
func singleInfoHash(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("not a string")
	}
	if err := checkBinaryString(s); err != nil {
		return "", err
	}
	return s, nil
}

// scrapeInfoHashes reads the info_hash field of a scrape: absent (all
// swarms), one binary string or an array of them.
func scrapeInfoHashes(raw json.RawMessage, limit int) (all bool, list []string, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return true, nil, nil
	}
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			return false, nil, errors.New("info_hash must be a string or an array of strings")
		}
		if len(list) > limit {
			return false, nil, fmt.Errorf("too many info_hashes: %d, at most %d", len(list), limit)
		}
		for _, ih := range list {
			if err := checkBinaryString(ih); err != nil {
				return false, nil, fmt.Errorf("invalid info_hash: %w", err)
			}
		}
		return false, list, nil
	}
	ih, err := singleInfoHash(raw)
	if err != nil {
		return false, nil, fmt.Errorf("invalid info_hash: %w", err)
	}
	return false, []string{ih}, nil
}

// checkBinaryString reports whether s is a 20-character binary string: 20
// code points, each in U+0000..U+00FF, as JavaScript's bittorrent-tracker
// produces for 20 raw bytes.
func checkBinaryString(s string) error {
	n := 0
	for _, r := range s {
		if r > 0xFF {
			return fmt.Errorf("code point U+%04X is outside U+0000..U+00FF", r)
		}
		n++
		if n > 20 {
			return errors.New("longer than 20 characters")
		}
	}
	if n != 20 {
		return fmt.Errorf("%d characters, want 20", n)
	}
	return nil
}

// isObject reports whether raw holds a JSON object.
func isObject(raw json.RawMessage) bool {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// appendString appends s as a JSON string the way JavaScript's
// JSON.stringify writes it. s is valid UTF-8 (it came out of the JSON
// decoder or from our own code); control characters are escaped so binary
// strings survive the round trip unchanged.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendRelayedOffer builds the message that carries an offer to a peer.
func appendRelayedOffer(dst []byte, infoHash, fromPeer, offerID string, sdp json.RawMessage) []byte {
	dst = append(dst, `{"action":"announce","offer":`...)
	dst = append(dst, sdp...)
	dst = append(dst, `,"offer_id":`...)
	dst = appendString(dst, offerID)
	dst = append(dst, `,"peer_id":`...)
	dst = appendString(dst, fromPeer)
	dst = append(dst, `,"info_hash":`...)
	dst = appendString(dst, infoHash)
	return append(dst, '}')
}

// appendRelayedAnswer builds the message that carries an answer back to the
// offering peer; to_peer_id is dropped as the reference tracker does.
func appendRelayedAnswer(dst []byte, infoHash, fromPeer, offerID string, sdp json.RawMessage) []byte {
	dst = append(dst, `{"action":"announce","answer":`...)
	dst = append(dst, sdp...)
	dst = append(dst, `,"offer_id":`...)
	dst = appendString(dst, offerID)
	dst = append(dst, `,"peer_id":`...)
	dst = appendString(dst, fromPeer)
	dst = append(dst, `,"info_hash":`...)
	dst = appendString(dst, infoHash)
	return append(dst, '}')
}

// appendAnnounceResponse builds the reply to an announce.
func appendAnnounceResponse(dst []byte, infoHash string, c Counts, interval int) []byte {
	dst = append(dst, `{"complete":`...)
	dst = strconv.AppendInt(dst, int64(c.Complete), 10)
	dst = append(dst, `,"incomplete":`...)
	dst = strconv.AppendInt(dst, int64(c.Incomplete), 10)
	dst = append(dst, `,"action":"announce","interval":`...)
	dst = strconv.AppendInt(dst, int64(interval), 10)
	dst = append(dst, `,"info_hash":`...)
	dst = appendString(dst, infoHash)
	return append(dst, '}')
}

// appendFailure builds an error reply. It always carries action, and
// info_hash when known, because clients drop replies without their own
// info_hash and treat unknown actions as socket errors.
func appendFailure(dst []byte, e *requestError) []byte {
	action := e.action
	if action != actionScrape {
		action = actionAnnounce
	}
	dst = append(dst, `{"action":`...)
	dst = appendString(dst, action)
	dst = append(dst, `,"failure reason":`...)
	dst = appendString(dst, e.reason)
	if e.infoHash != "" {
		dst = append(dst, `,"info_hash":`...)
		dst = appendString(dst, e.infoHash)
	}
	return append(dst, '}')
}

// appendScrapeResponse builds the reply to a scrape.
func appendScrapeResponse(dst []byte, files []ScrapeEntry, interval int) []byte {
	dst = append(dst, `{"action":"scrape","files":{`...)
	for i, f := range files {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.InfoHash)
		dst = append(dst, `:{"complete":`...)
		dst = strconv.AppendInt(dst, int64(f.Complete), 10)
		dst = append(dst, `,"incomplete":`...)
		dst = strconv.AppendInt(dst, int64(f.Incomplete), 10)
		dst = append(dst, `,"downloaded":`...)
		dst = strconv.AppendInt(dst, f.Downloaded, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `},"flags":{"min_request_interval":`...)
	dst = strconv.AppendInt(dst, int64(interval), 10)
	return append(dst, `}}`...)
}
