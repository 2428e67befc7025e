package tracker

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
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

// request is one decoded client message. Pointer fields tell an absent
// field from an empty one.
type request struct {
	Action string
	// InfoHash holds a single info_hash; InfoHashes an array of them (scrape).
	InfoHash     string
	InfoHashes   []string
	infoHashKind infoHashKind
	PeerID       *string
	Numwant      *float64
	Event        *string
	Left         *float64
	Offers       []offer
	Answer       []byte // raw JSON; nil when absent
	OfferID      *string
	ToPeerID     *string

	// Storage the pointer fields point into, so a pooled request decodes
	// without allocating them.
	peerID, event, offerID, toPeerID string
	numwant, left                    float64
}

// requestPool recycles requests (and their offers arrays) between messages.
var requestPool = sync.Pool{New: func() any { return new(request) }}

// putRequest returns req to the pool without its references into the
// message it came from; a large offers array is dropped.
func putRequest(req *request) {
	offers := req.Offers[:cap(req.Offers)]
	if len(offers) > 16 {
		offers = nil
	}
	clear(offers)
	*req = request{Offers: offers[:0]}
	requestPool.Put(req)
}

type infoHashKind int

const (
	infoHashAbsent infoHashKind = iota
	infoHashString
	infoHashArray
	infoHashOther // any other JSON type, or an array holding non-strings
)

// offer is one entry of an announce's offers array.
type offer struct {
	Offer   []byte // raw JSON, relayed as is
	OfferID string
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

// parseRequest scans one client message into req, which it resets first
// (keeping the capacity of its offers array). typeErrField names the first
// known field whose value had the wrong JSON type (the rest of the message
// is still read, as encoding/json does).
func parseRequest(data []byte, req *request) (typeErrField string, err error) {
	*req = request{Offers: req.Offers[:0]}
	s := scanner{data: data}
	if s.peek() != '{' {
		if s.skip(1) == nil && s.atEnd() {
			return "", errNotObject
		}
		return "", errSyntax
	}
	wrong := func(name string) error {
		if typeErrField == "" {
			typeErrField = name
		}
		return s.skip(1)
	}
	optString := func(name string, dst **string, store *string, known ...string) error {
		switch s.peek() {
		case '"':
			v, err := s.strKnown(known...)
			*store = v
			*dst = store
			return err
		case 'n':
			*dst = nil
			return s.literal("null")
		}
		return wrong(name)
	}
	optNumber := func(name string, dst **float64, store *float64) error {
		switch c := s.peek(); {
		case c == '-' || ('0' <= c && c <= '9'):
			v, err := s.number()
			*store = v
			*dst = store
			return err
		case c == 'n':
			*dst = nil
			return s.literal("null")
		}
		return wrong(name)
	}
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "action":
			if s.peek() != '"' {
				return wrong("action")
			}
			v, err := s.strKnown(actionAnnounce, actionScrape)
			req.Action = v
			return err
		case "info_hash":
			req.InfoHash, req.InfoHashes = "", nil
			switch s.peek() {
			case '"':
				v, err := s.str()
				req.InfoHash, req.infoHashKind = v, infoHashString
				return err
			case '[':
				req.infoHashKind = infoHashArray
				return s.array(func() error {
					if s.peek() != '"' {
						req.infoHashKind = infoHashOther
						return s.skip(2)
					}
					v, err := s.str()
					if req.infoHashKind == infoHashArray && len(req.InfoHashes) < maxScrapeList {
						req.InfoHashes = append(req.InfoHashes, v)
					} else if req.infoHashKind == infoHashArray {
						req.infoHashKind = infoHashTooMany
					}
					return err
				})
			case 'n':
				req.infoHashKind = infoHashAbsent
				return s.literal("null")
			}
			req.infoHashKind = infoHashOther
			return s.skip(1)
		case "peer_id":
			return optString("peer_id", &req.PeerID, &req.peerID)
		case "event":
			return optString("event", &req.Event, &req.event, eventStarted, eventStopped, eventCompleted, eventUpdate)
		case "offer_id":
			return optString("offer_id", &req.OfferID, &req.offerID)
		case "to_peer_id":
			return optString("to_peer_id", &req.ToPeerID, &req.toPeerID)
		case "numwant":
			return optNumber("numwant", &req.Numwant, &req.numwant)
		case "left":
			return optNumber("left", &req.Left, &req.left)
		case "answer":
			if s.peek() == 'n' {
				req.Answer = nil
				return s.literal("null")
			}
			v, err := s.raw()
			req.Answer = v
			return err
		case "offers":
			req.Offers = req.Offers[:0]
			switch s.peek() {
			case 'n':
				return s.literal("null")
			case '[':
			default:
				return wrong("offers")
			}
			return s.array(func() error {
				if s.peek() != '{' {
					return wrong("offers")
				}
				var o offer
				err := s.object(func(k []byte) error {
					switch string(k) {
					case "offer":
						v, err := s.raw()
						o.Offer = v
						return err
					case "offer_id":
						if s.peek() != '"' {
							return wrong("offers.offer_id")
						}
						v, err := s.str()
						o.OfferID = v
						return err
					}
					return s.skip(3)
				})
				if len(req.Offers) <= maxOffersParsed {
					req.Offers = append(req.Offers, o)
				}
				return err
			})
		}
		return s.skip(1)
	})
	if err == nil && !s.atEnd() {
		err = errSyntax
	}
	return typeErrField, err
}

