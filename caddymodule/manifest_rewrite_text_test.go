package caddymodule

import (
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// rewriteHandler is a handler with rw provisioned.
func rewriteHandler(t testing.TB, rw ManifestRewrite) *ManifestHandler {
	t.Helper()
	h := &ManifestHandler{Rewrite: rw}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	return h
}

// mustRewrite processes body and fails unless it was rewritten to want.
func mustRewrite(t *testing.T, h *ManifestHandler, kind manifestKind, u, body, want string) {
	t.Helper()
	r := h.process(kind, u, []byte(body))
	if r.warning != "" || !r.changed {
		t.Fatalf("warning %q, changed %v", r.warning, r.changed)
	}
	if string(r.body) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", r.body, want)
	}
}

// swarms lists the info hashes of every stream and client.
func swarms(t *testing.T, kind manifestKind, u string, body []byte) []string {
	t.Helper()
	var p *manifest.Presentation
	var err error
	if kind == kindDASH {
		p, err = manifest.ParseDASH(u, body, nil)
	} else {
		p, err = manifest.ParseHLS(u, body, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range p.Streams {
		for _, id := range s.Swarms {
			out = append(out, string(id.InfoHash))
		}
	}
	return out
}

const byteRangePlaylist = "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n" +
	"#EXTINF:4,\n#EXT-X-BYTERANGE:100@0\nm.ts?token=1\n" +
	"#EXTINF:4,\n#EXT-X-BYTERANGE:100\nm.ts?token=1\n" +
	"#EXTINF:4,\n#EXT-X-BYTERANGE:100\nm.ts?token=1\n#EXT-X-ENDLIST\n"

// TestRewriteHLSByteRanges: byte ranges without an offset stay so (grafov
// wrote "100@0" for each, which points every segment at the first).
func TestRewriteHLSByteRanges(t *testing.T) {
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}})
	mustRewrite(t, h, kindHLS, "https://o.example/vod/index.m3u8", byteRangePlaylist,
		strings.ReplaceAll(byteRangePlaylist, "?token=1", ""))
}

// featurePlaylist has what grafov dropped: a second EXT-X-MAP after a
// discontinuity, EXT-X-GAP, -DATERANGE, -START, -INDEPENDENT-SEGMENTS,
// -BITRATE, unknown tags and comments, with CRLF line endings.
const featurePlaylist = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-MEDIA-SEQUENCE:10\r\n" +
	"#EXT-X-DISCONTINUITY-SEQUENCE:3\r\n#EXT-X-START:TIME-OFFSET=-12\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n" +
	"# a comment\r\n#EXT-X-VENDOR-THING:A=\"b,c\"\r\n" +
	"#EXT-X-MAP:URI=\"init1.mp4?token=1\",BYTERANGE=\"800@0\"\r\n" +
	"#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k?token=1&kid=7\",IV=0x1\r\n" +
	"#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\r\n#EXTINF:4.000,\r\na.m4s?token=1\r\n" +
	"#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2024-01-01T00:00:04.000Z\",DURATION=4.0,X-ASSET-URI=\"https://ads.example/a.m3u8?token=1\"\r\n" +
	"#EXT-X-DISCONTINUITY\r\n#EXT-X-MAP:URI=\"init2.mp4?token=1\"\r\n#EXTINF:4.000,\r\nb.m4s?token=1\r\n" +
	"#EXT-X-GAP\r\n#EXTINF:4.000,\r\nc.m4s?token=1\r\n#EXT-X-BITRATE:900\r\n#EXTINF:4.000,\r\n  d.m4s?token=1  \r\n"

