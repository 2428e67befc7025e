package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it accepts
// re-encodes to a body that decodes to the same command, and that decoded
// arrays never hold more elements than the body has bytes.
func FuzzDecode(f *testing.F) {
	for _, v := range specVectors {
		for _, fr := range v.frames {
			frame := hx(f, fr)
			f.Add(frame[4 : len(frame)-4])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, err := Decode(body)
		if err != nil {
			if cmd != nil {
				t.Fatalf("command %#v returned with error %v", cmd, err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrOutOfRange", err)
			}
			return
		}
		if a, ok := cmd.(SegmentsAnnouncement); ok && len(a.Loaded)+len(a.HTTPLoading) > len(body) {
			t.Fatalf("%d ids decoded from %d bytes", len(a.Loaded)+len(a.HTTPLoading), len(body))
		}
		again, err := AppendBody(nil, cmd)
		if err != nil {
			// Groups of the same block split across the input merge
			// into one group on re-encoding, which may then hold
			// more than 255 ids. Nothing else may fail.
			if !errors.Is(err, ErrUnencodable) {
				t.Fatalf("re-encoding %#v: %v", cmd, err)
			}
			return
		}
		cmd2, err := Decode(again)
		if err != nil {
			t.Fatalf("decoding re-encoded %x: %v", again, err)
		}
		if !reflect.DeepEqual(sortedAnnouncement(cmd), sortedAnnouncement(cmd2)) {
			t.Fatalf("round trip changed %#v into %#v", cmd, cmd2)
		}
	})
}

// FuzzJoiner feeds a sequence of frames described by the input to a Joiner
// and to a transcription of the client's joiner, and checks that they agree
// and that the Joiner never exceeds its cap.
//
// Input format: repeated [op][len][len bytes]; op&3 selects the markers
// (cstr/dstr × cend/dend), op&4 sends the bytes unframed instead.
func FuzzJoiner(f *testing.F) {
	for _, v := range specVectors {
		var in []byte
		for _, fr := range v.frames {
			frame := hx(f, fr)
			inner := frame[4 : len(frame)-4]
			op := byte(0)
			if frame[0] == 'd' {
				op |= 2
			}
			if frame[len(frame)-4] == 'd' {
				op |= 1
			}
			in = append(in, op, byte(len(inner)))
			in = append(in, inner...)
		}
		f.Add(in)
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		j := NewJoiner(limit)
		var ref jsJoiner
		heads := [2]string{"cstr", "dstr"}
		tails := [2]string{"cend", "dend"}
		for len(in) >= 2 {
			op, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			inner := in[:n]
			in = in[n:]
			if op&4 != 0 {
				if IsCommandFrame(inner) {
					continue // a command after all; covered by framed ops
				}
				before := j.Joining()
				if _, _, err := j.Push(inner); !errors.Is(err, ErrNotCommandFrame) || j.Joining() != before {
					t.Fatalf("non-frame %q: err %v, state changed %v", inner, err, j.Joining() != before)
				}
				continue
			}
			frame := slices.Concat([]byte(heads[op>>1&1]), inner, []byte(tails[op&1]))
			body, done, err := j.Push(frame)
			wantBody, wantDone, wantFailed := ref.push(frame)
			if errors.Is(err, ErrCommandTooLarge) {
				// The reference has no cap: resynchronise it.
				if j.Joining() {
					t.Fatalf("joiner not reset after %v", err)
				}
				ref = jsJoiner{}
				continue
			}
			if done != wantDone || (err != nil) != wantFailed || !bytes.Equal(body, wantBody) {
				t.Fatalf("frame %q: got %q %v %v, want %q %v failed=%v", frame, body, done, err, wantBody, wantDone, wantFailed)
			}
			if len(body) > limit || len(j.buf) > limit {
				t.Fatalf("joined %d bytes, buffered %d, cap %d", len(body), len(j.buf), limit)
			}
			if done {
				_, _ = Decode(body) // must not panic
			}
		}
	})
}

// FuzzAnnouncementRoundTrip builds an announcement from ids derived from the
// input, encodes it with a message size derived from the input, joins and
// decodes it, and checks that exactly the kept ids come back and that kept
// and omitted ids partition the input set.
//
// Input format: [max][ids as 3-byte big-endian values scaled to cluster in
// few blocks]; ids from the first half go to l, the rest to p.
func FuzzAnnouncementRoundTrip(f *testing.F) {
	f.Add([]byte{0, 0, 3, 0xe8, 0, 3, 0xe9, 0, 3, 0xea})
	f.Add([]byte{12, 0, 3, 0xe9, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff})
	full := []byte{0}
	for i := range 300 {
		full = append(full, 0, byte(i>>8), byte(i))
	}
	f.Add(full)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		max := 0
		if in[0] != 0 {
			max = 9 + int(in[0])
		}
		in = in[1:]
		var ids []int64
		for len(in) >= 3 {
			v := int64(binary.BigEndian.Uint32(append([]byte{0}, in[:3]...)))
			// Fold to a few hundred blocks with negatives and values
			// near the safe-integer limit.
			switch v >> 22 {
			case 0:
				v = v & 0x3ffff
			case 1:
				v = -(v & 0xffff)
			case 2:
				v = MaxSafeInteger - (v & 0x3ff)
			case 3:
				v = MaxSafeInteger + 1 + (v & 0xf)
			}
			ids = append(ids, v)
			in = in[3:]
		}
		loaded, httpLoading := ids[:len(ids)/2], ids[len(ids)/2:]
		a, o := BuildAnnouncement(loaded, httpLoading)
		checkAnnouncement(t, loaded, a.Loaded, o.Loaded)
		checkAnnouncement(t, httpLoading, a.HTTPLoading, o.HTTPLoading)
		frames, err := Encode(a, max)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		var j Joiner
		for k, fr := range frames {
			if !IsCommandFrame(fr) {
				t.Fatalf("frame %d not a command frame", k)
			}
			body, done, err := j.Push(fr)
			if err != nil || done != (k == len(frames)-1) {
				t.Fatalf("Push frame %d/%d: done=%v err=%v", k, len(frames), done, err)
			}
			if !done {
				continue
			}
			got, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, a) {
				t.Fatalf("decoded %v, want %v", got, a)
			}
		}
	})
}

// FuzzNextChunk checks that payload chunks are never taken for commands.
func FuzzNextChunk(f *testing.F) {
	f.Add([]byte("cstr\x01\x02cendcstrxcend"), 8)
	f.Add([]byte("dstrcenddstrdend"), 9)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<20 {
			max = DefaultMaxMessageSize
		}
		checkChunks(t, data, max)
	})
}
