package p2p

import (
	"crypto/rand"
	"testing"
)

// announcement500 returns an announcement of 500 consecutive loaded ids
// (skipping the first id of each full block, as BuildAnnouncement would),
// spread over 3 blocks.
func announcement500() SegmentsAnnouncement {
	ids := make([]int64, 0, 500)
	for v := int64(100_000); len(ids) < 500; v++ {
		if v%256 != 0 {
			ids = append(ids, v)
		}
	}
	return SegmentsAnnouncement{Loaded: ids}
}

func BenchmarkEncodeAnnouncement500(b *testing.B) {
	// Converted to the interface once: boxing the 48-byte struct costs
	// one allocation per conversion.
	var cmd Command = announcement500()
	var buf []byte
	var ends []int
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, ends, err = AppendFrames(buf[:0], ends[:0], cmd, DefaultMaxMessageSize)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeAnnouncement500Alloc measures the allocating Encode form.
func BenchmarkEncodeAnnouncement500Alloc(b *testing.B) {
	cmd := announcement500()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(cmd, DefaultMaxMessageSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildAnnouncement500(b *testing.B) {
	ids := announcement500().Loaded
	b.ReportAllocs()
	for b.Loop() {
		BuildAnnouncement(ids, nil)
	}
}

func BenchmarkDecodeAnnouncement500(b *testing.B) {
	body, err := AppendBody(nil, announcement500())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSegmentData(b *testing.B) {
	cmd := SegmentData{ID: 1002, Size: 150000, RequestID: 925} // boxed per call, without allocating
	var buf []byte
	var ends []int
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, ends, err = AppendFrames(buf[:0], ends[:0], cmd, DefaultMaxMessageSize)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSegmentData(b *testing.B) {
	body, err := AppendBody(nil, SegmentData{ID: 1002, Size: 150000, RequestID: 925})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJoinSingleFrame(b *testing.B) {
	frames, err := Encode(SegmentRequest{ID: 1001, RequestID: 978}, 0)
	if err != nil {
		b.Fatal(err)
	}
	var j Joiner
	b.ReportAllocs()
	for b.Loop() {
		if _, done, err := j.Push(frames[0]); !done || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNextChunk(b *testing.B) {
	seg := make([]byte, 2<<20)
	if _, err := rand.Read(seg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for data := seg; len(data) > 0; {
			data = data[NextChunk(data, DefaultMaxMessageSize):]
		}
	}
}
