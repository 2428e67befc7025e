package p2p

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// hx decodes hex written with optional spaces, as in the spec's tables.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// frameOf wraps a body into a single "cstr…cend" frame.
func frameOf(body []byte) []byte {
	return slices.Concat([]byte("cstr"), body, []byte("cend"))
}

// seqIDs returns the ids from..to inclusive.
func seqIDs(from, to int64) []int64 {
	ids := make([]int64, 0, to-from+1)
	for v := from; v <= to; v++ {
		ids = append(ids, v)
	}
	return ids
}

type wireVector struct {
	name   string
	cmd    Command
	frames []string // hex, one data-channel message each
	max    int
}

// specVectors are spec §7.3 (all rows) followed by the §7.4 transcript
// commands.
var specVectors = []wireVector{
	{name: "7.3 announcement empty", cmd: SegmentsAnnouncement{}, frames: []string{"637374720063656e64"}},
	{name: "7.3 announcement l=[0,1,2]", cmd: SegmentsAnnouncement{Loaded: []int64{0, 1, 2}},
		frames: []string{"63737472 00 6c 10 01 0103 000102 63656e64"}},
	{name: "7.3 announcement l=[1000,1001,1002,1256] p=[1003]",
		cmd:    SegmentsAnnouncement{Loaded: []int64{1000, 1001, 1002, 1256}, HTTPLoading: []int64{1003}},
		frames: []string{"63737472 00 6c 1002 020303 e8e9ea 020401 e8 70 1001 020301 eb 63656e64"}},
	{name: "7.3 request i=1001 r=978", cmd: SegmentRequest{ID: 1001, RequestID: 978},
		frames: []string{"63737472 01 69 0203e9 72 0203d2 63656e64"}},
	{name: "7.3 request i=5 r=7 b=65535", cmd: SegmentRequest{ID: 5, RequestID: 7, ByteFrom: 65535},
		frames: []string{"63737472 01 69 0105 72 0107 62 0300ffff 63656e64"}},
	{name: "7.3 segment data i=1001 s=3000 r=978", cmd: SegmentData{ID: 1001, Size: 3000, RequestID: 978},
		frames: []string{"63737472 02 69 0203e9 73 020bb8 72 0203d2 63656e64"}},
	{name: "7.3 completed i=1001 r=978", cmd: SegmentDataSendingCompleted{ID: 1001, RequestID: 978},
		frames: []string{"63737472 03 69 0203e9 72 0203d2 63656e64"}},
	{name: "7.3 absent i=1001 r=978", cmd: SegmentAbsent{ID: 1001, RequestID: 978},
		frames: []string{"63737472 04 69 0203e9 72 0203d2 63656e64"}},
	{name: "7.3 cancel i=1001 r=978", cmd: CancelSegmentRequest{ID: 1001, RequestID: 978},
		frames: []string{"63737472 05 69 0203e9 72 0203d2 63656e64"}},
	{name: "7.3 request i=1001 r=978 b=100000 split max 12",
		cmd: SegmentRequest{ID: 1001, RequestID: 978, ByteFrom: 100000}, max: 12,
		frames: []string{"6373747201690203e964656e64", "64737472720203d26264656e64", "64737472030186a063656e64"}},

	{name: "7.4 B empty announcement", cmd: SegmentsAnnouncement{}, frames: []string{"637374720063656e64"}},
	{name: "7.4 A announces 1000-1002", cmd: SegmentsAnnouncement{Loaded: []int64{1000, 1001, 1002}},
		frames: []string{"63737472006c1001020303e8e9ea63656e64"}},
	{name: "7.4 B requests 1001", cmd: SegmentRequest{ID: 1001, RequestID: 978},
		frames: []string{"6373747201690203e9720203d263656e64"}},
	{name: "7.4 A header 1001", cmd: SegmentData{ID: 1001, Size: 3000, RequestID: 978},
		frames: []string{"6373747202690203e973020bb8720203d263656e64"}},
	{name: "7.4 A completed 1001", cmd: SegmentDataSendingCompleted{ID: 1001, RequestID: 978},
		frames: []string{"6373747203690203e9720203d263656e64"}},
	{name: "7.4 B requests 1002", cmd: SegmentRequest{ID: 1002, RequestID: 925},
		frames: []string{"6373747201690203ea7202039d63656e64"}},
	{name: "7.4 B announces 1001", cmd: SegmentsAnnouncement{Loaded: []int64{1001}},
		frames: []string{"63737472006c1001020301e963656e64"}},
	{name: "7.4 A header 1002", cmd: SegmentData{ID: 1002, Size: 150000, RequestID: 925},
		frames: []string{"6373747202690203ea73030249f07202039d63656e64"}},
	{name: "7.4 A completed 1002", cmd: SegmentDataSendingCompleted{ID: 1002, RequestID: 925},
		frames: []string{"6373747203690203ea7202039d63656e64"}},
	{name: "7.4 B announces 1001,1002", cmd: SegmentsAnnouncement{Loaded: []int64{1001, 1002}},
		frames: []string{"63737472006c1001020302e9ea63656e64"}},
}

