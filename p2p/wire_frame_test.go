package p2p

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// jsFrames is a direct transcription of the client's
// BinaryCommandCreator.complete (spec §3.2), used as a reference.
func jsFrames(body []byte, max int) [][]byte {
	if len(body)+8 <= max {
		return [][]byte{slices.Concat([]byte("cstr"), body, []byte("cend"))}
	}
	ceil := func(a, b int) int { return (a + b - 1) / b }
	n := ceil(len(body), max)
	if ceil(len(body), n)+8 > max {
		n++
	}
	size := ceil(len(body), n)
	var frames [][]byte
	for i := range n {
		lo := min(i*size, len(body))
		hi := min((i+1)*size, len(body))
		head, tail := "dstr", "dend"
		if i == 0 {
			head = "cstr"
		}
		if i == n-1 {
			tail = "cend"
		}
		frames = append(frames, slices.Concat([]byte(head), body[lo:hi], []byte(tail)))
	}
	return frames
}

func TestAppendFramesMatchesClient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(ids []int64, max int) {
		t.Helper()
		cmd := SegmentsAnnouncement{Loaded: ids}
		body, err := AppendBody(nil, cmd)
		if err != nil {
			t.Fatal(err)
		}
		want := jsFrames(body, max)
		got, err := Encode(cmd, max)
		if err != nil {
			t.Fatalf("Encode(len %d, max %d): %v", len(body), max, err)
		}
		if len(got) != len(want) {
			t.Fatalf("len %d max %d: %d frames, want %d", len(body), max, len(got), len(want))
		}
		for k := range want {
			if !bytes.Equal(got[k], want[k]) {
				t.Fatalf("len %d max %d: frame %d = %x, want %x", len(body), max, k, got[k], want[k])
			}
		}
		// Appending to a non-empty buffer gives the same frames.
		prefix := []byte("prefix")
		buf, ends, err := AppendFrames(prefix, []int{42}, cmd, max)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:len(prefix)], prefix) || ends[0] != 42 || len(ends) != len(want)+1 {
			t.Fatalf("AppendFrames clobbered its inputs")
		}
		prev := len(prefix)
		for k, e := range ends[1:] {
			if !bytes.Equal(buf[prev:e], want[k]) {
				t.Fatalf("AppendFrames frame %d = %x, want %x", k, buf[prev:e], want[k])
			}
			prev = e
		}
		if prev != len(buf) {
			t.Fatalf("AppendFrames left %d trailing bytes", len(buf)-prev)
		}
	}
	for range 3000 {
		n := r.IntN(300)
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = int64(r.IntN(50_000))
		}
		check(ids, 9+r.IntN(120))
	}
	// Large announcements with the default size: every frame fits.
	for _, n := range []int{255 * 255, 40_000, 65_000} {
		ids := make([]int64, 0, n)
		for b := int64(0); len(ids) < n; b++ {
			for lo := int64(1); lo < 256 && len(ids) < n; lo++ {
				ids = append(ids, b*256+lo)
			}
		}
		check(ids, DefaultMaxMessageSize)
		frames, err := Encode(SegmentsAnnouncement{Loaded: ids, HTTPLoading: ids}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k, f := range frames {
			if len(f) > DefaultMaxMessageSize {
				t.Errorf("%d ids: frame %d has %d bytes", n, k, len(f))
			}
		}
	}
}

// jsJoiner is a transcription of the client's BinaryCommandChunksJoiner
// plus PeerProtocol.receivingCommandBytes, used as a reference model.
type jsJoiner struct {
	chunks []byte
}

func (j *jsJoiner) push(frame []byte) (body []byte, done bool, failed bool) {
	first := bytes.HasPrefix(frame, []byte("cstr"))
	if len(j.chunks) == 0 && !first {
		j.chunks = nil
		return nil, false, true
	}
	if len(j.chunks) > 0 && first {
		j.chunks = nil
		return nil, false, true
	}
	j.chunks = append(j.chunks, frame[4:len(frame)-4]...)
	if !bytes.HasSuffix(frame, []byte("cend")) {
		return nil, false, false
	}
	body = j.chunks
	j.chunks = nil
	return body, true, false
}

func TestJoinerSemantics(t *testing.T) {
	f := func(s string) []byte { return []byte(s) }
	type step struct {
		frame   []byte
		body    string
		done    bool
		wantErr error
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"single frame", 0, []step{{frame: f("cstr\x00cend"), body: "\x00", done: true}}},
		{"three frames", 0, []step{
			{frame: f("cstrabdend")}, {frame: f("dstrcddend")}, {frame: f("dstrecend"), body: "abcde", done: true},
		}},
		{"continuation without first", 0, []step{
			{frame: f("dstrabcend"), wantErr: ErrNoFirstFrame},
			{frame: f("cstrxcend"), body: "x", done: true},
		}},
		{"first frame while joining is lost", 0, []step{
			{frame: f("cstrabdend")},
			{frame: f("cstrxcend"), wantErr: ErrIncompleteJoining},
			{frame: f("dstrcdcend"), wantErr: ErrNoFirstFrame},
			{frame: f("cstrycend"), body: "y", done: true},
		}},
		{"missing cend", 0, []step{
			{frame: f("cstrabdend")}, {frame: f("dstrcddend")},
			{frame: f("cstr\x01cend"), wantErr: ErrIncompleteJoining},
		}},
		{"empty first frame does not start joining", 0, []step{
			{frame: f("cstrdend")},
			{frame: f("dstrabcend"), wantErr: ErrNoFirstFrame},
		}},
		{"empty command", 0, []step{{frame: f("cstrcend"), body: "", done: true}}},
		{"cap on joined size", 6, []step{
			{frame: f("cstrabcdend")}, {frame: f("dstrdefgdend"), wantErr: ErrCommandTooLarge},
			{frame: f("dstrgcend"), wantErr: ErrNoFirstFrame},
			{frame: f("cstrabcdefcend"), body: "abcdef", done: true},
			{frame: f("cstrabcdefgcend"), wantErr: ErrCommandTooLarge},
		}},
		{"not a command frame", 0, []step{
			{frame: f("cstrab")}, // rejected, state unchanged below
		}},
	}
	tests[len(tests)-1].steps[0].wantErr = ErrNotCommandFrame
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJoiner(tc.max)
			for k, s := range tc.steps {
				body, done, err := j.Push(s.frame)
				if !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
					t.Fatalf("step %d: err = %v, want %v", k, err, s.wantErr)
				}
				if done != s.done || string(body) != s.body {
					t.Fatalf("step %d: body %q done %v, want %q %v", k, body, done, s.body, s.done)
				}
				if err != nil && !errors.Is(err, ErrNotCommandFrame) && j.Joining() {
					t.Fatalf("step %d: joiner not reset after error", k)
				}
			}
		})
	}
}