// TestRewriteHLSKeepsEveryTag: only URIs change. Media URIs move to
// base_url; the key server keeps its host and loses only the token; the
// interstitial's ad URI is not touched.
func TestRewriteHLSKeepsEveryTag(t *testing.T) {
	const u = "https://o.example/live/ch1/index.m3u8"
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}})
	want := strings.ReplaceAll(featurePlaylist, "?token=1\"\r\n#EXT-X-DISCONTINUITY", "\x00")
	want = strings.ReplaceAll(want, "?token=1&", "?")
	want = strings.ReplaceAll(want, "?token=1", "")
	want = strings.ReplaceAll(want, "\x00", "?token=1\"\r\n#EXT-X-DISCONTINUITY")
	mustRewrite(t, h, kindHLS, u, featurePlaylist, want)

	h = rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}, BaseURL: "https://cdn.example/edge"})
	r := h.process(kindHLS, u, []byte(featurePlaylist))
	if r.warning != "" {
		t.Fatal(r.warning)
	}
	for _, s := range []string{
		"\r\n#EXT-X-MAP:URI=\"https://cdn.example/edge/live/ch1/init1.mp4\",BYTERANGE=\"800@0\"\r\n",
		"\r\n#EXT-X-MAP:URI=\"https://cdn.example/edge/live/ch1/init2.mp4\"\r\n",
		"URI=\"https://keys.example/k?kid=7\",IV=0x1\r\n",
		"X-ASSET-URI=\"https://ads.example/a.m3u8?token=1\"\r\n",
		"\r\n  https://cdn.example/edge/live/ch1/d.m4s  \r\n",
		"#EXT-X-GAP\r\n", "#EXT-X-BITRATE:900\r\n", "#EXT-X-VENDOR-THING:A=\"b,c\"\r\n", "# a comment\r\n",
	} {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("rewrite lacks %q:\n%s", s, r.body)
		}
	}
}

// TestRewriteHLSLineEndingsAndBOM: a byte order mark, LF, CRLF and lone CR
// line endings survive.
func TestRewriteHLSLineEndingsAndBOM(t *testing.T) {
	rw := ManifestRewrite{StripQuery: []string{"token"}}
	if err := rw.provision(); err != nil {
		t.Fatal(err)
	}
	in := "\xef\xbb\xbf#EXTM3U\n#EXT-X-TARGETDURATION:4\r\n#EXTINF:4,\ra.ts?token=1\r\n#EXTINF:4,\nb.ts?token=1"
	mu, _ := url.Parse("https://o.example/index.m3u8")
	out, err := rw.hls([]byte(in), mu)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(in, "?token=1", ""); string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// channelsMaster has what made grafov change the audio swarm (CHANNELS,
// INSTREAM-ID) or lose tags (SESSION-DATA, SESSION-KEY,
// CONTENT-STEERING), and URI-less and non-http URIs that stay as they are.
const channelsMaster = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n" +
	"#EXT-X-SESSION-DATA:DATA-ID=\"com.x.title\",URI=\"title.json?token=1\"\n" +
	"#EXT-X-SESSION-DATA:DATA-ID=\"com.x.data\",URI=\"data:application/json,{}\"\n" +
	"#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://k?token=1\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n" +
	"#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer?token=1\",PATHWAY-ID=\"a\"\n" +
	"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English, stereo\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"a/en.m3u8?token=1\"\n" +
	"#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",INSTREAM-ID=\"CC1\"\n" +
	"#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"aud\",CLOSED-CAPTIONS=\"cc\"\n" +
	"v1/index.m3u8?token=1\n" +
	"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,CODECS=\"avc1.4d401e\",URI=\"v1/iframe.m3u8?token=1\"\n"

// TestRewriteHLSMasterWithChannels: a typical master is rewritten (grafov
// dropped CHANNELS, which moved the audio swarm, so sameShape refused) and
// every stream stays in its swarm.
func TestRewriteHLSMasterWithChannels(t *testing.T) {
	const u = "https://o.example/live/master.m3u8"
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}, BaseURL: "https://cdn.example"})
	want := strings.NewReplacer(
		"\"title.json?token=1\"", "\"https://cdn.example/live/title.json\"",
		"skd://k?token=1", "skd://k?token=1",
		"\"/steer?token=1\"", "\"/steer\"",
		"\"a/en.m3u8?token=1\"", "\"https://cdn.example/live/a/en.m3u8\"",
		"\nv1/index.m3u8?token=1\n", "\nhttps://cdn.example/live/v1/index.m3u8\n",
		"\"v1/iframe.m3u8?token=1\"", "\"https://cdn.example/live/v1/iframe.m3u8\"",
	).Replace(channelsMaster)
	mustRewrite(t, h, kindHLS, u, channelsMaster, want)
	before, after := swarms(t, kindHLS, u, []byte(channelsMaster)), swarms(t, kindHLS, u, []byte(want))
	if strings.Join(before, ",") != strings.Join(after, ",") || len(before) != 4 {
		t.Fatalf("swarms %q became %q", before, after)
	}
}

