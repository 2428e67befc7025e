package p2p

import (
	"errors"
	"fmt"
	"slices"
)

// DefaultMaxMessageSize is the client's default webRtcMaxMessageSize: the
// largest data-channel message it sends, and the size a seeder should keep
// every message within (spec §3.2, §8).
const DefaultMaxMessageSize = 65535

// DefaultMaxCommandSize is the default cap a Joiner puts on a joined command
// body. The largest announcement the client can parse (two arrays of 255
// blocks of 255 ids) is about 134 KB, so 1 MiB leaves ample room.
const DefaultMaxCommandSize = 1 << 20

// frameMarkerLen is the length of each of the four frame markers.
const frameMarkerLen = 4

// minFrameSize is the size of a frame with an empty body.
const minFrameSize = 2 * frameMarkerLen

var (
	markerCmdStart = [frameMarkerLen]byte{'c', 's', 't', 'r'}
	markerCmdEnd   = [frameMarkerLen]byte{'c', 'e', 'n', 'd'}
	markerDivStart = [frameMarkerLen]byte{'d', 's', 't', 'r'}
	markerDivEnd   = [frameMarkerLen]byte{'d', 'e', 'n', 'd'}
)

// Errors reported by the Joiner. They are wrapped with context, so test for
// them with errors.Is.
var (
	// ErrNoFirstFrame reports a continuation frame ("dstr…") that arrived
	// while no command was being joined (the client's "no-first-chunk").
	ErrNoFirstFrame = errors.New("continuation frame without a first frame")
	// ErrIncompleteJoining reports a first frame ("cstr…") that arrived
	// while a previous command was still being joined (the client's
	// "incomplete-joining").
	ErrIncompleteJoining = errors.New("first frame while joining another command")
	// ErrCommandTooLarge reports a command whose joined body would exceed
	// the Joiner's cap.
	ErrCommandTooLarge = errors.New("joined command exceeds size cap")
	// ErrNotCommandFrame reports a message passed to the Joiner that
	// IsCommandFrame does not accept.
	ErrNotCommandFrame = errors.New("not a command frame")
)

func hasPrefix(b []byte, m [frameMarkerLen]byte) bool {
	return len(b) >= frameMarkerLen && b[0] == m[0] && b[1] == m[1] && b[2] == m[2] && b[3] == m[3]
}

func hasSuffix(b []byte, m [frameMarkerLen]byte) bool {
	n := len(b)
	return n >= frameMarkerLen && b[n-4] == m[0] && b[n-3] == m[1] && b[n-2] == m[2] && b[n-1] == m[3]
}

// IsCommandFrame reports whether the client classifies the data-channel
// message b as a command frame rather than segment payload: it starts with
// "cstr" or "dstr" and ends with "cend" or "dend" (spec §3.1). Messages
// shorter than 8 bytes are never command frames; for lengths 4 to 7 the
// markers could only overlap, which none of them can.
func IsCommandFrame(b []byte) bool {
	return len(b) >= minFrameSize &&
		(hasPrefix(b, markerCmdStart) || hasPrefix(b, markerDivStart)) &&
		(hasSuffix(b, markerCmdEnd) || hasSuffix(b, markerDivEnd))
}

