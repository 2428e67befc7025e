package manifest

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

const vodBase = "https://cdn.example.com/vod/"

func loadVOD(t *testing.T) *Presentation {
	t.Helper()
	p, err := Load(context.Background(), vodBase+"master.m3u8", dirFetcher{prefix: vodBase, dir: "testdata/hls/vod"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHLSVODMaster(t *testing.T) {
	p := loadVOD(t)
	if p.Format != FormatHLS || p.BaseSwarmID != vodBase+"master.m3u8" {
		t.Fatalf("format %v base %q", p.Format, p.BaseSwarmID)
	}
	var got []string
	for _, s := range p.Streams {
		got = append(got, s.URL)
	}
	want := []string{vodBase + "360p/index.m3u8", vodBase + "180p/index.m3u8", vodBase + "audio/en.m3u8", vodBase + "audio/surround.m3u8"}
	if !slices.Equal(got, want) {
		t.Fatalf("streams %v, want %v", got, want)
	}
	v360, v180, en, sur := p.Streams[0], p.Streams[1], p.Streams[2], p.Streams[3]
	base := "v2-" + vodBase + "master.m3u8-"

	// hls.js: indexes hash the attributes as hls.js reads them
	// (FRAME-RATE=30.000 prints as 30, 29.970 as 29.97).
	for _, c := range []struct {
		s        *Stream
		typ      p2p.StreamType
		preimage string
	}{
		{v360, p2p.StreamMain, "645216-avc1.64001e-640-360----30-SDR"},
		{v180, p2p.StreamMain, "333888-avc1.640015-320-180----29.97-"},
		{en, p2p.StreamSecondary, "0-mp4a.40.2---en-2-english--"},
		{sur, p2p.StreamSecondary, "0-mp4a.40.2----6-surround--"},
	} {
		if got := p2p.StreamPreimage(c.s.Attributes); got != c.preimage {
			t.Errorf("%s: preimage %q, want %q", c.s.URL, got, c.preimage)
		}
		idx := p2p.StreamShortID(c.preimage)
		wantSwarm(t, c.s, HLSJS, c.typ, idx, base+string(c.typ)+"-"+idx, "")
	}
	// The English rendition is spec §7.1's vector.
	if got := en.Swarms[HLSJS].Index; got != "bdjQ1B4N2yrcTDHyU5j7iDGV9sY=" {
		t.Errorf("en index %s", got)
	}

	// shaka: video ordinals in variant order, audio counted apart.
	wantSwarm(t, v360, Shaka, p2p.StreamMain, "0", base+"main-0", "")
	wantSwarm(t, v180, Shaka, p2p.StreamMain, "1", base+"main-1", "u4zNRpCFQMwa8sXWFWHG") // spec §7.2
	wantSwarm(t, en, Shaka, p2p.StreamSecondary, "0", base+"secondary-0", "")
	wantSwarm(t, sur, Shaka, p2p.StreamSecondary, "1", base+"secondary-1", "")

	// VOD: positions for both clients, whatever EXT-X-MEDIA-SEQUENCE
	// says (360p has MEDIA-SEQUENCE:7).
	for _, s := range p.Streams {
		if !s.Loaded || s.Live || s.ShakaLive {
			t.Errorf("%s: loaded %v live %v shakaLive %v", s.URL, s.Loaded, s.Live, s.ShakaLive)
		}
		wantIDs(t, s.URL, s.Segments, HLSJS, seq(0, 4))
		wantIDs(t, s.URL, s.Segments, Shaka, seq(0, 4))
	}
	if got := v360.Segments[0].Sequence; got != 7 {
		t.Errorf("360p first sequence %d", got)
	}
	if got := urls(v360.Segments)[3]; got != vodBase+"360p/seg_003.ts" {
		t.Errorf("360p segment 3 %s", got)
	}
	if got := v360.Segments[3]; got.Start != 6 || got.Duration != 1.5 {
		t.Errorf("360p segment 3 start %v duration %v", got.Start, got.Duration)
	}
	if en.Init == nil || en.Init.URL != vodBase+"audio/init.mp4" || en.Init.ByteRange != nil {
		t.Errorf("en init %+v", en.Init)
	}
	if got := en.Segments[0].URL; got != vodBase+"audio/en_000.m4s" {
		t.Errorf("en segment 0 %s", got)
	}
}

// TestSpecVectorsHLS builds the multivariant playlist of spec §7.2's
// SHA-1 rows.
func TestSpecVectorsHLS(t *testing.T) {
	const u = "https://cdn.example.com/live/master.m3u8?token=abc"
	body := `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",CHANNELS="2",URI="a/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=30.000,VIDEO-RANGE=SDR,AUDIO="aud"
v/720.m3u8
`
	p, err := ParseHLS(u, []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 2 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	if p.Streams[0].URL != "https://cdn.example.com/live/v/720.m3u8" {
		t.Errorf("variant URL %s", p.Streams[0].URL)
	}
	wantSwarm(t, p.Streams[0], HLSJS, p2p.StreamMain, "EDSJuhWcg4AyVz2Iky/BJ8hVmjA=",
		"v2-https://cdn.example.com/live/master.m3u8-main-EDSJuhWcg4AyVz2Iky/BJ8hVmjA=", "tBBwJ0eaWm83RZGsvsTu")
	wantSwarm(t, p.Streams[1], HLSJS, p2p.StreamSecondary, "bdjQ1B4N2yrcTDHyU5j7iDGV9sY=",
		"v2-https://cdn.example.com/live/master.m3u8-secondary-bdjQ1B4N2yrcTDHyU5j7iDGV9sY=", "pWlB9P4lKCYQrRLIdUfn")
	if p.Streams[0].Loaded {
		t.Error("variant loaded before its playlist")
	}

	// An application swarmId replaces the URL.
	p, err = ParseHLS(u, []byte(body), &Options{SwarmID: "my-custom-swarm"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Streams[0].Swarms[HLSJS].Swarm; got != "v2-my-custom-swarm-main-EDSJuhWcg4AyVz2Iky/BJ8hVmjA=" {
		t.Errorf("custom swarm %s", got)
	}
}

func TestHLSMediaPlaylistDirect(t *testing.T) {
	const u = "https://cdn.example.com/live/index.m3u8"
	p, err := ParseHLS(u, readTestdata(t, "hls/live/index-1.m3u8"), &Options{SwarmID: "my-custom-swarm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 1 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	s := p.Streams[0]
	// Spec §7.2: pre-image "0--------".
	wantSwarm(t, s, HLSJS, p2p.StreamMain, "UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "v2-my-custom-swarm-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "D+9WRUIkje9XktY2+kTZ")
	wantSwarm(t, s, Shaka, p2p.StreamMain, "0", "v2-my-custom-swarm-main-0", "")
	if !s.Live || !s.ShakaLive {
		t.Errorf("live %v shakaLive %v", s.Live, s.ShakaLive)
	}
	wantIDs(t, "live", s.Segments, HLSJS, seq(100, 4))
	wantIDs(t, "live", s.Segments, Shaka, seq(100, 4))
}

func TestHLSByteRanges(t *testing.T) {
	const u = "https://cdn.example.com/br/index.m3u8"
	p, err := ParseHLS(u, readTestdata(t, "hls/byterange.m3u8"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	want := []ByteRange{{720, 100719}, {100720, 195719}, {195720, 293719}, {300000, 349999}}
	for i, seg := range s.Segments {
		if seg.URL != "https://cdn.example.com/br/main.mp4" || seg.ByteRange == nil || *seg.ByteRange != want[i] {
			t.Errorf("segment %d: %s %+v, want %+v", i, seg.URL, seg.ByteRange, want[i])
		}
	}
	if got := s.Segments[1].RuntimeID(); got != "https://cdn.example.com/br/main.mp4|100720-195719" {
		t.Errorf("runtime id %s", got)
	}
	if s.Init == nil || s.Init.ByteRange == nil || *s.Init.ByteRange != (ByteRange{0, 719}) {
		t.Errorf("init %+v", s.Init)
	}
	wantIDs(t, "byterange", s.Segments, HLSJS, seq(0, 4))
}

// TestHLSAttributesGrafovLoses checks attribute values grafov/m3u8 would
// alter or drop.
func TestHLSAttributesGrafovLoses(t *testing.T) {
	body := `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="x",NAME=" Surround ",LANGUAGE="und",CHANNELS="6/JOC",URI="sur.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="unused",NAME="",LANGUAGE="fr",URI="fr.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="x",NAME="Muxed",LANGUAGE="en"
#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=500000,RESOLUTION=416x234,CODECS="avc1.66.30,mp4a.40.2"
low.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000000,CODECS="hvc1.2.4.L153.B0,ec-3",FRAME-RATE=59.940,VIDEO-RANGE=pq,AUDIO="x"
high.m3u8
`
	p, err := ParseHLS("https://h.example/m.m3u8", []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 4 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	low, high, sur, fr := p.Streams[0], p.Streams[1], p.Streams[2], p.Streams[3]
	for _, c := range []struct {
		s    *Stream
		want string
	}{
		{low, "500000-avc1.42001e-416-234-----"},            // §7.1 row 3
		{high, "5000000000-hvc1.2.4.l153.b0------59.94-PQ"}, // beyond uint32
		{sur, "0-ec-3----6-surround--"},                     // §7.1 row 6
		// fr's group is referenced by no variant: hls.js takes the
		// first level's audio codec; NAME="" falls back to LANGUAGE.
		{fr, "0-mp4a.40.2---fr--fr--"},
	} {
		got := p2p.StreamPreimage(c.s.Attributes)
		if got != c.want {
			t.Errorf("%s: preimage %q, want %q", c.s.URL, got, c.want)
		}
	}
	if got := sur.Swarms[HLSJS].Index; got != "24RxUCKslMG/Md2leM2T1iz0hH8=" {
		t.Errorf("surround index %s", got)
	}
	// shaka: low has no AUDIO group: muxed video main-0. high's group x
	// has sur and the muxed "Muxed" rendition (which takes audio ordinal
	// 1 but has no stream). fr's group is unreferenced: no shaka swarm.
	wantSwarm(t, low, Shaka, p2p.StreamMain, "0", "v2-https://h.example/m.m3u8-main-0", "")
	wantSwarm(t, high, Shaka, p2p.StreamMain, "1", "v2-https://h.example/m.m3u8-main-1", "")
	wantSwarm(t, sur, Shaka, p2p.StreamSecondary, "0", "v2-https://h.example/m.m3u8-secondary-0", "")
	if fr.PlayedBy(Shaka) || !fr.PlayedBy(HLSJS) {
		t.Errorf("fr played by shaka %v hls.js %v", fr.PlayedBy(Shaka), fr.PlayedBy(HLSJS))
	}
}

func TestHLSAudioOnlyShaka(t *testing.T) {
	// Audio-only variants: shaka makes them audio streams of type main.
	body := `#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"
a128.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.5"
a64.m3u8
`
	p, err := ParseHLS("https://r.example/radio.m3u8", []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSwarm(t, p.Streams[0], Shaka, p2p.StreamMain, "0", "v2-https://r.example/radio.m3u8-main-0", "")
	wantSwarm(t, p.Streams[1], Shaka, p2p.StreamMain, "1", "v2-https://r.example/radio.m3u8-main-1", "")
	if p.Streams[0].Swarms[HLSJS].Type != p2p.StreamMain {
		t.Error("hls.js: an audio-only variant is a main level")
	}
	// Audio-only live: shaka's video map stays empty, so ids are
	// positions.
	media := "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:500\n#EXTINF:4,\na1.aac\n#EXTINF:4,\na2.aac\n"
	if err := p.LoadMediaPlaylist(p.Streams[0], "", []byte(media)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "radio", p.Streams[0].Segments, HLSJS, []int64{500, 501})
	wantIDs(t, "radio", p.Streams[0].Segments, Shaka, []int64{0, 1})
}

func TestHLSDuplicateVariantURL(t *testing.T) {
	// Two variants, same playlist with different audio groups: one
	// stream, the first variant's identity for both clients.
	body := `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="st",NAME="Stereo",LANGUAGE="en",URI="st.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="mc",NAME="5.1",LANGUAGE="en",CHANNELS="6",URI="mc.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="st"
v.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1200000,CODECS="avc1.64001f,ec-3",AUDIO="mc"
v.m3u8
`
	p, err := ParseHLS("https://d.example/m.m3u8", []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 3 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	v, st, mc := p.Streams[0], p.Streams[1], p.Streams[2]
	if got := p2p.StreamPreimage(v.Attributes); got != "1000000-avc1.64001f-------" {
		t.Errorf("video preimage %q", got)
	}
	if got := p2p.StreamPreimage(mc.Attributes); got != "0-ec-3---en-6-5.1--" {
		t.Errorf("mc preimage %q", got)
	}
	// shaka: the codecs differ, so the second variant is another video
	// stream (main-1) although it is the same playlist; the stream keeps
	// the first ordinal.
	wantSwarm(t, v, Shaka, p2p.StreamMain, "0", "v2-https://d.example/m.m3u8-main-0", "")
	wantSwarm(t, st, Shaka, p2p.StreamSecondary, "0", "v2-https://d.example/m.m3u8-secondary-0", "")
	wantSwarm(t, mc, Shaka, p2p.StreamSecondary, "1", "v2-https://d.example/m.m3u8-secondary-1", "")
}

func TestHLSRedirectedMediaPlaylist(t *testing.T) {
	f := dirFetcher{prefix: vodBase, dir: "testdata/hls/vod", redirect: map[string]string{
		vodBase + "180p/index.m3u8": vodBase + "360p/index.m3u8",
	}}
	p, err := Load(context.Background(), vodBase+"master.m3u8", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Streams[0].Redirected() || !p.Streams[1].Redirected() {
		t.Errorf("redirected: %v %v", p.Streams[0].Redirected(), p.Streams[1].Redirected())
	}
	if got := p.Streams[1].Segments[0].URL; got != vodBase+"360p/seg_000.ts" {
		t.Errorf("segments resolve against the response URL: %s", got)
	}
}

func TestHLSErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		line       int
		msg        string
	}{
		{"uri without extinf", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=NONE\nseg.ts\n", 4, "without a preceding #EXTINF"},
		{"extinf without uri", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n", 3, "not followed by a segment URI"},
		{"two extinf", "#EXTM3U\n#EXTINF:2,\n#EXTINF:2,\na.ts\n", 2, "has another #EXTINF"},
		{"bad extinf", "#EXTM3U\n#EXTINF:abc,\na.ts\n", 2, "invalid duration"},
		{"negative extinf", "#EXTM3U\n#EXTINF:-1,\na.ts\n", 2, "invalid duration"},
		{"bad byterange", "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:12x@0\na.ts\n", 3, "bad #EXT-X-BYTERANGE"},
		{"zero byterange", "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:0@0\na.ts\n", 3, "bad #EXT-X-BYTERANGE"},
		{"implied offset first", "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.ts\n", 3, "must follow a segment with a byte range"},
		{"implied offset after whole", "#EXTM3U\n#EXTINF:2,\na.ts\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.ts\n", 5, "must follow a segment with a byte range"},
		{"no extm3u", "#EXTINF:2,\na.ts\n", 1, "#EXTM3U"},
		{"bad media sequence", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-4\n#EXTINF:2,\na.ts\n", 2, "MEDIA-SEQUENCE"},
		{"late media sequence", "#EXTM3U\n#EXTINF:2,\na.ts\n#EXT-X-MEDIA-SEQUENCE:4\n", 4, "before the first segment"},
		{"map without uri", "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"10@0\"\n#EXTINF:2,\na.ts\n", 2, "no URI"},
		{"stream-inf without uri", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nb.m3u8\n", 2, "no URI line"},
		{"stream-inf at end", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", 2, "no URI line"},
		{"stream-inf without bandwidth", "#EXTM3U\n#EXT-X-STREAM-INF:CODECS=\"avc1.64001f\"\nv.m3u8\n", 2, "no BANDWIDTH"},
		{"neither", "#EXTM3U\n#EXT-X-VERSION:3\n", 0, "neither a multivariant nor a media playlist"},
		{"empty", "", 0, "empty playlist"},
		{"bad uri", "#EXTM3U\n#EXTINF:2,\nhttp://[::1\n", 3, "bad segment URI"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHLS("https://e.example/x.m3u8", []byte(c.body), nil)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SyntaxError", err)
			}
			if se.Line != c.line || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q (line %d), want line %d and %q", err, se.Line, c.line, c.msg)
			}
			if c.line > 0 && !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func TestDescribeJSON(t *testing.T) {
	p := loadVOD(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var d []StreamDescription
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d) != 8 {
		t.Fatalf("%d descriptions, want 4 streams × 2 clients", len(d))
	}
	first := d[0]
	if first.Client != "hlsjs" || first.Generation != "core-2.3" || first.StreamType != "main" || len(first.Segments) != 4 ||
		first.Segments[2].ExternalID != 2 || first.Segments[2].URL != vodBase+"360p/seg_002.ts" || first.Segments[2].ByteRange != nil {
		t.Errorf("first description %+v", first)
	}
	if d[5].Client != "shaka" || d[5].InfoHash != "u4zNRpCFQMwa8sXWFWHG" || d[5].Index != "1" {
		t.Errorf("shaka 180p description %+v", d[5])
	}
	if !strings.Contains(string(b), `"byteRange":null`) {
		t.Errorf("byteRange should be null for whole resources: %s", b[:200])
	}
}

func TestPlainRelativeMatchesResolveReference(t *testing.T) {
	bases := []string{"https://a.example/x/y/index.m3u8?tok=1", "https://a.example/index.m3u8", "http://a.example:8080/live/ch%201/i.m3u8", "https://a.example/a/../b/i.m3u8", "https://a.example"}
	refs := []string{"seg_001.ts", "a/b/c.m4s", "seg-1$x&y+z,w;q=r@s~t.ts", "./x.ts", "../x.ts", "a//b.ts", "a/./b.ts", "x.ts?y=1", "/abs.ts", "x y.ts", "x%20y.ts", "a:b.ts", "https://o.example/s.ts"}
	for _, b := range bases {
		bu, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		r := newResolver(bu)
		for _, ref := range refs {
			want, err1 := resolveRef(bu, ref)
			got, err2 := r.resolve(ref)
			if got != want || (err1 == nil) != (err2 == nil) {
				t.Errorf("resolve(%q, %q) = %q, %v; want %q, %v", b, ref, got, err2, want, err1)
			}
		}
	}
}

// TestHLSByteOrderMark: browsers drop a leading UTF-8 byte order mark before
// hls.js or shaka-player see a playlist, so playlists saved with one play
// and must give what they give without it, on every path a playlist comes
// in by: ParseHLS (multivariant and media), LoadMediaPlaylist, Load and a
// live refresh.
func TestHLSByteOrderMark(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	master := "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",LANGUAGE=\"en\",URI=\"audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"a\"\nvideo.m3u8\n"
	video := "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:4,\nv10.ts\n#EXTINF:4,\nv11.ts\n"
	audio := "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:4,\na10.aac\n#EXTINF:4,\na11.aac\n"
	load := func(prefix string) string {
		t.Helper()
		files := map[string]string{"master.m3u8": master, "video.m3u8": video, "audio.m3u8": audio}
		f := FetcherFunc(func(_ context.Context, u string, _ *ByteRange) ([]byte, string, error) {
			body, ok := files[strings.TrimPrefix(u, "https://b.example/")]
			if !ok {
				return nil, "", errors.New("not found")
			}
			return []byte(prefix + body), u, nil
		})
		p, err := Load(context.Background(), "https://b.example/master.m3u8", f, nil)
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if plain, marked := load(""), load(bom); marked != plain {
		t.Errorf("with a byte order mark:\n%s\nwithout:\n%s", marked, plain)
	}

	// A media playlist given directly, and refreshed.
	p, err := ParseHLS(liveURL, []byte(bom+video), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "direct", p.Streams[0].Segments, HLSJS, seq(10, 2))
	l := NewLiveStream(p, p.Streams[0])
	r, err := l.Refresh("", []byte(bom+strings.Replace(video, "SEQUENCE:10\n#EXTINF:4,\nv10.ts\n", "SEQUENCE:11\n", 1)+"#EXTINF:4,\nv12.ts\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.New) != 1 || r.New[0].ExternalID[HLSJS] != 12 {
		t.Errorf("refresh: new %v", urls(r.New))
	}

	// Line numbers are unchanged; only one mark is dropped, as a browser
	// drops one.
	for body, line := range map[string]int{bom + "#EXTM3U\n#EXTINF:abc,\na.ts\n": 2, bom + bom + video: 1, bom + master + "#EXT-X-STREAM-INF:CODECS=\"x\"\nv.m3u8\n": 5} {
		_, err := ParseHLS(liveURL, []byte(body), nil)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != line {
			t.Errorf("%q: error %v, want one on line %d", body, err, line)
		}
	}
}