// TestPinVariantsTextual: with pin_variants a variant keeps the attribute
// list it was first seen with, while the rest of each version is served
// as it is; a variant seen for the first time keeps its own attributes.
func TestPinVariantsTextual(t *testing.T) {
	const u = "https://o.example/live/master.m3u8?session=1"
	h := rewriteHandler(t, ManifestRewrite{PinVariants: true, StripQuery: []string{"token"}})
	v1 := "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\"\r\nv1.m3u8?token=a\r\n"
	if r := h.process(kindHLS, u, []byte(v1)); r.warning != "" {
		t.Fatal(r.warning)
	}
	v2 := "#EXTM3U\r\n#EXT-X-SESSION-DATA:DATA-ID=\"x\",VALUE=\"2\"\r\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=812345,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30\r\nv1.m3u8?token=b\r\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=1600000\r\nv2.m3u8?token=b\r\n"
	want := "#EXTM3U\r\n#EXT-X-SESSION-DATA:DATA-ID=\"x\",VALUE=\"2\"\r\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\"\r\nv1.m3u8\r\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=1600000\r\nv2.m3u8\r\n"
	mustRewrite(t, h, kindHLS, "https://o.example/live/master.m3u8?session=2", v2, want)
	// Another playlist has pins of its own.
	mustRewrite(t, h, kindHLS, "https://o.example/other/master.m3u8", v2, strings.ReplaceAll(v2, "?token=b", ""))
}

// stripToken is the strip_query token rewrite of the test manifests.
func stripToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "?token=1&amp;", "?"), "?token=1", "")
}

// TestSameShapeRefusesLossyRewrites: each loss grafov and go-dash caused,
// applied to an otherwise correct rewrite, is caught.
func TestSameShapeRefusesLossyRewrites(t *testing.T) {
	rw := ManifestRewrite{StripQuery: []string{"token"}}
	if err := rw.provision(); err != nil {
		t.Fatal(err)
	}
	const hlsURL, dashURL = "https://o.example/vod/index.m3u8", "https://o.example/vod/manifest.mpd"
	for _, c := range []struct {
		name          string
		kind          manifestKind
		before        string
		correct, lost string // the loss: correct becomes lost
	}{
		{"byte ranges", kindHLS, byteRangePlaylist, "BYTERANGE:100\n", "BYTERANGE:100@0\n"},
		{"second map", kindHLS, featurePlaylist, "#EXT-X-MAP:URI=\"init2.mp4\"\r\n", ""},
		{"gap", kindHLS, featurePlaylist, "#EXT-X-GAP\r\n", ""},
		{"CRLF", kindHLS, featurePlaylist, "\r\n", "\n"},
		{"segment URL", kindHLS, byteRangePlaylist, "m.ts", "n.ts"},
		{"CHANNELS", kindHLS, channelsMaster, "CHANNELS=\"2\",", ""},
		{"session key", kindHLS, channelsMaster, "#EXT-X-SESSION-KEY:", "#EXT-X-SESSION-KEX:"},
		{"AdaptationSet BaseURL", kindDASH, baseURLMPD, "<BaseURL>video/</BaseURL>", ""},
		{"cenc namespace", kindDASH, baseURLMPD, ` xmlns:cenc="urn:mpeg:cenc:2013"`, ""},
		{"event body", kindDASH, baseURLMPD, "<Signal/>", ""},
		{"service description", kindDASH, baseURLMPD, `<ServiceDescription id="0"><Latency target="3000"/></ServiceDescription>`, ""},
	} {
		u := hlsURL
		if c.kind == kindDASH {
			u = dashURL
		}
		mu, _ := url.Parse(u)
		out, err := rw.apply(c.kind, []byte(c.before), mu)
		if err == nil {
			err = rw.sameShape(c.kind, u, []byte(c.before), out)
		}
		if err != nil {
			t.Fatalf("%s: the correct rewrite fails: %v", c.name, err)
		}
		good := string(out)
		lost := strings.Replace(good, c.correct, c.lost, 1)
		if lost == good {
			t.Fatalf("%s: %q not in the rewrite", c.name, c.correct)
		}
		if err := rw.sameShape(c.kind, u, []byte(c.before), []byte(lost)); err == nil {
			t.Errorf("%s: a rewrite that loses it passes", c.name)
		}
	}
}