// frameCount returns the number of frames and the body slice length the
// client's BinaryCommandCreator uses for a body of n bytes (spec §3.2).
// A count of 1 means the body fits into a single "cstr…cend" frame.
func frameCount(n, maxMessageSize int) (count, slice int) {
	if n+minFrameSize <= maxMessageSize {
		return 1, n
	}
	count = ceilDiv(n, maxMessageSize)
	if ceilDiv(n, count)+minFrameSize > maxMessageSize {
		count++
	}
	return count, ceilDiv(n, count)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// AppendFrames encodes cmd, frames it for a data channel whose messages are
// limited to maxMessageSize bytes, and appends the frames back to back to
// dst. For each frame it appends the end offset (an index into the returned
// buffer) to ends, so frame k is buf[ends[k-1]:ends[k]] (with ends[-1] being
// len(dst) on entry). Reusing dst and ends across calls makes encoding
// allocation-free. A maxMessageSize of 0 or less selects
// DefaultMaxMessageSize; values from 1 to 8 cannot hold any body and are an
// error.
//
// The split follows the client exactly (spec §3.2): n = ceil(len/max), plus
// one if ceil(len/n)+8 > max; slices of ceil(len/n) bytes, the last one
// shorter (possibly empty); frames "cstr…dend", "dstr…dend", …,
// "dstr…cend". Like the client, this can produce frames slightly larger than
// a very small maxMessageSize (the §7.3 vector with max 12 has 13-byte
// frames); with the default size it cannot happen for bodies below about
// 470 MB, far above any command.
func AppendFrames(dst []byte, ends []int, cmd Command, maxMessageSize int) ([]byte, []int, error) {
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	if maxMessageSize <= minFrameSize {
		return dst, ends, fmt.Errorf("p2p: encode: max message size %d leaves no room for a body: %w", maxMessageSize, ErrUnencodable)
	}
	if cmd == nil {
		return dst, ends, fmt.Errorf("p2p: encode: nil command: %w", ErrUnencodable)
	}
	start := len(dst)
	hint := cmd.sizeHint()
	dst = slices.Grow(dst, hint+minFrameSize*(1+hint/(maxMessageSize-minFrameSize)))
	dst = append(dst, markerCmdStart[:]...)
	dst, err := AppendBody(dst, cmd)
	if err != nil {
		return dst[:start], ends, err
	}
	bodyLen := len(dst) - start - frameMarkerLen
	count, slice := frameCount(bodyLen, maxMessageSize)
	if count == 1 {
		dst = append(dst, markerCmdEnd[:]...)
		return dst, append(ends, len(dst)), nil
	}
	// Grow once, then move the body into place back to front so that the
	// slices can be framed in the same buffer.
	total := bodyLen + count*minFrameSize
	need := start + total
	if cap(dst) < need {
		grown := make([]byte, len(dst), need)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:need]
	bodyAt := start + frameMarkerLen
	for k := count - 1; k >= 0; k-- {
		lo := min(k*slice, bodyLen)
		hi := min(lo+slice, bodyLen)
		frameAt := start + k*minFrameSize + lo
		copy(dst[frameAt+frameMarkerLen:], dst[bodyAt+lo:bodyAt+hi])
		head, tail := markerDivStart, markerDivEnd
		if k == 0 {
			head = markerCmdStart
		}
		if k == count-1 {
			tail = markerCmdEnd
		}
		copy(dst[frameAt:], head[:])
		copy(dst[frameAt+frameMarkerLen+hi-lo:], tail[:])
	}
	for k := range count {
		ends = append(ends, start+(k+1)*minFrameSize+min((k+1)*slice, bodyLen))
	}
	return dst, ends, nil
}

// Encode encodes cmd into the data-channel messages to send, in order,
// splitting it as the client does when it does not fit into one message of
// maxMessageSize bytes (0 selects DefaultMaxMessageSize). All frames share
// one backing array. See AppendFrames for an allocation-free form.
func Encode(cmd Command, maxMessageSize int) ([][]byte, error) {
	var endsBuf [4]int
	buf, ends, err := AppendFrames(nil, endsBuf[:0], cmd, maxMessageSize)
	if err != nil {
		return nil, err
	}
	frames := make([][]byte, len(ends))
	prev := 0
	for k, e := range ends {
		frames[k] = buf[prev:e:e]
		prev = e
	}
	return frames, nil
}

// Joiner reassembles command bodies from command frames on the receiving
// side, following the client's BinaryCommandChunksJoiner (spec §3.2):
// joining starts at a "cstr" frame and completes at a frame ending in
// "cend"; a "dstr" frame with nothing being joined, or a "cstr" frame while
// joining, resets the Joiner and that frame is lost. As in the client,
// "joining" means that some body bytes have been collected.
//
// The zero value is ready to use with DefaultMaxCommandSize. A Joiner is not
// safe for concurrent use; use one per data channel.
type Joiner struct {
	buf     []byte
	maxSize int
}

// NewJoiner returns a Joiner that rejects commands whose joined body would
// exceed maxSize bytes. A maxSize of 0 or less selects
// DefaultMaxCommandSize.
func NewJoiner(maxSize int) *Joiner {
	return &Joiner{maxSize: maxSize}
}

func (j *Joiner) limit() int {
	if j.maxSize <= 0 {
		return DefaultMaxCommandSize
	}
	return j.maxSize
}

// Reset discards any partially joined command.
func (j *Joiner) Reset() {
	j.buf = j.buf[:0]
}

// Joining reports whether a partially joined command is pending.
func (j *Joiner) Joining() bool {
	return len(j.buf) > 0
}

// Push adds one command frame. When the frame completes a command it
// returns the joined body and done=true; the body aliases either frame or
// the Joiner's internal buffer and is valid until the next call to Push or
// Reset. Pass it to Decode.
//
// On a framing error (wrapping ErrNoFirstFrame, ErrIncompleteJoining or
// ErrCommandTooLarge) the Joiner has been reset and the frame dropped, so
// the caller only needs to log the error and carry on with the next
// message. A message that is not a command frame (ErrNotCommandFrame)
// leaves the Joiner unchanged; such messages are segment payload and should
// not be passed to Push at all.
func (j *Joiner) Push(frame []byte) (body []byte, done bool, err error) {
	if !IsCommandFrame(frame) {
		return nil, false, fmt.Errorf("p2p: join: %d-byte message: %w", len(frame), ErrNotCommandFrame)
	}
	first := hasPrefix(frame, markerCmdStart)
	last := hasSuffix(frame, markerCmdEnd)
	inner := frame[frameMarkerLen : len(frame)-frameMarkerLen]
	switch {
	case !j.Joining() && !first:
		return nil, false, fmt.Errorf("p2p: join: %w", ErrNoFirstFrame)
	case j.Joining() && first:
		j.Reset()
		return nil, false, fmt.Errorf("p2p: join: %w", ErrIncompleteJoining)
	}
	if len(inner) > j.limit()-len(j.buf) {
		size := len(j.buf) + len(inner)
		j.Reset()
		return nil, false, fmt.Errorf("p2p: join: %d bytes, cap %d: %w", size, j.limit(), ErrCommandTooLarge)
	}
	if last {
		if !j.Joining() {
			// Single-frame command: no copy needed.
			return inner, true, nil
		}
		body = append(j.buf, inner...)
		j.buf = body[:0]
		return body, true, nil
	}
	j.buf = append(j.buf, inner...)
	return nil, false, nil
}

// NextChunk returns the length of the next segment-payload message to send
// from the start of data, given the data channel's maxMessageSize (0 or
// less selects DefaultMaxMessageSize). It is min(len(data), maxMessageSize),
// except that a chunk the client would mistake for a command frame (spec
// §3.1: it starts with "cstr"/"dstr" and ends with "cend"/"dend") is made one
// byte shorter. The shorter chunk ends in 'n', so it cannot end with a frame
// marker, and its length is at least 7, so progress is guaranteed. It
// returns 0 only for empty data.
//
// Typical use:
//
//	for len(data) > 0 {
//		n := p2p.NextChunk(data, max)
//		send(data[:n])
//		data = data[n:]
//	}
func NextChunk(data []byte, maxMessageSize int) int {
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	n := min(len(data), maxMessageSize)
	if IsCommandFrame(data[:n]) {
		n--
	}
	return n
}

// ChunkPayload splits data into the segment-payload messages NextChunk
// yields. The chunks are sub-slices of data.
func ChunkPayload(data []byte, maxMessageSize int) [][]byte {
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	chunks := make([][]byte, 0, ceilDiv(len(data), maxMessageSize))
	for len(data) > 0 {
		n := NextChunk(data, maxMessageSize)
		chunks = append(chunks, data[:n:n])
		data = data[n:]
	}
	return chunks
}
