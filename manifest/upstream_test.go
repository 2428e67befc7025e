package manifest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/grafov/m3u8"
	"github.com/zencoder/go-dash/v3/mpd"
)

// TestUpstreamLimitations records what grafov/m3u8 v0.12.1 and go-dash
// v3.0.3 do with input this package works around. If a dependency update
// fixes one of these, the matching workaround can go.
func TestUpstreamLimitations(t *testing.T) {
	t.Run("grafov: blank line after EXT-X-STREAM-INF becomes the URI", func(t *testing.T) {
		mp := m3u8.NewMasterPlaylist()
		if err := mp.DecodeFrom(strings.NewReader("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n\nv.m3u8\n"), false); err != nil {
			t.Fatal(err)
		}
		if len(mp.Variants) != 1 || mp.Variants[0].URI != "" {
			t.Errorf("variants %+v", mp.Variants)
		}
	})
	t.Run("grafov: FRAME-RATE is a float, raw text lost", func(t *testing.T) {
		mp := m3u8.NewMasterPlaylist()
		if err := mp.DecodeFrom(strings.NewReader("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,FRAME-RATE=30.000,NAME=\" Main \"\nv.m3u8\n"), false); err != nil {
			t.Fatal(err)
		}
		if v := mp.Variants[0]; v.FrameRate != 30 || v.Name != "Main" {
			t.Errorf("frame rate %v name %q", v.FrameRate, v.Name)
		}
	})
	t.Run("grafov: BANDWIDTH beyond uint32 wraps", func(t *testing.T) {
		mp := m3u8.NewMasterPlaylist()
		if err := mp.DecodeFrom(strings.NewReader("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000000000\nv.m3u8\n"), false); err != nil {
			t.Fatal(err)
		}
		if got := mp.Variants[0].Bandwidth; got != uint32(5000000000%(1<<32)) {
			t.Errorf("bandwidth %d", got)
		}
	})
	t.Run("grafov: renditions of unreferenced groups are unreachable", func(t *testing.T) {
		mp := m3u8.NewMasterPlaylist()
		body := "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"x\",NAME=\"fr\",URI=\"fr.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
		if err := mp.DecodeFrom(strings.NewReader(body), false); err != nil {
			t.Fatal(err)
		}
		if len(mp.Variants[0].Alternatives) != 0 {
			t.Errorf("alternatives %+v", mp.Variants[0].Alternatives)
		}
	})
	t.Run("grafov: BYTERANGE without offset reads as offset 0", func(t *testing.T) {
		pl, err := m3u8.NewMediaPlaylist(0, 4)
		if err != nil {
			t.Fatal(err)
		}
		body := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@50\na.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.mp4\n"
		if err := pl.DecodeFrom(strings.NewReader(body), false); err != nil {
			t.Fatal(err)
		}
		if s := pl.Segments[1]; s.Limit != 100 || s.Offset != 0 {
			t.Errorf("second segment %d@%d", s.Limit, s.Offset)
		}
	})
	t.Run("grafov: a blank line is taken for a segment URI", func(t *testing.T) {
		pl, err := m3u8.NewMediaPlaylist(0, 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := pl.DecodeFrom(strings.NewReader("#EXTM3U\n#EXTINF:2,\n\na.ts\n"), false); err != nil {
			t.Fatal(err)
		}
		if pl.Count() != 1 || pl.Segments[0].URI != "" {
			t.Errorf("%d segments, first %q", pl.Count(), pl.Segments[0].URI)
		}
	})
	t.Run("go-dash: Period@duration with years and months is rejected", func(t *testing.T) {
		_, err := mpd.ReadFromString(`<MPD><Period duration="P0Y0M0DT0H0M10.000S"/></MPD>`)
		if err == nil {
			t.Error("accepted")
		}
	})
	t.Run("go-dash: AdaptationSet BaseURL is dropped", func(t *testing.T) {
		m, err := mpd.ReadFromString(`<MPD><Period><AdaptationSet><BaseURL>v/</BaseURL></AdaptationSet></Period></MPD>`)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := m.Write(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "v/") {
			t.Error("kept")
		}
	})
	t.Run("go-dash: any root element decodes", func(t *testing.T) {
		if _, err := mpd.ReadFromString(`<html/>`); err != nil {
			t.Error(err)
		}
	})
}