// baseURLMPD has an AdaptationSet BaseURL (go-dash had no field for it,
// so segment URLs changed), a cenc namespace declaration, a
// ServiceDescription and an EventStream with a body.
const baseURLMPD = `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" type="static" mediaPresentationDuration="PT8S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
  <!-- packager 1.2 -->
  <ServiceDescription id="0"><Latency target="3000"/></ServiceDescription>
  <Period id="p0">
    <EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="1"><Event presentationTime="1" id="1"><Signal/></Event></EventStream>
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <BaseURL>video/</BaseURL>
      <ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed" cenc:default_KID="10000000-1000-1000-1000-100000000001"><cenc:pssh>AAAA</cenc:pssh></ContentProtection>
      <SegmentTemplate timescale="1" duration="4" media="$RepresentationID$/$Number%05d$.m4s?token=1&amp;k=2" initialization='$RepresentationID$/init.mp4?token=1'/>
      <Representation id="v1" bandwidth="800000" width="640" height="360" codecs="avc1.4d401e"/>
    </AdaptationSet>
    <AdaptationSet contentType="audio" mimeType="audio/mp4" lang="en">
      <BaseURL>https://o.example/media/audio/</BaseURL>
      <SegmentTemplate timescale="1" duration="4" media="$Number$.m4s?token=1" initialization="init.mp4"/>
      <Representation id="a1" bandwidth="128000" codecs="mp4a.40.2" audioSamplingRate="48000"/>
    </AdaptationSet>
  </Period>
</MPD>
`

// TestRewriteDASHKeepsEverything: with only strip_query, the MPD is the
// original minus the token, byte for byte.
func TestRewriteDASHKeepsEverything(t *testing.T) {
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}})
	mustRewrite(t, h, kindDASH, "https://o.example/vod/manifest.mpd", baseURLMPD, stripToken(baseURLMPD))
}

// TestRewriteDASHAdaptationSetBaseURL: with base_url, an MPD BaseURL is
// added, the relative AdaptationSet BaseURL follows it and the absolute
// one moves, so every segment URL is where base_url puts it.
func TestRewriteDASHAdaptationSetBaseURL(t *testing.T) {
	const u = "https://o.example/vod/manifest.mpd"
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}, BaseURL: "https://cdn.example/edge"})
	r := h.process(kindDASH, u, []byte(baseURLMPD))
	if r.warning != "" || !r.changed {
		t.Fatalf("warning %q, changed %v", r.warning, r.changed)
	}
	want := strings.NewReplacer(
		`profiles="urn:mpeg:dash:profile:isoff-live:2011">`, `profiles="urn:mpeg:dash:profile:isoff-live:2011"><BaseURL>https://cdn.example/edge/vod/</BaseURL>`,
		"<BaseURL>https://o.example/media/audio/</BaseURL>", "<BaseURL>https://cdn.example/edge/media/audio/</BaseURL>",
		"?token=1&amp;", "?",
		"?token=1", "",
	).Replace(baseURLMPD)
	if string(r.body) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", r.body, want)
	}
	p, err := manifest.ParseDASH(u, r.body, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{p.Streams[0].Init.URL, p.Streams[0].Segments[0].URL, p.Streams[1].Segments[1].URL}
	for i, w := range []string{
		"https://cdn.example/edge/vod/video/v1/init.mp4",
		"https://cdn.example/edge/vod/video/v1/00001.m4s?k=2",
		"https://cdn.example/edge/media/audio/2.m4s",
	} {
		if got[i] != w {
			t.Errorf("URL %d: %s, want %s", i, got[i], w)
		}
	}
}

