package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

func TestRewriteURIForms(t *testing.T) {
	m, _ := url.Parse("https://origin.example/live/ch1/master.m3u8?session=9")
	for _, c := range []struct {
		rw   ManifestRewrite
		ref  string
		want string
	}{
		{ManifestRewrite{}, "v1/index.m3u8?token=a&x=1", "v1/index.m3u8?token=a&x=1"},
		{ManifestRewrite{StripQuery: []string{"token"}}, "v1/index.m3u8?token=a&x=1", "v1/index.m3u8?x=1"},
		{ManifestRewrite{StripQuery: []string{"/^cmcd/"}}, "seg.ts?CMCD=1&cmcd_sid=2&k=3", "seg.ts?CMCD=1&k=3"},
		{ManifestRewrite{URIForm: "absolute"}, "../ch2/seg.ts", "https://origin.example/live/ch2/seg.ts"},
		{ManifestRewrite{URIForm: "relative"}, "https://origin.example/live/ch1/v1/a.ts", "v1/a.ts"},
		{ManifestRewrite{URIForm: "relative"}, "https://origin.example/vod/a.ts", "../../vod/a.ts"},
		{ManifestRewrite{URIForm: "relative"}, "https://cdn.example/a.ts", "https://cdn.example/a.ts"},
		{ManifestRewrite{BaseURL: "https://cdn.example/edge"}, "v1/a.ts", "https://cdn.example/edge/live/ch1/v1/a.ts"},
	} {
		if err := c.rw.provision(); err != nil {
			t.Fatal(err)
		}
		got, err := c.rw.uri(c.ref, m)
		if err != nil || got != c.want {
			t.Errorf("%+v %q: got %q (%v), want %q", c.rw, c.ref, got, err, c.want)
		}
	}
	for _, bad := range []ManifestRewrite{{BaseURL: "cdn.example"}, {URIForm: "weird"}, {StripQuery: []string{"/(/"}}} {
		if err := bad.provision(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestPinVariantsKeepsSwarms: a live packager restart that changes a
// variant's bandwidth would move its viewers to a new swarm; with
// pin_variants the second version keeps the first version's attributes.
func TestPinVariantsKeepsSwarms(t *testing.T) {
	const u = "https://origin.example/live/master.m3u8"
	v1 := "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\nv1.m3u8\n"
	v2 := strings.Replace(v1, "BANDWIDTH=800000", "BANDWIDTH=812345", 1)
	swarm := func(b []byte) string {
		p, err := manifest.ParseHLS(u, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Streams[0].Swarms[manifest.HLSJS].InfoHash)
	}
	if swarm([]byte(v1)) == swarm([]byte(v2)) {
		t.Fatal("test premise: the bandwidth change must move the swarm")
	}
	h := &ManifestHandler{Rewrite: ManifestRewrite{PinVariants: true}}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	r1 := h.process(kindHLS, u, []byte(v1))
	r2 := h.process(kindHLS, u, []byte(v2))
	if r1.warning != "" || r2.warning != "" {
		t.Fatalf("warnings: %q, %q", r1.warning, r2.warning)
	}
	if swarm(r2.body) != swarm([]byte(v1)) || !strings.Contains(string(r2.body), "BANDWIDTH=800000") {
		t.Fatalf("second version not pinned:\n%s", r2.body)
	}
}

// TestBrokenManifestsPassThrough: what the rewrite or the manifest parser
// cannot read is served unchanged.
func TestBrokenManifestsPassThrough(t *testing.T) {
	h := &ManifestHandler{Rewrite: ManifestRewrite{StripQuery: []string{"token"}}}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x\nv.m3u8\n",
		"#EXTM3U\n#EXTINF:abc,\nseg.ts\n",
		"<MPD><Period><AdaptationSet><Representation",
		"garbage",
		"",
	} {
		r := h.process(kindHLS, "https://o.example/m.m3u8", []byte(body))
		if string(r.body) != body || r.changed {
			t.Errorf("%q was changed to %q", body, r.body)
		}
	}
}

// FuzzManifestProcess: whatever bytes arrive as a manifest, process
// neither panics nor returns something other than the input or a
// rewrite that parses like it.
func FuzzManifestProcess(f *testing.F) {
	for _, s := range []string{
		"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nv1.m3u8?token=1\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8?token=2\"\n",
		"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init.mp4?token=3\"\n#EXTINF:4,\nseg7.m4s?token=4\n#EXT-X-BYTERANGE:100@0\n#EXTINF:4,\nseg8.m4s\n",
		`<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="1" codecs="avc1.64001e"><SegmentTemplate duration="2" media="s$Number$.m4s?token=1" initialization="i.mp4" startNumber="1"/></Representation></AdaptationSet></Period></MPD>`,
		"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=\n\n",
		byteRangePlaylist, featurePlaylist, channelsMaster, baseURLMPD, segmentListMPD,
	} {
		f.Add([]byte(s))
	}
	h := &ManifestHandler{Rewrite: ManifestRewrite{StripQuery: []string{"token"}, BaseURL: "https://cdn.example", PinVariants: true}}
	if err := h.Rewrite.provision(); err != nil {
		f.Fatal(err)
	}
	mu, _ := url.Parse("https://origin.example/x/m.m3u8")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, k := range []manifestKind{kindHLS, kindDASH} {
			r := h.process(k, mu.String(), body)
			if !r.changed && string(r.body) != string(body) {
				t.Fatalf("unchanged result differs from the input")
			}
		}
		// Outside apply's recover, so that a panic is found, not
		// passed through.
		_, _ = h.Rewrite.hls(body, mu)
		_, _ = h.Rewrite.dash(body, mu)
	})
}

// TestRewriteLongLivePlaylist: every segment of a live window longer than
// 8 is rewritten (grafov's default window; found by manifestbench).
func TestRewriteLongLivePlaylist(t *testing.T) {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:100\n")
	for i := range 12 {
		b.WriteString("#EXTINF:4.000,\nseg" + strings.Repeat("x", i) + ".ts?token=abc\n")
	}
	h := &ManifestHandler{Rewrite: ManifestRewrite{StripQuery: []string{"token"}}}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	r := h.process(kindHLS, "https://o.example/live/index.m3u8", []byte(b.String()))
	if r.warning != "" || strings.Count(string(r.body), "#EXTINF") != 12 || strings.Contains(string(r.body), "token") {
		t.Fatalf("warning %q, body:\n%s", r.warning, r.body)
	}
	if r.liveMaxAge != 2*time.Second {
		t.Errorf("live max-age %v, want 2s", r.liveMaxAge)
	}
}

// TestManifestWriterOverflow: a manifest without Content-Length that
// outgrows max_size is streamed through whole, not rewritten.
func TestManifestWriterOverflow(t *testing.T) {
	h := &ManifestHandler{MaxSize: 64, Rewrite: ManifestRewrite{StripQuery: []string{"token"}}}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	h.cache = newRewriteCache(4)
	body := "#EXTM3U\n" + strings.Repeat("#EXTINF:4,\nseg.ts?token=1\n", 20)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.WriteHeader(200)
		for i := 0; i < len(body); i += 50 {
			io.WriteString(w, body[i:min(i+50, len(body))])
		}
		return nil
	})
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest("GET", "http://o.example/live/index.m3u8", nil), next); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != body {
		t.Fatalf("got %d bytes, want the %d-byte original", rec.Body.Len(), len(body))
	}
}
