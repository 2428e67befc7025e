package p2p

import (
	"errors"
	"fmt"
)

// CommandType is the one-byte command id that starts every command body
// (spec §3.4).
type CommandType uint8

// Command ids defined by P2P Media Loader 2.x (spec §3.4).
const (
	TypeSegmentsAnnouncement        CommandType = 0
	TypeSegmentRequest              CommandType = 1
	TypeSegmentData                 CommandType = 2
	TypeSegmentDataSendingCompleted CommandType = 3
	TypeSegmentAbsent               CommandType = 4
	TypeCancelSegmentRequest        CommandType = 5
)

// String returns the name the JavaScript client uses for the command type.
func (t CommandType) String() string {
	switch t {
	case TypeSegmentsAnnouncement:
		return "SegmentsAnnouncement"
	case TypeSegmentRequest:
		return "SegmentRequest"
	case TypeSegmentData:
		return "SegmentData"
	case TypeSegmentDataSendingCompleted:
		return "SegmentDataSendingCompleted"
	case TypeSegmentAbsent:
		return "SegmentAbsent"
	case TypeCancelSegmentRequest:
		return "CancelSegmentRequest"
	default:
		return fmt.Sprintf("Unknown(%d)", uint8(t))
	}
}

// Field names used by the commands (spec §3.4).
const (
	fieldLoaded      = 'l'
	fieldHTTPLoading = 'p'
	fieldID          = 'i'
	fieldRequestID   = 'r'
	fieldByteFrom    = 'b'
	fieldSize        = 's'
)

// Errors reported by the codec. They are wrapped with context, so test for
// them with errors.Is.
var (
	// ErrMalformed reports a command body or field that cannot be decoded.
	ErrMalformed = errors.New("malformed command")
	// ErrOutOfRange reports an integer whose magnitude exceeds MaxSafeInteger.
	ErrOutOfRange = errors.New("integer outside ±(2^53-1)")
	// ErrUnencodable reports a value the wire format cannot represent in a
	// way the real client parses, such as a SimilarIntArray block holding
	// more than 255 ids.
	ErrUnencodable = errors.New("value cannot be encoded")
)

// Command is one data-channel command. It is implemented by
// SegmentsAnnouncement, SegmentRequest, SegmentData,
// SegmentDataSendingCompleted, SegmentAbsent, CancelSegmentRequest and
// Unknown; the interface is sealed.
type Command interface {
	// Type returns the command id written as the first body byte.
	Type() CommandType
	// appendFields appends the command's fields (without the id byte).
	appendFields(dst []byte) ([]byte, error)
	// sizeHint estimates the encoded body size, to size buffers.
	sizeHint() int
}

// SegmentsAnnouncement (id 0) tells the receiver which segments the sender
// holds (Loaded, field l) and which it is downloading over HTTP
// (HTTPLoading, field p). It always replaces the previous announcement.
// An empty slice is omitted on the wire.
type SegmentsAnnouncement struct {
	Loaded      []int64
	HTTPLoading []int64
}

// SegmentRequest (id 1) asks for a segment by its external id. ByteFrom is
// the resume offset; it is only written when it is not zero, as the client
// does.
type SegmentRequest struct {
	ID        int64
	RequestID int64
	ByteFrom  int64
}

// SegmentData (id 2) is the header that precedes Size bytes of raw segment
// payload answering the request RequestID.
type SegmentData struct {
	ID        int64
	Size      int64
	RequestID int64
}

// SegmentDataSendingCompleted (id 3) follows the last payload chunk of a
// segment.
type SegmentDataSendingCompleted struct {
	ID        int64
	RequestID int64
}

// SegmentAbsent (id 4) answers a request for a segment the sender lacks.
type SegmentAbsent struct {
	ID        int64
	RequestID int64
}

// CancelSegmentRequest (id 5) aborts the request RequestID.
type CancelSegmentRequest struct {
	ID        int64
	RequestID int64
}

// Unknown is a well-formed command whose id is not one of the six known
// commands. The JavaScript client deserialises such commands without error
// and ignores them; callers should do the same. Encoding an Unknown writes
// only its id byte.
type Unknown struct {
	Code uint8
}

// Type implements Command.
func (SegmentsAnnouncement) Type() CommandType { return TypeSegmentsAnnouncement }

// Type implements Command.
func (SegmentRequest) Type() CommandType { return TypeSegmentRequest }

// Type implements Command.
func (SegmentData) Type() CommandType { return TypeSegmentData }

// Type implements Command.
func (SegmentDataSendingCompleted) Type() CommandType { return TypeSegmentDataSendingCompleted }

// Type implements Command.
func (SegmentAbsent) Type() CommandType { return TypeSegmentAbsent }

// Type implements Command.
func (CancelSegmentRequest) Type() CommandType { return TypeCancelSegmentRequest }

// Type implements Command.
func (u Unknown) Type() CommandType { return CommandType(u.Code) }