func TestSpecVectorsEncode(t *testing.T) {
	for _, v := range specVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := Encode(v.cmd, v.max)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(got) != len(v.frames) {
				t.Fatalf("Encode gave %d frames, want %d", len(got), len(v.frames))
			}
			for k, f := range v.frames {
				if want := hx(t, f); !bytes.Equal(got[k], want) {
					t.Errorf("frame %d = %x, want %x", k, got[k], want)
				}
				if !IsCommandFrame(got[k]) {
					t.Errorf("frame %d not classified as a command frame", k)
				}
			}
		})
	}
}

func TestSpecVectorsDecode(t *testing.T) {
	for _, v := range specVectors {
		t.Run(v.name, func(t *testing.T) {
			var j Joiner
			var got Command
			for k, f := range v.frames {
				frame := hx(t, f)
				if !IsCommandFrame(frame) {
					t.Fatalf("frame %d not classified as a command frame", k)
				}
				body, done, err := j.Push(frame)
				if err != nil {
					t.Fatalf("Push frame %d: %v", k, err)
				}
				if done != (k == len(v.frames)-1) {
					t.Fatalf("Push frame %d: done=%v", k, done)
				}
				if done {
					if got, err = Decode(body); err != nil {
						t.Fatalf("Decode: %v", err)
					}
				}
			}
			if !reflect.DeepEqual(got, v.cmd) {
				t.Errorf("decoded %#v, want %#v", got, v.cmd)
			}
		})
	}
}

// TestTranscriptPayloadChunks checks the chunking of the 150000-byte segment
// of the §7.4 transcript: 65535, 65535, 18930.
func TestTranscriptPayloadChunks(t *testing.T) {
	data := make([]byte, 150000)
	var sizes []int
	for _, c := range ChunkPayload(data, DefaultMaxMessageSize) {
		sizes = append(sizes, len(c))
	}
	if want := []int{65535, 65535, 18930}; !slices.Equal(sizes, want) {
		t.Errorf("chunk sizes %v, want %v", sizes, want)
	}
}

