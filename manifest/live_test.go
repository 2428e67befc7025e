package manifest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const liveURL = "https://cdn.example.com/live/index.m3u8"

func TestLiveSlidingWindow(t *testing.T) {
	p, err := ParseHLS(liveURL, readTestdata(t, "hls/live/index-1.m3u8"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	l := NewLiveStream(p, s)
	l.Retain = 2

	step := func(file string, wantNew, wantRemoved []string, wantHLSJS, wantShaka []int64) *Refresh {
		t.Helper()
		r, err := l.Refresh("", readTestdata(t, "hls/live/"+file))
		if err != nil {
			t.Fatal(err)
		}
		name := func(segs []*Segment) []string {
			var out []string
			for _, s := range segs {
				out = append(out, s.URL[strings.LastIndexByte(s.URL, '/')+1:])
			}
			return out
		}
		if got := name(r.New); !slices.Equal(got, wantNew) {
			t.Errorf("%s: new %v, want %v", file, got, wantNew)
		}
		if got := name(r.Removed); !slices.Equal(got, wantRemoved) {
			t.Errorf("%s: removed %v, want %v", file, got, wantRemoved)
		}
		wantIDs(t, file, s.Segments, HLSJS, wantHLSJS)
		wantIDs(t, file, s.Segments, Shaka, wantShaka)
		return r
	}
	first := s.Segments[1]
	step("index-2.m3u8", []string{"seg104.ts"}, []string{"seg100.ts"}, seq(101, 4), seq(101, 4))
	if s.Segments[0] != first {
		t.Error("a known segment was replaced instead of kept")
	}
	if got := s.Segments[3].Start; got != 16 {
		t.Errorf("seg104 start %v, want 16", got)
	}
	step("index-3.m3u8", []string{"seg105.ts", "seg106.ts"}, []string{"seg101.ts", "seg102.ts"}, seq(103, 4), seq(103, 4))
	// Retained: the two most recent departures.
	if got := urls(l.Retained()); len(got) != 2 || !strings.HasSuffix(got[0], "seg101.ts") || !strings.HasSuffix(got[1], "seg102.ts") {
		t.Errorf("retained %v", got)
	}
	if seg := l.Lookup(HLSJS, 102); seg == nil || !strings.HasSuffix(seg.URL, "seg102.ts") {
		t.Errorf("lookup of a retained segment: %+v", seg)
	}
	if seg := l.Lookup(HLSJS, 100); seg != nil {
		t.Errorf("seg100 should be forgotten, got %+v", seg)
	}
	// The last refresh adds EXT-X-ENDLIST: known segments keep their ids;
	// hls.js numbers the new seg107 by position (the playlist is no
	// longer live), shaka still by media sequence (it switches to VOD
	// after this update).
	r := step("index-4.m3u8", []string{"seg107.ts"}, []string{"seg103.ts"}, []int64{104, 105, 106, 3}, seq(104, 4))
	if !r.Ended || s.Live {
		t.Errorf("ended %v live %v", r.Ended, s.Live)
	}
	// Another refresh of the ended playlist changes nothing.
	step("index-4.m3u8", nil, nil, []int64{104, 105, 106, 3}, seq(104, 4))
}

// TestLiveBoundedMemory runs a long sliding window and checks that the
// followed state stays at the window plus Retain.
func TestLiveBoundedMemory(t *testing.T) {
	playlist := func(first int) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
		for i := first; i < first+6; i++ {
			fmt.Fprintf(&b, "#EXTINF:2,\nseg%d.ts\n", i)
		}
		return []byte(b.String())
	}
	p, err := ParseHLS(liveURL, playlist(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLiveStream(p, p.Streams[0])
	for i := 1; i < 2000; i++ {
		r, err := l.Refresh("", playlist(i))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.New) != 1 || r.New[0].ExternalID[HLSJS] != int64(i+5) || r.New[0].ExternalID[Shaka] != int64(i+5) {
			t.Fatalf("refresh %d: new %+v", i, r.New)
		}
	}
	if n := len(l.Stream().Segments); n != 6 {
		t.Errorf("%d current segments", n)
	}
	if n := len(l.Retained()); n != DefaultRetain {
		t.Errorf("%d retained segments", n)
	}
}

// TestLiveShakaAudioFollowsVideo checks spec §4.2's caveat: shaka numbers
// audio segments with the video playlist's media sequence.
func TestLiveShakaAudioFollowsVideo(t *testing.T) {
	master := `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",LANGUAGE="en",URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="a"
video.m3u8
`
	video := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n#EXTINF:2,\nv100.ts\n#EXTINF:2,\nv101.ts\n#EXTINF:2,\nv102.ts\n#EXTINF:2,\nv103.ts\n"
	audio := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:50\n#EXTINF:2,\na50.aac\n#EXTINF:2,\na51.aac\n#EXTINF:2,\na52.aac\n"
	p, err := ParseHLS("https://l.example/master.m3u8", []byte(master), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, a := p.Streams[0], p.Streams[1]
	if err := p.LoadMediaPlaylist(v, "", []byte(video)); err != nil {
		t.Fatal(err)
	}
	if err := p.LoadMediaPlaylist(a, "", []byte(audio)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "video", v.Segments, Shaka, seq(100, 4))
	wantIDs(t, "audio", a.Segments, HLSJS, seq(50, 3))
	wantIDs(t, "audio", a.Segments, Shaka, []int64{101, 102, 103})

	// Both advance by one segment; audio is refreshed after video.
	lv, la := NewLiveStream(p, v), NewLiveStream(p, a)
	if _, err := lv.Refresh("", []byte(strings.Replace(strings.Replace(video, "SEQUENCE:100", "SEQUENCE:101", 1), "#EXTINF:2,\nv100.ts\n", "", 1)+"#EXTINF:2,\nv104.ts\n")); err != nil {
		t.Fatal(err)
	}
	r, err := la.Refresh("", []byte(strings.Replace(strings.Replace(audio, "SEQUENCE:50", "SEQUENCE:51", 1), "#EXTINF:2,\na50.aac\n", "", 1)+"#EXTINF:2,\na53.aac\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.New) != 1 || r.New[0].ExternalID[Shaka] != 104 || r.New[0].ExternalID[HLSJS] != 53 {
		t.Errorf("new audio segment %+v", r.New)
	}

	// VOD: shaka's map stays empty, audio ids are positions.
	p, err = ParseHLS("https://l.example/master.m3u8", []byte(master), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, a = p.Streams[0], p.Streams[1]
	if err := p.LoadMediaPlaylist(v, "", []byte(video+"#EXT-X-ENDLIST\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.LoadMediaPlaylist(a, "", []byte(audio+"#EXT-X-ENDLIST\n")); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "vod video", v.Segments, Shaka, seq(0, 4))
	wantIDs(t, "vod audio", a.Segments, Shaka, seq(0, 3))
}

// TestEventPlaylist: EVENT without EXT-X-ENDLIST is live for both clients;
// PLAYLIST-TYPE:VOD without EXT-X-ENDLIST is live for hls.js only.
func TestEventPlaylist(t *testing.T) {
	for _, c := range []struct {
		typ             string
		hlsjs, shakaIDs []int64
	}{
		{"EVENT", seq(10, 2), seq(10, 2)},
		{"VOD", seq(10, 2), seq(0, 2)},
	} {
		body := "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:" + c.typ + "\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n"
		p, err := ParseHLS(liveURL, []byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, c.typ, p.Streams[0].Segments, HLSJS, c.hlsjs)
		wantIDs(t, c.typ, p.Streams[0].Segments, Shaka, c.shakaIDs)
	}
}

// livePlaylist is a live media playlist of 2-second segments named names,
// starting at media sequence first.
func livePlaylist(first int, names ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	for _, n := range names {
		b.WriteString("#EXTINF:2,\n" + n + "\n")
	}
	return []byte(b.String())
}

// liveWithADeparture follows a live playlist of a.ts, b.ts, c.ts through a
// refresh to b.ts, c.ts, d.ts: a.ts has left.
func liveWithADeparture(t *testing.T) (*Stream, *LiveStream) {
	t.Helper()
	p, err := ParseHLS(liveURL, livePlaylist(0, "a.ts", "b.ts", "c.ts"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	l := NewLiveStream(p, s)
	if _, err := l.Refresh("", livePlaylist(1, "b.ts", "c.ts", "d.ts")); err != nil {
		t.Fatal(err)
	}
	return s, l
}

// TestLiveReturningSegmentURL: a URL that left the playlist and comes back
// at another media sequence number is a new segment (an origin that
// recycles segment names). Both integrations forget a segment once it has
// left (p2p-media-loader-hlsjs 2.3.1 removes every runtime id missing from
// the new playlist), so they number it afresh, hls.js with its new sn; the
// retired copy's old ids must not come back with it.
func TestLiveReturningSegmentURL(t *testing.T) {
	s, l := liveWithADeparture(t)
	r, err := l.Refresh("", livePlaylist(2, "c.ts", "d.ts", "a.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.New) != 1 || !strings.HasSuffix(r.New[0].URL, "/a.ts") {
		t.Fatalf("new %v, want a.ts", urls(r.New))
	}
	wantIDs(t, "returned", s.Segments, HLSJS, seq(2, 3))
	wantIDs(t, "returned", s.Segments, Shaka, seq(2, 3))
	if got := s.Segments[2].Start; got != 8 {
		t.Errorf("a.ts start %v, want 8 (after d.ts)", got)
	}
	if seg := l.Lookup(HLSJS, 0); seg != nil {
		t.Errorf("the recycled URL's old id 0 still finds %s", seg.URL)
	}
}

// TestLiveStalePlaylistCopy: a refresh served by a cache that is behind
// brings back a departed segment at its old media sequence number. It is
// the same segment and keeps its ids; numbering it as new would give shaka
// an id the current segments already have.
func TestLiveStalePlaylistCopy(t *testing.T) {
	s, l := liveWithADeparture(t)
	r, err := l.Refresh("", livePlaylist(0, "a.ts", "b.ts", "c.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.New) != 0 {
		t.Errorf("new %v, want none", urls(r.New))
	}
	wantIDs(t, "stale", s.Segments, HLSJS, seq(0, 3))
	wantIDs(t, "stale", s.Segments, Shaka, seq(0, 3))
}