// segmentListMPD addresses segments with a SegmentList and has a
// Representation BaseURL with a scheme and a host.
const segmentListMPD = `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8S" minBufferTime="PT2S">
  <BaseURL>https://o.example/vod/?token=1</BaseURL>
  <Period>
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <Representation id="v1" bandwidth="800000" width="640" height="360" codecs="avc1.4d401e">
        <BaseURL>https://o.example/vod/v1/</BaseURL>
        <SegmentList timescale="1" duration="4">
          <Initialization sourceURL="init.mp4?token=1&amp;k=2"/>
          <SegmentURL media="s1.m4s?token=1"/>
          <SegmentURL media="/vod/v1/s2.m4s?token=1" mediaRange="0-99"/>
        </SegmentList>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
`

// TestRewriteDASHSegmentList: strip_query reaches SegmentURL @media and
// Initialization @sourceURL (go-dash's round trip left them), and base_url
// moves the BaseURLs and the path from the root.
func TestRewriteDASHSegmentList(t *testing.T) {
	const u = "https://o.example/vod/manifest.mpd"
	h := rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}})
	mustRewrite(t, h, kindDASH, u, segmentListMPD, stripToken(segmentListMPD))

	h = rewriteHandler(t, ManifestRewrite{StripQuery: []string{"token"}, BaseURL: "https://cdn.example/edge"})
	want := strings.NewReplacer(
		"https://o.example/vod/?token=1", "https://cdn.example/edge/vod/",
		"https://o.example/vod/v1/", "https://cdn.example/edge/vod/v1/",
		"/vod/v1/s2.m4s?token=1", "/edge/vod/v1/s2.m4s",
		"?token=1&amp;", "?",
		"?token=1", "",
	).Replace(segmentListMPD)
	mustRewrite(t, h, kindDASH, u, segmentListMPD, want)
}

// TestRewriteDASHPrefixedMPD: an MPD written with a namespace prefix gets
// an added BaseURL with the same prefix, and inserted text is escaped.
func TestRewriteDASHPrefixedMPD(t *testing.T) {
	rw := ManifestRewrite{URIForm: "absolute"}
	if err := rw.provision(); err != nil {
		t.Fatal(err)
	}
	mu, _ := url.Parse("https://o.example/a&b/manifest.mpd")
	in := `<m:MPD xmlns:m="urn:mpeg:dash:schema:mpd:2011"><m:Period/></m:MPD>`
	out, err := rw.dash([]byte(in), mu)
	if err != nil {
		t.Fatal(err)
	}
	if want := `<m:MPD xmlns:m="urn:mpeg:dash:schema:mpd:2011"><m:BaseURL>https://o.example/a&amp;b/</m:BaseURL><m:Period/></m:MPD>`; string(out) != want {
		t.Fatalf("got %s, want %s", out, want)
	}
}