func TestJoinerMatchesClientModel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	heads := []string{"cstr", "dstr"}
	tails := []string{"cend", "dend"}
	var j Joiner
	var ref jsJoiner
	for i := range 200_000 {
		inner := make([]byte, r.IntN(4))
		for k := range inner {
			inner[k] = byte(r.IntN(3))
		}
		frame := slices.Concat([]byte(heads[r.IntN(2)]), inner, []byte(tails[r.IntN(2)]))
		body, done, err := j.Push(frame)
		wantBody, wantDone, wantFailed := ref.push(frame)
		if done != wantDone || (err != nil) != wantFailed || !bytes.Equal(body, wantBody) {
			t.Fatalf("step %d frame %q: got %q %v %v, want %q %v failed=%v", i, frame, body, done, err, wantBody, wantDone, wantFailed)
		}
	}
}

func TestIsCommandFrame(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"cstrcend", true}, {"dstrdend", true}, {"cstrdend", true}, {"dstrcend", true},
		{"cstr\x00cend", true}, {"cstrcen", false}, {"cstr", false}, {"cend", false},
		{"", false}, {"xstrcend", false}, {"cstrcenx", false}, {"Cstrcend", false},
		{"cstrend", false}, {"dstrend", false},
	} {
		if got := IsCommandFrame([]byte(tc.msg)); got != tc.want {
			t.Errorf("IsCommandFrame(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// checkChunks verifies the chunking invariants for data and max.
func checkChunks(t *testing.T, data []byte, max int) {
	t.Helper()
	chunks := ChunkPayload(data, max)
	var joined []byte
	for k, c := range chunks {
		if len(c) == 0 || len(c) > max {
			t.Fatalf("chunk %d has %d bytes (max %d)", k, len(c), max)
		}
		if IsCommandFrame(c) {
			t.Fatalf("chunk %d looks like a command frame: %q", k, c)
		}
		joined = append(joined, c...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatalf("chunks do not reassemble the payload")
	}
}

func TestNextChunkAvoidsCommandFrames(t *testing.T) {
	// A payload made entirely of frame-looking 16-byte units: with max 16
	// every naive chunk would be a command frame.
	unit := []byte("cstr\x01\x02\x03\x04\x05\x06\x07\x08cend")
	crafted := bytes.Repeat(unit, 1000)
	if n := NextChunk(crafted, 16); n != 15 {
		t.Fatalf("NextChunk = %d, want 15", n)
	}
	checkChunks(t, crafted, 16)

	// All four marker combinations, back to back, for many max sizes.
	var mixed []byte
	for _, h := range []string{"cstr", "dstr"} {
		for _, e := range []string{"cend", "dend"} {
			for _, gap := range []string{"", "x", "cend", "dstrcend"} {
				mixed = append(mixed, h+gap+e...)
			}
		}
	}
	mixed = bytes.Repeat(mixed, 50)
	for max := 1; max <= 80; max++ {
		checkChunks(t, crafted, max)
		checkChunks(t, mixed, max)
	}

	// Default size: a segment whose first 65535 bytes look like a frame,
	// and whose next chunk does too once shifted by one.
	seg := make([]byte, 3*DefaultMaxMessageSize)
	copy(seg, "cstr")
	copy(seg[DefaultMaxMessageSize-4:], "cend")
	copy(seg[DefaultMaxMessageSize-1:], "dstr")
	copy(seg[2*DefaultMaxMessageSize-5:], "dend")
	if n := NextChunk(seg, 0); n != DefaultMaxMessageSize-1 {
		t.Fatalf("NextChunk = %d, want %d", n, DefaultMaxMessageSize-1)
	}
	checkChunks(t, seg, DefaultMaxMessageSize)

	// Random payloads built from marker fragments.
	r := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"cstr", "dstr", "cend", "dend", "c", "d", "x", "end", "str"}
	for range 2000 {
		var data []byte
		for range r.IntN(60) {
			data = append(data, pieces[r.IntN(len(pieces))]...)
		}
		checkChunks(t, data, 1+r.IntN(40))
	}

	if n := NextChunk(nil, 10); n != 0 {
		t.Errorf("NextChunk(nil) = %d", n)
	}
	if got := ChunkPayload(make([]byte, 10), 0); len(got) != 1 || len(got[0]) != 10 {
		t.Errorf("ChunkPayload with default max = %v", got)
	}
}
