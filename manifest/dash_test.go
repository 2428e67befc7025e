package manifest

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

const mpdURL = "https://cdn.example.com/vod/manifest.mpd"

func parseMPDFile(t *testing.T, name string, opts *Options) *Presentation {
	t.Helper()
	p, err := ParseDASH(mpdURL, readTestdata(t, "dash/"+name), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDASHSegmentTemplateNumber(t *testing.T) {
	p := parseMPDFile(t, "number.mpd", nil)
	if len(p.Streams) != 3 {
		t.Fatalf("%d streams, want 2 video + 1 audio (text ignored)", len(p.Streams))
	}
	v720, v360, a := p.Streams[0], p.Streams[1], p.Streams[2]
	// Spec §7.2's MD5 rows.
	wantSwarm(t, v720, Shaka, p2p.StreamMain, "0", "v2-"+mpdURL+"-main-0", "JnFsqAw8aq1j2LcC9a7Y")
	wantSwarm(t, v360, Shaka, p2p.StreamMain, "1", "v2-"+mpdURL+"-main-1", "")
	wantSwarm(t, a, Shaka, p2p.StreamSecondary, "0", "v2-"+mpdURL+"-secondary-0", "tCR2uFj8pnaz+lxfC6tD")
	for _, s := range p.Streams {
		if s.PlayedBy(HLSJS) {
			t.Errorf("%s: hls.js does not play DASH", s.RepresentationID)
		}
	}

	// 35 s of 0.7 s segments (timescale 10, duration 7): 50 segments.
	if len(v720.Segments) != 50 || len(a.Segments) != 50 {
		t.Fatalf("%d video and %d audio segments, want 50", len(v720.Segments), len(a.Segments))
	}
	seg := v720.Segments[45]
	if seg.Sequence != 46 || seg.URL != "https://cdn.example.com/vod/media/video/v720/2000000/seg-00046.m4s" {
		t.Errorf("segment 45: %d %s", seg.Sequence, seg.URL)
	}
	// shaka computes 45·(7/10) = 31.499999999999996, not 31.5, so the
	// id is 62 where exact arithmetic would give 63. presentationTimeOffset
	// does not apply to @duration templates.
	if seg.Start != 31.499999999999996 || seg.ExternalID[Shaka] != 62 {
		t.Errorf("segment 45: start %.17g id %d, want 31.499999999999996 and 62", seg.Start, seg.ExternalID[Shaka])
	}
	if seg.ExternalID[HLSJS] != NoExternalID {
		t.Errorf("hls.js id %d", seg.ExternalID[HLSJS])
	}
	if got := ids(v720.Segments, Shaka)[:4]; got[0] != 0 || got[1] != 1 || got[2] != 2 || got[3] != 4 {
		t.Errorf("first ids %v, want [0 1 2 4] (0, 0.7, 1.4, 2.1 s)", got)
	}
	if v720.Init == nil || v720.Init.URL != "https://cdn.example.com/vod/media/video/v720/init.mp4" {
		t.Errorf("init %+v", v720.Init)
	}
	// Audio: startNumber 0, its own template, no AdaptationSet BaseURL.
	if s := a.Segments[0]; s.Sequence != 0 || s.URL != "https://cdn.example.com/vod/media/audio/a128-0.m4s" || s.Start != 0 {
		t.Errorf("audio segment 0: %d %s %v", s.Sequence, s.URL, s.Start)
	}
	if s := a.Segments[45]; s.ExternalID[Shaka] != 62 {
		t.Errorf("audio segment 45 id %d", s.ExternalID[Shaka])
	}
}

func TestDASHSegmentTimeline(t *testing.T) {
	p := parseMPDFile(t, "timeline.mpd", nil)
	if len(p.Streams) != 1 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	s := p.Streams[0]
	// S t=900000 d=180000 r=2 with presentationTimeOffset 900000: 0, 2,
	// 4 s; then d=90000 r=-1 up to the 20 s Period end: 6 … 19 s.
	want := []int64{0, 4, 8}
	for sec := int64(6); sec < 20; sec++ {
		want = append(want, 2*sec)
	}
	wantIDs(t, "timeline", s.Segments, Shaka, want)
	if got := s.Segments[3].URL; got != "https://cdn.example.com/vod/chunk-hd-1440000.m4s" {
		t.Errorf("$Time$ keeps S@t: %s", got)
	}
	if got := s.Segments[16]; got.Start != 19 || got.Duration != 1 {
		t.Errorf("last segment start %v duration %v", got.Start, got.Duration)
	}
}

func TestDASHMultiPeriod(t *testing.T) {
	p := parseMPDFile(t, "multiperiod.mpd", nil)
	if len(p.Streams) != 3 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	v1, v2, a := p.Streams[0], p.Streams[1], p.Streams[2]
	if v1.RepresentationID != "v1" || v2.RepresentationID != "v2" || a.RepresentationID != "a1" {
		t.Fatalf("streams %s %s %s", v1.RepresentationID, v2.RepresentationID, a.RepresentationID)
	}
	wantSwarm(t, v1, Shaka, p2p.StreamMain, "0", "v2-"+mpdURL+"-main-0", "")
	wantSwarm(t, v2, Shaka, p2p.StreamMain, "1", "v2-"+mpdURL+"-main-1", "")
	wantSwarm(t, a, Shaka, p2p.StreamSecondary, "0", "v2-"+mpdURL+"-secondary-0", "")
	// Period 0 lasts 10 s (its @duration, written with years and
	// months, which go-dash rejects); Period 1 starts at 10 s and lasts
	// to the presentation end. Matching is by Representation@id although
	// Period 1 lists v2 first.
	wantIDs(t, "v1", v1.Segments, Shaka, []int64{0, 4, 8, 12, 16, 20, 24, 28, 32, 36})
	for i, seg := range v1.Segments {
		period, n := 0, i+1
		if i >= 5 {
			period, n = 1, i-4
		}
		want := "https://cdn.example.com/vod/p" + string(rune('0'+period)) + "/v1/" + string(rune('0'+n)) + ".m4s"
		if seg.URL != want {
			t.Errorf("v1 segment %d: %s, want %s", i, seg.URL, want)
		}
	}
	if got := v2.Segments[7].URL; got != "https://cdn.example.com/vod/p1/v2/3.m4s" {
		t.Errorf("v2 segment 7: %s", got)
	}
	wantIDs(t, "a1", a.Segments, Shaka, []int64{0, 4, 8, 12, 16, 20, 24, 28, 32, 36})
}

func TestDASHSegmentList(t *testing.T) {
	body := `<MPD type="static" mediaPresentationDuration="PT6S">
  <BaseURL>https://o.example/files/</BaseURL>
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <Representation id="v" bandwidth="1">
        <BaseURL>video.mp4</BaseURL>
        <SegmentList timescale="1000" duration="2002">
          <Initialization range="0-799"/>
          <SegmentURL mediaRange="800-1799"/>
          <SegmentURL mediaRange="1800-2999"/>
          <SegmentURL media="tail.mp4"/>
        </SegmentList>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>`
	p, err := ParseDASH(mpdURL, []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	if len(s.Segments) != 3 {
		t.Fatalf("%d segments", len(s.Segments))
	}
	if s.Init == nil || s.Init.URL != "https://o.example/files/video.mp4" || *s.Init.ByteRange != (ByteRange{0, 799}) {
		t.Errorf("init %+v", s.Init)
	}
	for i, want := range []struct {
		url   string
		br    *ByteRange
		start float64
	}{
		{"https://o.example/files/video.mp4", &ByteRange{800, 1799}, 0},
		{"https://o.example/files/video.mp4", &ByteRange{1800, 2999}, 2.002},
		{"https://o.example/files/tail.mp4", nil, 2.002 + 2.002},
	} {
		seg := s.Segments[i]
		if seg.URL != want.url || (seg.ByteRange == nil) != (want.br == nil) || (want.br != nil && *seg.ByteRange != *want.br) || seg.Start != want.start {
			t.Errorf("segment %d: %s %+v %v, want %+v", i, seg.URL, seg.ByteRange, seg.Start, want)
		}
	}
	wantIDs(t, "list", s.Segments, Shaka, []int64{0, 4, 8})
}

// sidx builds a version 0 sidx box.
func sidx(timescale, ept, firstOffset uint32, refs [][2]uint32) []byte {
	body := make([]byte, 0, 24+12*len(refs))
	body = append(body, 0, 0, 0, 0) // version, flags
	body = binary.BigEndian.AppendUint32(body, 1)
	body = binary.BigEndian.AppendUint32(body, timescale)
	body = binary.BigEndian.AppendUint32(body, ept)
	body = binary.BigEndian.AppendUint32(body, firstOffset)
	body = append(body, 0, 0)
	body = binary.BigEndian.AppendUint16(body, uint16(len(refs)))
	for _, r := range refs {
		body = binary.BigEndian.AppendUint32(body, r[0])
		body = binary.BigEndian.AppendUint32(body, r[1])
		body = binary.BigEndian.AppendUint32(body, 0x90000000)
	}
	box := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	box = append(box, "sidx"...)
	return append(box, body...)
}

func TestDASHSegmentBase(t *testing.T) {
	body := `<MPD type="static" mediaPresentationDuration="PT110S">
  <Period start="PT100S">
    <AdaptationSet mimeType="audio/mp4" lang="en">
      <Representation id="a" bandwidth="64000">
        <BaseURL>a.mp4</BaseURL>
        <SegmentBase indexRange="800-899" timescale="48000" presentationTimeOffset="96000">
          <Initialization range="0-799"/>
        </SegmentBase>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>`
	p, err := ParseDASH(mpdURL, []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	// Audio-only content: shaka gives audio the "main" type.
	wantSwarm(t, s, Shaka, p2p.StreamMain, "0", "v2-"+mpdURL+"-main-0", "")
	if s.Loaded || s.Index == nil || s.Index.URL != "https://cdn.example.com/vod/a.mp4" || *s.Index.ByteRange != (ByteRange{800, 899}) {
		t.Fatalf("index %+v loaded %v", s.Index, s.Loaded)
	}
	box := sidx(48000, 96000, 0, [][2]uint32{{1000, 96000}, {1100, 96000}, {900, 48000}})
	if err := s.ApplySegmentIndex(box); err != nil {
		t.Fatal(err)
	}
	end := int64(800 + len(box))
	want := []ByteRange{{end, end + 999}, {end + 1000, end + 2099}, {end + 2100, end + 2999}}
	for i, seg := range s.Segments {
		if *seg.ByteRange != want[i] || seg.URL != "https://cdn.example.com/vod/a.mp4" {
			t.Errorf("segment %d: %s %+v, want %+v", i, seg.URL, seg.ByteRange, want[i])
		}
	}
	// Start = ept/timescale + 100 − 96000/48000: 100, 102, 104.
	wantIDs(t, "segmentbase", s.Segments, Shaka, []int64{200, 204, 208})

	// Load fetches the index range.
	mp4 := make([]byte, 800, 800+len(box))
	mp4 = append(mp4, box...)
	f := FetcherFunc(func(_ context.Context, u string, r *ByteRange) ([]byte, string, error) {
		switch {
		case u == mpdURL:
			return []byte(body), u, nil
		case u == "https://cdn.example.com/vod/a.mp4" && r != nil:
			return mp4[r.Start:min(r.End+1, int64(len(mp4)))], u, nil
		}
		return nil, "", errors.New("not found")
	})
	body = strings.Replace(body, "800-899", "800-820", 1)
	if _, err := Load(context.Background(), mpdURL, f, nil); err == nil || !strings.Contains(err.Error(), "sidx") {
		t.Errorf("index range shorter than the box: %v", err)
	}
	body = strings.Replace(body, "800-820", "800-"+strconv.Itoa(799+len(box)), 1)
	lp, err := Load(context.Background(), mpdURL, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "loaded", lp.Streams[0].Segments, Shaka, []int64{200, 204, 208})
}

func TestDASHDynamicDuration(t *testing.T) {
	body := `<MPD type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z" timeShiftBufferDepth="PT30S" minimumUpdatePeriod="PT2S">
  <Period id="live" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="90000" duration="180000" startNumber="10" media="v-$Number$.m4s"/>
      <Representation id="v" bandwidth="1"/>
    </AdaptationSet>
  </Period>
</MPD>`
	now := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC) // 3600 s after availabilityStartTime
	p, err := ParseDASH(mpdURL, []byte(body), &Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	if !p.Dynamic || !s.Live {
		t.Errorf("dynamic %v live %v", p.Dynamic, s.Live)
	}
	// Window [3570, 3600): positions ceil(3570/2)=1785 … ceil(3600/2)-1=1799.
	if len(s.Segments) != 15 {
		t.Fatalf("%d segments", len(s.Segments))
	}
	first := s.Segments[0]
	if first.Sequence != 1785+10 || first.Start != 3570 || first.ExternalID[Shaka] != 7140 || first.URL != "https://cdn.example.com/vod/v-1795.m4s" {
		t.Errorf("first segment %+v", first)
	}
}

func TestDASHErrors(t *testing.T) {
	for _, c := range []struct {
		name, body, element, msg string
	}{
		{"no period", `<MPD type="static"></MPD>`, "MPD", "no Period"},
		{"not an mpd", `<html><body/></html>`, "html", "root element is not MPD"},
		{"not xml", `<MPD><Period></MPD>`, "", "not well-formed"},
		{"template without media", `<MPD type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet mimeType="video/mp4"><Representation id="r" bandwidth="1"><SegmentTemplate duration="2"/></Representation></AdaptationSet></Period></MPD>`,
			"Period[0]/AdaptationSet[0]/Representation[0] (id=r)/SegmentTemplate", "no @media"},
		{"template without timing", `<MPD type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="x"/><Representation bandwidth="1"/></AdaptationSet></Period></MPD>`,
			"Period[0]/AdaptationSet[0]/Representation[0]/SegmentTemplate", "neither a SegmentTimeline nor @duration"},
		{"no segment info", `<MPD type="static"><Period duration="PT4S"><AdaptationSet mimeType="audio/mp4"><Representation id="a"/></AdaptationSet></Period></MPD>`,
			"Period[0]/AdaptationSet[0]/Representation[0] (id=a)", "no SegmentBase, SegmentList or SegmentTemplate"},
		{"bad period start", `<MPD type="static"><Period start="soon"/></MPD>`, "Period[0]", "bad @start"},
		{"unbounded static template", `<MPD type="static"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="x" duration="2"/><Representation bandwidth="1"/></AdaptationSet></Period></MPD>`,
			"Period[0]/AdaptationSet[0]/Representation[0]/SegmentTemplate", "no known duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseDASH(mpdURL, []byte(c.body), nil)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SyntaxError", err)
			}
			if se.Element != c.element || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q (element %q), want element %q and %q", err, se.Element, c.element, c.msg)
			}
		})
	}
}

func TestShakaParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"PT10S", 10, true},
		{"PT1H2M3.5S", 3723.5, true},
		{"P0Y0M0DT0H3M30.000S", 210, true},
		{"P1Y", 31536000, true},
		{"P1M", 2592000, true},
		{"P1DT0.1S", 86400.1, true},
		{"pt2s", 2, true},
		{"PT1.2.3S", 0, false},
		{"10S", 0, false},
		{"", 0, false},
	} {
		got, ok := shakaParseDuration(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("shakaParseDuration(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFillTemplate(t *testing.T) {
	id, n, bw, tm := "v1", int64(42), int64(800000), int64(123456)
	v := templateValues{repID: &id, number: &n, bandwidth: &bw, time: &tm}
	for tmpl, want := range map[string]string{
		"$RepresentationID$/$Number%05d$.m4s": "v1/00042.m4s",
		"$Bandwidth$-$Time$.m4s":              "800000-123456.m4s",
		"$Number%03x$-$Number%02X$":           "02a-2A",
		"cost$$-$Number$":                     "cost$-42",
		"$SubNumber$-$Unknown$-$Number$":      "$SubNumber$-$Unknown$-42",
		"$RepresentationID%05d$":              "v1",
	} {
		if got := fillTemplate(tmpl, v); got != want {
			t.Errorf("fillTemplate(%q) = %q, want %q", tmpl, got, want)
		}
	}
	if got := fillTemplate("$Bandwidth$", templateValues{}); got != "$Bandwidth$" {
		t.Errorf("missing value: %q", got)
	}
}

func TestShakaDASHID(t *testing.T) {
	for start, want := range map[float64]int64{0: 0, 0.49: 0, 0.5: 1, 31.499999999999996: 62, -0.3: 0, -0.6: -1, 3.5e9: 7e9} {
		if got := shakaDASHID(start); got != want {
			t.Errorf("shakaDASHID(%v) = %d, want %d", start, got, want)
		}
	}
	if got := shakaDASHID(math.Inf(1)); got != NoExternalID {
		t.Errorf("Inf: %d", got)
	}
}

// TestParseRangeRefusesBackwardsRanges: "100-0" names no bytes; a segment
// must not carry it (found by FuzzParseDASH).
func TestParseRangeRefusesBackwardsRanges(t *testing.T) {
	for in, want := range map[string]bool{"0-0": true, "800-1799": true, "100-0": false, "x": false, "1-99999999999999999999": false} {
		if _, ok := parseRange(in); ok != want {
			t.Errorf("parseRange(%q): ok %v, want %v", in, ok, want)
		}
	}
}

// TestDASHByteOrderMark: an MPD with a UTF-8 byte order mark (browsers drop
// it before shaka-player sees the text) parses as without it, including
// when the duration attributes go-dash rejects are rewritten, which works
// on byte offsets into the body.
func TestDASHByteOrderMark(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8"?>
<MPD type="static" mediaPresentationDuration="PT4S">
  <Period duration="P0Y0M0DT0H0M4.000S">
    <AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s" duration="2"/><Representation id="v" bandwidth="1"/></AdaptationSet>
  </Period>
</MPD>`
	describe := func(body string) string {
		t.Helper()
		p, err := ParseDASH(mpdURL, []byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	plain := describe(body)
	for _, b := range []string{"\xef\xbb\xbf" + body, "\xef\xbb\xbf" + body[strings.Index(body, "<MPD"):]} {
		if got := describe(b); got != plain {
			t.Errorf("with a byte order mark:\n%s\nwithout:\n%s", got, plain)
		}
	}
}