// sizeHint allows two bytes per id plus headers; contiguous ids need about
// one byte each, sparse ones up to five.
func (c SegmentsAnnouncement) sizeHint() int      { return 16 + 2*(len(c.Loaded)+len(c.HTTPLoading)) }
func (SegmentRequest) sizeHint() int              { return 32 }
func (SegmentData) sizeHint() int                 { return 32 }
func (SegmentDataSendingCompleted) sizeHint() int { return 24 }
func (SegmentAbsent) sizeHint() int               { return 24 }
func (CancelSegmentRequest) sizeHint() int        { return 24 }
func (Unknown) sizeHint() int                     { return 1 }

func (c SegmentsAnnouncement) appendFields(dst []byte) ([]byte, error) {
	var err error
	if len(c.Loaded) > 0 {
		dst = append(dst, fieldLoaded)
		if dst, err = appendSimilarIntArray(dst, c.Loaded); err != nil {
			return dst, fmt.Errorf("field %v: %w", fieldName(fieldLoaded), err)
		}
	}
	if len(c.HTTPLoading) > 0 {
		dst = append(dst, fieldHTTPLoading)
		if dst, err = appendSimilarIntArray(dst, c.HTTPLoading); err != nil {
			return dst, fmt.Errorf("field %v: %w", fieldName(fieldHTTPLoading), err)
		}
	}
	return dst, nil
}