func TestIntEncoding(t *testing.T) {
	vectors := []struct {
		v   int64
		hex string
	}{
		{0, "0100"}, {127, "017f"}, {128, "020080"}, {1000, "0203e8"},
		{150000, "030249f0"}, {-1, "0181"}, {-128, "028080"},
		{255, "0200ff"}, {32767, "027fff"}, {32768, "03008000"},
		{MaxSafeInteger, "071fffffffffffff"}, {-MaxSafeInteger, "079fffffffffffff"},
	}
	for _, tc := range vectors {
		got, err := appendInt(nil, tc.v)
		if err != nil {
			t.Fatalf("appendInt(%d): %v", tc.v, err)
		}
		if want := hx(t, tc.hex); !bytes.Equal(got, want) {
			t.Errorf("appendInt(%d) = %x, want %x", tc.v, got, want)
		}
		v, n, err := readInt(got)
		if err != nil || v != tc.v || n != len(got) {
			t.Errorf("readInt(%x) = %d, %d, %v; want %d, %d", got, v, n, err, tc.v, len(got))
		}
	}
	for _, v := range []int64{MaxSafeInteger + 1, -MaxSafeInteger - 1, 1 << 62, -1 << 63} {
		if _, err := appendInt(nil, v); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("appendInt(%d) error = %v, want ErrOutOfRange", v, err)
		}
	}
	// Non-minimal encodings and negative zero decode like the client.
	for _, tc := range []struct {
		hex string
		v   int64
	}{{"020005", 5}, {"0f000000000000000000000000000005", 5}, {"0180", 0}, {"03800001", -1}} {
		v, _, err := readInt(hx(t, tc.hex))
		if err != nil || v != tc.v {
			t.Errorf("readInt(%s) = %d, %v; want %d", tc.hex, v, err, tc.v)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := r.Int64N(2*MaxSafeInteger+1) - MaxSafeInteger
		v >>= r.UintN(53)
		b, err := appendInt(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := readInt(b)
		if err != nil || got != v || n != len(b) {
			t.Fatalf("round trip %d: got %d, %v", v, got, err)
		}
	}
}

func TestSpecEdgeCases(t *testing.T) {
	t.Run("256 ids in one block", func(t *testing.T) {
		ids := append(seqIDs(0, 255), 300)
		if _, err := AppendBody(nil, SegmentsAnnouncement{Loaded: ids}); !errors.Is(err, ErrUnencodable) {
			t.Fatalf("AppendBody error = %v, want ErrUnencodable", err)
		}
		// What the 2.3.1 client itself writes: a group count of 0.
		body := hx(t, "00 6c 10 02 0100")
		body = append(body, toBytes(seqIDs(0, 255))...)
		body = append(body, hx(t, "020101 2c")...)
		if cmd, err := Decode(body); err == nil {
			t.Fatalf("Decode of a wrapped group count succeeded: %#v", cmd)
		}
		a, o := BuildAnnouncement(ids, nil)
		if !slices.Equal(a.Loaded, append(seqIDs(1, 255), 300)) || !slices.Equal(o.Loaded, []int64{0}) {
			t.Fatalf("BuildAnnouncement = %v, omitted %v", a.Loaded, o.Loaded)
		}
		roundTrip(t, a)
	})
	t.Run("256 blocks", func(t *testing.T) {
		var ids []int64
		for b := range int64(256) {
			ids = append(ids, b*256)
		}
		if _, err := AppendBody(nil, SegmentsAnnouncement{HTTPLoading: ids}); !errors.Is(err, ErrUnencodable) {
			t.Fatalf("AppendBody error = %v, want ErrUnencodable", err)
		}
		// The client's own encoding wraps the group count to 0.
		body := hx(t, "00 6c 10 00")
		for i, v := range ids {
			body, _ = appendInt(body, v+1)
			body = append(body, byte(i*0))
		}
		// The client decodes an empty list followed by garbage fields;
		// this decoder is stricter and may reject the garbage. Either
		// way no id is announced.
		cmd, err := Decode(body)
		if err == nil {
			if a, ok := cmd.(SegmentsAnnouncement); !ok || len(a.Loaded) != 0 {
				t.Fatalf("Decode = %#v, want no announced ids", cmd)
			}
		}
		t.Logf("client-encoded 256-block announcement: Decode err=%v", err)
		a, o := BuildAnnouncement(nil, ids)
		if len(a.HTTPLoading) != 255 || !slices.Equal(o.HTTPLoading, []int64{0}) {
			t.Fatalf("BuildAnnouncement kept %d, omitted %v", len(a.HTTPLoading), o.HTTPLoading)
		}
		roundTrip(t, a)
	})
	t.Run("type nibble 3", func(t *testing.T) {
		for _, body := range []string{"01 69 31 05", "00 6c 30", "09 7a 3f"} {
			if _, err := Decode(hx(t, body)); !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode(%s) error = %v, want ErrMalformed", body, err)
			}
		}
	})
	t.Run("unknown command 09", func(t *testing.T) {
		for _, body := range []string{"09", "09 69 0105", "ff 7a 2003 616263 6c 1001 020301 e9"} {
			cmd, err := Decode(hx(t, body))
			if err != nil {
				t.Fatalf("Decode(%s): %v", body, err)
			}
			want := Unknown{Code: hx(t, body)[0]}
			if cmd != want {
				t.Errorf("Decode(%s) = %#v, want %#v", body, cmd, want)
			}
		}
		got, err := Encode(Unknown{Code: 9}, 0)
		if err != nil || len(got) != 1 || !bytes.Equal(got[0], hx(t, "63737472 09 63656e64")) {
			t.Errorf("Encode(Unknown{9}) = %x, %v", got, err)
		}
	})
	t.Run("unknown field z", func(t *testing.T) {
		want := SegmentRequest{ID: 1001, RequestID: 978}
		for _, body := range []string{
			"01 69 0203e9 72 0203d2 7a 0105",             // z Int
			"01 7a 0105 69 0203e9 72 0203d2",             // z Int first
			"01 69 0203e9 7a 1001 020302 e9ea 72 0203d2", // z SimilarIntArray
			"01 69 0203e9 72 0203d2 7a 2003 616263",      // z String
			"01 69 0203e9 72 0203d2 7a 2000",             // z empty String
			"01 69 0203e9 72 0203d2 6c 1000",             // l is not a field of a request
		} {
			cmd, err := Decode(hx(t, body))
			if err != nil {
				t.Fatalf("Decode(%s): %v", body, err)
			}
			if cmd != want {
				t.Errorf("Decode(%s) = %#v, want %#v", body, cmd, want)
			}
		}
	})
	t.Run("duplicate field last wins", func(t *testing.T) {
		cmd, err := Decode(hx(t, "01 69 0105 72 0107 69 0203e9"))
		if err != nil || cmd != (SegmentRequest{ID: 1001, RequestID: 7}) {
			t.Errorf("Decode = %#v, %v", cmd, err)
		}
	})
}