var (
	errNotObject = errors.New("not a JSON object")
	errMissing   = errors.New("missing")
	errNotString = errors.New("not a string")
)

const (
	// maxScrapeList bounds the info_hashes kept from one scrape array; the
	// configured limit is checked against it.
	maxScrapeList = 10000
	// maxOffersParsed is the most offers one announce may carry; one with
	// more is refused (parsing keeps one extra offer to notice). It bounds
	// input only: Config.MaxOffers caps the offers relayed, and an
	// announce over it is served with its first offers, since P2P Media
	// Loader always sends 5 whatever the tracker's limit.
	maxOffersParsed = 1000
	infoHashTooMany = infoHashOther + 1
)

// decodeRequest parses and validates one client message into req, which
// may be a recycled one; its raw fields (offers, answer) point into data.
// On failure it returns a *requestError carrying whatever action and
// info_hash could be read, so the reply can name them.
func decodeRequest(data []byte, req *request) error {
	if !utf8.Valid(data) {
		// Raw values are relayed inside text frames, which browsers drop
		// (closing their socket) when they are not UTF-8.
		return &requestError{action: actionAnnounce, reason: "invalid message: not valid UTF-8"}
	}
	typeErrField, err := parseRequest(data, req)
	if err == errNotObject {
		return &requestError{action: actionAnnounce, reason: "invalid message: not a JSON object"}
	}
	if err != nil {
		return &requestError{action: actionAnnounce, reason: "invalid message: malformed JSON"}
	}
	action := req.Action
	if action != actionAnnounce && action != actionScrape {
		action = actionAnnounce
	}
	ih := ""
	ihErr := errMissing
	switch req.infoHashKind {
	case infoHashString:
		if ihErr = checkBinaryString(req.InfoHash); ihErr == nil {
			ih = req.InfoHash
		}
	case infoHashArray, infoHashOther, infoHashTooMany:
		ihErr = errNotString
	}
	if typeErrField != "" {
		return &requestError{action: action, infoHash: ih,
			reason: fmt.Sprintf("invalid message: field %q has the wrong type", typeErrField)}
	}
	fail := func(format string, a ...any) error {
		return &requestError{action: action, infoHash: ih, reason: fmt.Sprintf(format, a...)}
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
		if req.Numwant != nil && (*req.Numwant < 0 || *req.Numwant > 1e9 || *req.Numwant != float64(int(*req.Numwant))) {
			return fail("invalid numwant")
		}
		if len(req.Offers) > maxOffersParsed {
			return fail("too many offers: more than %d", maxOffersParsed)
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
		return nil
	case actionScrape:
		return nil
	case "":
		return fail("invalid message: missing action")
	default:
		return fail("unknown action %q", truncate(req.Action, 32))
	}
}

// scrapeInfoHashes reads the info_hash field of a scrape: absent (all
// swarms), one binary string or an array of them.
func scrapeInfoHashes(req *request, limit int) (all bool, list []string, err error) {
	switch req.infoHashKind {
	case infoHashAbsent:
		return true, nil, nil
	case infoHashString:
		if err := checkBinaryString(req.InfoHash); err != nil {
			return false, nil, fmt.Errorf("invalid info_hash: %w", err)
		}
		return false, []string{req.InfoHash}, nil
	case infoHashArray:
		if len(req.InfoHashes) > limit {
			return false, nil, fmt.Errorf("too many info_hashes: %d, at most %d", len(req.InfoHashes), limit)
		}
		for _, ih := range req.InfoHashes {
			if err := checkBinaryString(ih); err != nil {
				return false, nil, fmt.Errorf("invalid info_hash: %w", err)
			}
		}
		return false, req.InfoHashes, nil
	case infoHashTooMany:
		return false, nil, fmt.Errorf("too many info_hashes: more than %d", maxScrapeList)
	}
	// An array holding non-strings reads as such; any other type as "not a string".
	return false, nil, errors.New("invalid info_hash: not a string or an array of strings")
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
func isObject(raw []byte) bool {
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

// AppendJSONString appends s as a JSON string the way JavaScript's
// JSON.stringify writes it, so "binary string" fields (one code point per
// byte, as bittorrent-tracker clients send info_hash, peer_id and offer_id)
// come out byte-identical to what a JavaScript peer sends. s must be valid
// UTF-8.
func AppendJSONString(dst []byte, s string) []byte {
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

// appendRelayed builds the message that carries an offer to a peer (kind
// "offer") or an answer back to the offering peer (kind "answer"); an
// answer's to_peer_id is dropped, as the reference tracker does.
func appendRelayed(dst []byte, kind, infoHash, fromPeer, offerID string, sdp []byte) []byte {
	dst = append(dst, `{"action":"announce","`...)
	dst = append(dst, kind...)
	dst = append(dst, `":`...)
	dst = append(dst, sdp...)
	dst = append(dst, `,"offer_id":`...)
	dst = AppendJSONString(dst, offerID)
	dst = append(dst, `,"peer_id":`...)
	dst = AppendJSONString(dst, fromPeer)
	dst = append(dst, `,"info_hash":`...)
	dst = AppendJSONString(dst, infoHash)
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
	dst = AppendJSONString(dst, infoHash)
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
	dst = AppendJSONString(dst, action)
	dst = append(dst, `,"failure reason":`...)
	dst = AppendJSONString(dst, e.reason)
	if e.infoHash != "" {
		dst = append(dst, `,"info_hash":`...)
		dst = AppendJSONString(dst, e.infoHash)
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
		dst = AppendJSONString(dst, f.InfoHash)
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