func TestParseHLSAttrList(t *testing.T) {
	s := []byte(`TYPE=AUDIO, NAME="a,b",URI="x.m3u8?a=1,2",DEFAULT=YES`)
	attrs, err := parseHLSAttrList(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range attrs {
		got = append(got, a.name+"="+string(s[a.start:a.end]))
	}
	if want := "TYPE=AUDIO|NAME=a,b|URI=x.m3u8?a=1,2|DEFAULT=YES"; strings.Join(got, "|") != want {
		t.Errorf("got %s, want %s", strings.Join(got, "|"), want)
	}
	for _, bad := range []string{`URI="x`, `URI="x"y`, `A=1,B`} {
		if _, err := parseHLSAttrList([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestStripQueryAndNestedRefs(t *testing.T) {
	rw := ManifestRewrite{StripQuery: []string{"token", "/^cmcd/"}, BaseURL: "https://cdn.example/edge/"}
	if err := rw.provision(); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"a.ts?token=1":               "a.ts",
		"a.ts?x=%7e&token=1&y#f?z=1": "a.ts?x=%7e&y#f?z=1",
		"a.ts#f?token=1":             "a.ts#f?token=1",
		"a.ts?cmcd_sid=1&&b":         "a.ts?&b",
		"$Number%05d$.m4s?token=1":   "$Number%05d$.m4s",
	} {
		if got := rw.stripQuery(in); got != want {
			t.Errorf("stripQuery(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"video/":                           "video/",
		"/vod/$Number$.m4s?token=1":        "/edge/vod/$Number$.m4s",
		"https://o.example:8443/v/?k=1":    "https://cdn.example/edge/v/?k=1",
		"//o.example/v/":                   "https://cdn.example/edge/v/",
		"HTTP://o.example":                 "https://cdn.example/edge",
		"urn:x:y?token=1":                  "urn:x:y?token=1",
		"data:text/plain,a":                "data:text/plain,a",
		"$RepresentationID$:x/a?token=1&b": "$RepresentationID$:x/a?b",
	} {
		if got := rw.nestedRef(in); got != want {
			t.Errorf("nestedRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRewriteURIKeepsWhatItDoesNotMove: non-http URIs are left alone, and
// a rewrite that moves nothing keeps each URI's text, escapes included.
func TestRewriteURIKeepsWhatItDoesNotMove(t *testing.T) {
	m, _ := url.Parse("https://o.example/live/master.m3u8")
	for _, c := range []struct {
		rw        ManifestRewrite
		ref, want string
	}{
		{ManifestRewrite{BaseURL: "https://cdn.example"}, "data:text/plain;base64,AA==", "data:text/plain;base64,AA=="},
		{ManifestRewrite{BaseURL: "https://cdn.example"}, "skd://key?token=1", "skd://key?token=1"},
		{ManifestRewrite{StripQuery: []string{"token"}}, "/live/./a%2Fb.ts?z=1&token=2&a=3", "/live/./a%2Fb.ts?z=1&a=3"},
		{ManifestRewrite{BaseURL: "https://cdn.example/e"}, "a%2Fb.ts", "https://cdn.example/e/live/a%2Fb.ts"},
		{ManifestRewrite{URIForm: "relative"}, "https://o.example/live/", "./"},
		{ManifestRewrite{URIForm: "relative"}, "https://o.example/live/a:b.ts", "./a:b.ts"},
	} {
		if err := c.rw.provision(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.rw.uri(c.ref, m); err != nil || got != c.want {
			t.Errorf("%+v %q: got %q (%v), want %q", c.rw, c.ref, got, err, c.want)
		}
	}
}

// A playlist whose URIs use EXT-X-DEFINE variables is passed through when
// a rewrite would change them: a URL parser escapes "{$name}", and the
// player could no longer substitute it.
func TestRewriteHLSVariablesPassThrough(t *testing.T) {
	body := "#EXTM3U\n#EXT-X-VERSION:8\n#EXT-X-DEFINE:NAME=\"p\",VALUE=\"a\"\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg-{$p}-1.ts\n#EXT-X-ENDLIST\n"
	rw := ManifestRewrite{BaseURL: "https://cdn.example/edge"}
	if err := rw.provision(); err != nil {
		t.Fatal(err)
	}
	h := &ManifestHandler{Rewrite: rw}
	res := h.process(kindHLS, "http://origin.example/live/media.m3u8", []byte(body))
	if res.changed || string(res.body) != body || !strings.Contains(res.warning, "variable") {
		t.Fatalf("changed %v, warning %q, body:\n%s", res.changed, res.warning, res.body)
	}
}