func toBytes(ids []int64) []byte {
	b := make([]byte, len(ids))
	for i, v := range ids {
		b[i] = byte(v)
	}
	return b
}

// sortedAnnouncement returns cmd with the lists of an announcement sorted,
// because grouping by block reorders ids that are not sorted.
func sortedAnnouncement(cmd Command) Command {
	a, ok := cmd.(SegmentsAnnouncement)
	if !ok {
		return cmd
	}
	a.Loaded = slices.Sorted(slices.Values(a.Loaded))
	a.HTTPLoading = slices.Sorted(slices.Values(a.HTTPLoading))
	return a
}

// roundTrip encodes cmd, joins and decodes it, and checks the result.
func roundTrip(t *testing.T, cmd Command) {
	t.Helper()
	for _, max := range []int{0, 100, 12} {
		frames, err := Encode(cmd, max)
		if err != nil {
			t.Fatalf("Encode(max %d): %v", max, err)
		}
		var j Joiner
		for k, f := range frames {
			body, done, err := j.Push(f)
			if err != nil {
				t.Fatalf("Push(max %d) frame %d: %v", max, k, err)
			}
			if done != (k == len(frames)-1) {
				t.Fatalf("Push(max %d) frame %d: done=%v", max, k, done)
			}
			if !done {
				continue
			}
			got, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode(max %d): %v", max, err)
			}
			if !reflect.DeepEqual(sortedAnnouncement(got), sortedAnnouncement(cmd)) {
				t.Fatalf("round trip (max %d) = %#v, want %#v", max, got, cmd)
			}
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty body", "", ErrMalformed},
		{"name without value", "01 69", ErrMalformed},
		{"name without value after field", "01 69 0105 72", ErrMalformed},
		{"truncated int", "01 69 02 03", ErrMalformed},
		{"truncated int no bytes", "01 69 03", ErrMalformed},
		{"int L=0", "01 69 00 72 0101", ErrMalformed},
		{"int L=15 truncated", "01 69 0f 0000", ErrMalformed},
		{"int 2^53", "01 69 07 20000000000000 72 0101", ErrOutOfRange},
		{"int L=15 too large", "01 69 0f 0000000000000000ffffffffffffff 72 0101", ErrOutOfRange},
		{"int -2^53", "01 69 07 a0000000000000 72 0101", ErrOutOfRange},
		{"type nibble 3", "01 69 30", ErrMalformed},
		{"type nibble 15", "01 69 ff", ErrMalformed},
		{"array header truncated", "00 6c 10", ErrMalformed},
		{"array count larger than remaining bytes", "00 6c 10 01 0105 0001", ErrMalformed},
		{"array count 255 with nothing left", "00 6c 10 01 0200ff", ErrMalformed},
		{"array group count larger than groups", "00 6c 10 03 0101 00", ErrMalformed},
		{"array group header L=0", "00 6c 10 01 00", ErrMalformed},
		{"array group header not an int", "00 6c 10 01 1000", ErrMalformed},
		{"array group header truncated", "00 6c 10 01 02", ErrMalformed},
		{"array element below -(2^53-1)", "00 6c 10 01 079fffffffffffff 00", ErrOutOfRange},
		{"array in unknown command truncated", "09 7a 10 01 0105", ErrMalformed},
		{"string truncated", "01 7a 2005 6162", ErrMalformed},
		{"string header truncated", "01 7a 20", ErrMalformed},
		{"string 12-bit length truncated", "01 7a 2f ff 00", ErrMalformed},
		{"request missing r", "01 69 0105", ErrMalformed},
		{"request missing i", "01 72 0105", ErrMalformed},
		{"segment data missing s", "02 69 0105 72 0105", ErrMalformed},
		{"completed missing r", "03 69 0105", ErrMalformed},
		{"absent missing i", "04 72 0105", ErrMalformed},
		{"cancel with nothing", "05", ErrMalformed},
		{"l as Int", "00 6c 0101", ErrMalformed},
		{"p as String", "00 70 2000", ErrMalformed},
		{"i as SimilarIntArray", "01 69 1000 72 0101", ErrMalformed},
		{"r as String", "03 69 0101 72 2000", ErrMalformed},
		{"s as SimilarIntArray", "02 69 0101 73 1000 72 0101", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Decode(hx(t, tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%s) = %#v, %v; want error %v", tc.body, cmd, err, tc.want)
			}
			if cmd != nil {
				t.Errorf("Decode returned a command with an error: %#v", cmd)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		max  int
		want error
	}{
		{"nil command", nil, 0, ErrUnencodable},
		{"id out of range", SegmentRequest{ID: MaxSafeInteger + 1}, 0, ErrOutOfRange},
		{"request id out of range", SegmentAbsent{RequestID: -MaxSafeInteger - 1}, 0, ErrOutOfRange},
		{"size out of range", SegmentData{Size: 1 << 60}, 0, ErrOutOfRange},
		{"announced id out of range", SegmentsAnnouncement{Loaded: []int64{1, MaxSafeInteger + 1}}, 0, ErrOutOfRange},
		{"256 ids in a block", SegmentsAnnouncement{Loaded: seqIDs(512, 767)}, 0, ErrUnencodable},
		{"256 duplicates in a block", SegmentsAnnouncement{HTTPLoading: slices.Repeat([]int64{7}, 256)}, 0, ErrUnencodable},
		{"max message size too small", SegmentsAnnouncement{}, 8, ErrUnencodable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Encode(tc.cmd, tc.max); !errors.Is(err, tc.want) {
				t.Fatalf("Encode error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSimilarIntArrayGrouping(t *testing.T) {
	// Groups follow the order of first appearance and keep duplicates,
	// as in the client.
	body, err := AppendBody(nil, SegmentsAnnouncement{Loaded: []int64{1256, 1000, 1257, 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, "00 6c 10 02 020402 e8e9 020302 e8e8"); !bytes.Equal(body, want) {
		t.Errorf("body %x, want %x", body, want)
	}
	for _, ids := range [][]int64{
		{-1, -256, -257, 0, 255, 256},
		{MaxSafeInteger, -MaxSafeInteger, MaxSafeInteger - 255, -MaxSafeInteger + 255},
		seqIDs(1, 255),
		append(seqIDs(1, 255), seqIDs(257, 511)...),
	} {
		roundTrip(t, SegmentsAnnouncement{Loaded: ids, HTTPLoading: ids})
	}
	// Unsorted input with the maximum number of blocks.
	var ids []int64
	for b := range int64(255) {
		ids = append(ids, (254-b)*256+b, b*256+7)
	}
	roundTrip(t, SegmentsAnnouncement{Loaded: ids})
}

func TestCommandTypeString(t *testing.T) {
	for typ, want := range map[CommandType]string{
		TypeSegmentsAnnouncement: "SegmentsAnnouncement", TypeSegmentRequest: "SegmentRequest",
		TypeSegmentData: "SegmentData", TypeSegmentDataSendingCompleted: "SegmentDataSendingCompleted",
		TypeSegmentAbsent: "SegmentAbsent", TypeCancelSegmentRequest: "CancelSegmentRequest", 9: "Unknown(9)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("CommandType(%d).String() = %q, want %q", typ, got, want)
		}
	}
	if got := InfoHash("tBBwJ0eaWm83RZGsvsTu").String(); got != "tBBwJ0eaWm83RZGsvsTu" {
		t.Errorf("InfoHash.String() = %q", got)
	}
}
