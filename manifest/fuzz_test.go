package manifest

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseHLS feeds arbitrary text to the HLS parsers: as a manifest, as
// the media playlist of every stream it declares, and as a live refresh. It
// checks that nothing panics and that what parses is consistent.
func FuzzParseHLS(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const u = "https://f.example/dir/index.m3u8"
		p, err := ParseHLS(u, data, nil)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			return
		}
		for _, s := range p.Streams {
			if !s.Loaded {
				_ = p.LoadMediaPlaylist(s, "", data)
			}
			checkSegments(t, s)
			l := NewLiveStream(p, s)
			if _, err := l.Refresh("", data); err == nil {
				checkSegments(t, s)
			}
		}
		if _, err := p.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseDASH feeds arbitrary text to the MPD parser, and to the segment
// index parser of every SegmentBase stream.
func FuzzParseDASH(f *testing.F) {
	f.Add([]byte(`<MPD type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s" duration="2"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseDASH("https://f.example/m.mpd", data, &Options{Now: now})
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			return
		}
		for _, s := range p.Streams {
			if s.Index != nil {
				_ = s.ApplySegmentIndex(data)
			}
			checkSegments(t, s)
		}
		if _, err := p.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}

func checkSegments(t *testing.T, s *Stream) {
	t.Helper()
	for i, seg := range s.Segments {
		if seg == nil {
			t.Fatalf("segment %d is nil", i)
		}
		if br := seg.ByteRange; br != nil && (br.Start < 0 || br.End < br.Start) {
			t.Fatalf("segment %d: bad byte range %+v", i, *br)
		}
		if seg.URL == "" {
			t.Fatalf("segment %d has no URL", i)
		}
	}
}