func (c SegmentRequest) appendFields(dst []byte) ([]byte, error) {
	var err error
	if dst, err = appendIntField(dst, fieldID, c.ID); err != nil {
		return dst, err
	}
	if dst, err = appendIntField(dst, fieldRequestID, c.RequestID); err != nil {
		return dst, err
	}
	if c.ByteFrom != 0 {
		// The client writes b only when it is truthy (commands.ts).
		if dst, err = appendIntField(dst, fieldByteFrom, c.ByteFrom); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (c SegmentData) appendFields(dst []byte) ([]byte, error) {
	var err error
	if dst, err = appendIntField(dst, fieldID, c.ID); err != nil {
		return dst, err
	}
	if dst, err = appendIntField(dst, fieldSize, c.Size); err != nil {
		return dst, err
	}
	return appendIntField(dst, fieldRequestID, c.RequestID)
}

func (c SegmentDataSendingCompleted) appendFields(dst []byte) ([]byte, error) {
	return appendIDAndRequest(dst, c.ID, c.RequestID)
}

func (c SegmentAbsent) appendFields(dst []byte) ([]byte, error) {
	return appendIDAndRequest(dst, c.ID, c.RequestID)
}

func (c CancelSegmentRequest) appendFields(dst []byte) ([]byte, error) {
	return appendIDAndRequest(dst, c.ID, c.RequestID)
}

func (Unknown) appendFields(dst []byte) ([]byte, error) { return dst, nil }

func appendIDAndRequest(dst []byte, id, requestID int64) ([]byte, error) {
	var err error
	if dst, err = appendIntField(dst, fieldID, id); err != nil {
		return dst, err
	}
	return appendIntField(dst, fieldRequestID, requestID)
}

func appendIntField(dst []byte, name byte, v int64) ([]byte, error) {
	dst = append(dst, name)
	dst, err := appendInt(dst, v)
	if err != nil {
		return dst, fmt.Errorf("field %v: %w", fieldName(name), err)
	}
	return dst, nil
}

// AppendBody appends the unframed body of cmd (command id followed by its
// fields) to dst. On error dst is returned with unspecified trailing bytes.
func AppendBody(dst []byte, cmd Command) ([]byte, error) {
	if cmd == nil {
		return dst, fmt.Errorf("p2p: encode: nil command: %w", ErrUnencodable)
	}
	dst = append(dst, byte(cmd.Type()))
	dst, err := cmd.appendFields(dst)
	if err != nil {
		return dst, fmt.Errorf("p2p: encode %v: %w", cmd.Type(), err)
	}
	return dst, nil
}

// Decode parses one joined command body (the bytes between the frame
// markers, concatenated across frames). Unknown command ids decode to
// Unknown; unknown field names with a valid type are skipped. Malformed
// input yields an error wrapping ErrMalformed or ErrOutOfRange; Decode never
// panics and never allocates more than a small multiple of len(body).
func Decode(body []byte) (Command, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("p2p: decode: empty body: %w", ErrMalformed)
	}
	code := CommandType(body[0])
	var (
		id, requestID, byteFrom, size int64
		hasID, hasRequestID, hasSize  bool
		// Offsets of the last l and p arrays; they are decoded after
		// the whole body has been validated so that only the arrays
		// that are kept get allocated.
		loadedAt, httpLoadingAt           = -1, -1
		loadedCount, httpLoadingCount int = 0, 0
	)
	off := 1
	for off < len(body) {
		name := body[off]
		off++
		if off >= len(body) {
			return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d has no value: %w", code, fieldName(name), off-1, ErrMalformed)
		}
		kind := body[off] >> 4
		start := off
		switch kind {
		case itemInt:
			v, n, err := readInt(body[off:])
			if err != nil {
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d: %w", code, fieldName(name), start, err)
			}
			off += n
			if isIntField(code, name) {
				switch name {
				case fieldID:
					id, hasID = v, true
				case fieldRequestID:
					requestID, hasRequestID = v, true
				case fieldByteFrom:
					byteFrom = v
				case fieldSize:
					size, hasSize = v, true
				}
			} else if isArrayField(code, name) {
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d is an Int, want SimilarIntArray: %w", code, fieldName(name), start, ErrMalformed)
			}
		case itemSimilarIntArray:
			count, n, err := scanSimilarIntArray(body[off:])
			if err != nil {
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d: %w", code, fieldName(name), start, err)
			}
			off += n
			switch {
			case isArrayField(code, name) && name == fieldLoaded:
				loadedAt, loadedCount = start, count
			case isArrayField(code, name):
				httpLoadingAt, httpLoadingCount = start, count
			case isIntField(code, name):
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d is a SimilarIntArray, want Int: %w", code, fieldName(name), start, ErrMalformed)
			}
		case itemString:
			n, err := skipString(body[off:])
			if err != nil {
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d: %w", code, fieldName(name), start, err)
			}
			off += n
			if isIntField(code, name) || isArrayField(code, name) {
				return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d is a String: %w", code, fieldName(name), start, ErrMalformed)
			}
		default:
			return nil, fmt.Errorf("p2p: decode %v: field %v at offset %d has type nibble %d: %w", code, fieldName(name), start, kind, ErrMalformed)
		}
	}

	switch code {
	case TypeSegmentsAnnouncement:
		var a SegmentsAnnouncement
		if loadedAt >= 0 && loadedCount > 0 {
			a.Loaded, _ = readSimilarIntArray(make([]int64, 0, loadedCount), body[loadedAt:])
		}
		if httpLoadingAt >= 0 && httpLoadingCount > 0 {
			a.HTTPLoading, _ = readSimilarIntArray(make([]int64, 0, httpLoadingCount), body[httpLoadingAt:])
		}
		return a, nil
	case TypeSegmentRequest:
		if err := requireFields(code, hasID, hasRequestID, true); err != nil {
			return nil, err
		}
		return SegmentRequest{ID: id, RequestID: requestID, ByteFrom: byteFrom}, nil
	case TypeSegmentData:
		if err := requireFields(code, hasID, hasRequestID, hasSize); err != nil {
			return nil, err
		}
		return SegmentData{ID: id, Size: size, RequestID: requestID}, nil
	case TypeSegmentDataSendingCompleted:
		if err := requireFields(code, hasID, hasRequestID, true); err != nil {
			return nil, err
		}
		return SegmentDataSendingCompleted{ID: id, RequestID: requestID}, nil
	case TypeSegmentAbsent:
		if err := requireFields(code, hasID, hasRequestID, true); err != nil {
			return nil, err
		}
		return SegmentAbsent{ID: id, RequestID: requestID}, nil
	case TypeCancelSegmentRequest:
		if err := requireFields(code, hasID, hasRequestID, true); err != nil {
			return nil, err
		}
		return CancelSegmentRequest{ID: id, RequestID: requestID}, nil
	default:
		return Unknown{Code: uint8(code)}, nil
	}
}

// fieldName formats a field name byte for error messages.
type fieldName byte

// String returns the name as a quoted character if it is printable ASCII,
// and in hex otherwise.
func (n fieldName) String() string {
	if n >= 0x20 && n < 0x7f {
		return fmt.Sprintf("%q", rune(n))
	}
	return fmt.Sprintf("0x%02x", byte(n))
}

// isArrayField reports whether name is a SimilarIntArray field of the known
// command code.
func isArrayField(code CommandType, name byte) bool {
	return code == TypeSegmentsAnnouncement && (name == fieldLoaded || name == fieldHTTPLoading)
}

// isIntField reports whether name is an Int field of the known command code.
func isIntField(code CommandType, name byte) bool {
	switch code {
	case TypeSegmentRequest:
		return name == fieldID || name == fieldRequestID || name == fieldByteFrom
	case TypeSegmentData:
		return name == fieldID || name == fieldRequestID || name == fieldSize
	case TypeSegmentDataSendingCompleted, TypeSegmentAbsent, TypeCancelSegmentRequest:
		return name == fieldID || name == fieldRequestID
	}
	return false
}

func requireFields(code CommandType, hasID, hasRequestID, hasSize bool) error {
	switch {
	case !hasID:
		return fmt.Errorf("p2p: decode %v: missing field i: %w", code, ErrMalformed)
	case !hasRequestID:
		return fmt.Errorf("p2p: decode %v: missing field r: %w", code, ErrMalformed)
	case !hasSize:
		return fmt.Errorf("p2p: decode %v: missing field s: %w", code, ErrMalformed)
	}
	return nil
}
