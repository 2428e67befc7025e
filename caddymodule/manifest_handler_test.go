package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

const (
	handlerMaster = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\"\nv1.m3u8\n"
	handlerLive   = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:4,\ns1.ts\n"
	handlerHTML   = "<!doctype html><html><body>app</body></html>"
)

// newHandlerTestSeeder is a seeder whose source serves handlerMaster for
// every URL with "master" in it and handlerLive for the others.
func newHandlerTestSeeder(t *testing.T) *seeder.Seeder {
	t.Helper()
	api, err := seeder.NewAPI(seeder.WebRTCConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src := manifest.FetcherFunc(func(_ context.Context, u string, _ *manifest.ByteRange) ([]byte, string, error) {
		if strings.Contains(u, "master") {
			return []byte(handlerMaster), u, nil
		}
		return []byte(handlerLive), u, nil
	})
	s, err := seeder.New(seeder.Config{API: api, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newDiscoveringHandler is a p2p_manifest handler with an app around s
// (nil: the app is not running) and the default idle timeout.
func newDiscoveringHandler(t *testing.T, s *seeder.Seeder, log *zap.Logger) *ManifestHandler {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	app := &App{seeder: s, seeded: map[string]bool{}, offload: newOffload(), uploads: newUploadTotals(), log: zap.NewNop(),
		gens: &generations{streams: newRuntimeStreams()}}
	h := &ManifestHandler{log: log, app: app, SeederWait: caddy.Duration(time.Second), MaxSize: DefaultManifestMaxSize}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	h.cache = newRewriteCache(16)
	h.streams = app.streamTracker(DefaultStreamIdleTimeout)
	return h
}

// manifestOrigin serves the playlists by path, HTML for /spa/ paths (a
// single-page app's fallback) and segments as video, and answers
// If-None-Match with 304.
func manifestOrigin() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		body, ct := handlerLive, "application/vnd.apple.mpegurl"
		switch {
		case strings.HasPrefix(r.URL.Path, "/spa/"):
			body, ct = handlerHTML, "text/html; charset=utf-8"
		case strings.HasSuffix(r.URL.Path, ".ts"):
			body, ct = "0123456789", "video/mp2t"
		case strings.Contains(r.URL.Path, "master"):
			body = handlerMaster
		}
		etag := `"v` + strconv.Itoa(len(body)) + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", ct)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, err := w.Write([]byte(body))
		return err
	})
}

// serve sends one request through h to next and returns the recording.
func serve(t *testing.T, h *ManifestHandler, next caddyhttp.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	return rec
}

// age makes every discovered stream of h look requested d ago.
func age(h *ManifestHandler, d time.Duration) {
	rs := h.streams.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, e := range rs.entries {
		e.lastSeen = time.Now().Add(-d)
	}
}

// discovered returns the discovered streams of h with their last request.
func discovered(h *ManifestHandler) map[string]time.Time {
	rs := h.streams.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := map[string]time.Time{}
	for u, e := range rs.entries {
		if e.discovered {
			out[u] = e.lastSeen
		}
	}
	return out
}

// sweep does what the app's janitor does at now.
func sweep(h *ManifestHandler, now time.Time) {
	h.streams.rs.sweep(now)
	h.app.syncRuntimeStreams()
}

const liveMaster = "http://video.example/live/master.m3u8"

// TestDiscoveredStreamKeptWhileWatched: players load the multivariant
// playlist once and then poll a media playlist (answered 200 or 304) and
// fetch segments; each of these keeps the stream past the idle timeout.
// The seeder's own reloads do not, and a stream nobody asks for goes.
func TestDiscoveredStreamKeptWhileWatched(t *testing.T) {
	s := newHandlerTestSeeder(t)
	h := newDiscoveringHandler(t, s, nil)
	origin := manifestOrigin()
	serve(t, h, origin, "GET", liveMaster, nil)
	if !s.HasStream(liveMaster) {
		t.Fatalf("master not registered: %v", s.Streams())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitStream(ctx, liveMaster); err != nil {
		t.Fatal(err)
	}
	idle := DefaultStreamIdleTimeout + time.Minute
	for _, c := range []struct {
		what   string
		target string
		hdr    map[string]string
		keeps  bool
	}{
		{"a media playlist poll", "http://video.example/live/v1.m3u8?_HLS_msn=3", nil, true},
		{"a revalidated media playlist", "http://video.example/live/v1.m3u8", map[string]string{"If-None-Match": `"v` + strconv.Itoa(len(handlerLive)) + `"`}, true},
		{"a segment", "http://video.example/live/s1.ts", nil, true},
		{"the seeder's playlist reload", "http://video.example/live/v1.m3u8", map[string]string{"User-Agent": seeder.UserAgent}, false},
		{"another stream's playlist", "http://video.example/other/v1.m3u8", nil, false},
	} {
		age(h, idle)
		serve(t, h, origin, "GET", c.target, c.hdr)
		kept := time.Since(discovered(h)[liveMaster]) < time.Minute
		if kept != c.keeps {
			t.Errorf("%s keeps the stream: %v, want %v", c.what, kept, c.keeps)
		}
	}
	sweep(h, time.Now())
	if s.HasStream(liveMaster) {
		t.Fatal("the idle stream is still seeded")
	}
	if len(h.streams.rs.playlists) != 0 {
		t.Errorf("a dropped stream's playlists are still mapped: %v", h.streams.rs.playlists)
	}
}

// TestConfiguredStreamNeverSwept: a stream configured in the app is not
// the handler's to drop, whatever is requested.
func TestConfiguredStreamNeverSwept(t *testing.T) {
	s := newHandlerTestSeeder(t)
	const withToken = "http://video.example/token/master.m3u8?token=abc"
	for _, u := range []string{liveMaster, withToken} {
		if _, err := s.AddStream(seeder.StreamConfig{URL: u}); err != nil { // as App.Start does
			t.Fatal(err)
		}
	}
	h := newDiscoveringHandler(t, s, nil)
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	// Configured with a query: the same swarms, not a second stream.
	serve(t, h, manifestOrigin(), "GET", "http://video.example/token/master.m3u8?token=xyz", nil)
	if got := s.Streams(); len(got) != 2 || len(discovered(h)) != 0 {
		t.Fatalf("streams %v, tracked %v; want the two configured ones, none tracked", got, discovered(h))
	}
	sweep(h, time.Now().Add(DefaultStreamIdleTimeout+time.Minute))
	if !s.HasStream(liveMaster) || !s.HasStream(withToken) {
		t.Fatalf("a configured stream was dropped: %v", s.Streams())
	}
	// Added by the app between the handler's checks and its AddStream:
	// the seeder's "already there" leaves it untracked.
	h.streams.add(context.Background(), s, liveMaster, "v", []string{"http://video.example/live/v1.m3u8"}, 0, zap.NewNop())
	if len(discovered(h)) != 0 || len(h.streams.rs.playlists) != 0 {
		t.Errorf("configured stream tracked: %v %v", discovered(h), h.streams.rs.playlists)
	}
}

// TestDiscoveryKeys: query parameters and spellings of the Host header do
// not make new streams; paths a browser would not send and Hosts no site
// is configured for are not registered; the HTML a single-page app serves
// for a missing playlist is not a presentation.
func TestDiscoveryKeys(t *testing.T) {
	s := newHandlerTestSeeder(t)
	h := newDiscoveringHandler(t, s, nil)
	origin := manifestOrigin()
	for i := range 5 {
		serve(t, h, origin, "GET", liveMaster+"?CMCD="+strings.Repeat("x", i), nil)
	}
	serve(t, h, origin, "GET", liveMaster, map[string]string{"Host": "Video.Example:80"})
	for _, p := range []string{"/live//master.m3u8", "/live/./master.m3u8", "/live/%6Daster.m3u8", "/x/../live/master.m3u8"} {
		serve(t, h, origin, "GET", "http://video.example"+p, nil)
	}
	for i := range 3 {
		serve(t, h, origin, "GET", "http://video.example/spa/nope"+strings.Repeat("x", i)+".m3u8", nil)
	}
	if got := s.Streams(); len(got) != 1 || got[0] != liveMaster {
		t.Fatalf("streams %v, want only %s", got, liveMaster)
	}
	if len(h.streams.rs.rejected) != 3 {
		t.Errorf("rejected versions %v, want the 3 HTML pages", h.streams.rs.rejected)
	}

	// Behind a site address, a Host no site names is not registered.
	srv := &caddyhttp.Server{Routes: caddyhttp.RouteList{
		{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHost{"video.example", "*.cdn.example"}}}},
	}}
	inServer := func(host string) {
		req := httptest.NewRequest("GET", "http://x/live/master2.m3u8", nil)
		req.Host = host
		ctx := context.WithValue(req.Context(), caddyhttp.ServerCtxKey, srv)
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
		if err := h.ServeHTTP(httptest.NewRecorder(), req.WithContext(ctx), origin); err != nil {
			t.Fatal(err)
		}
	}
	inServer("169.254.169.254")
	inServer("localhost:2019")
	inServer("edge1.cdn.example")
	want := []string{"http://edge1.cdn.example/live/master2.m3u8", liveMaster}
	if got := s.Streams(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("streams %v, want %v", got, want)
	}
}

// TestDiscoveryCap: past maxDiscoveredStreams a new stream is refused and
// the refusal logged once; once idle streams are dropped there is room.
func TestDiscoveryCap(t *testing.T) {
	s := newHandlerTestSeeder(t)
	core, logs := observer.New(zapcore.WarnLevel)
	h := newDiscoveringHandler(t, s, zap.New(core))
	rs := h.streams.rs
	rs.mu.Lock()
	for i := range maxDiscoveredStreams {
		u := "http://video.example/fake/" + strconv.Itoa(i)
		rs.entries[u] = &runtimeStream{config: seeder.StreamConfig{URL: u}, discovered: true, idle: time.Minute, lastSeen: time.Now().Add(-time.Hour)}
	}
	rs.mu.Unlock()
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	serve(t, h, manifestOrigin(), "GET", "http://video.example/live2/master.m3u8", nil)
	if got := s.Streams(); len(got) != 0 {
		t.Fatalf("streams over the cap: %v", got)
	}
	if n := logs.FilterMessageSnippet("cap reached").Len(); n != 1 {
		t.Errorf("%d cap warnings, want 1", n)
	}
	sweep(h, time.Now())
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	if !s.HasStream(liveMaster) {
		t.Fatal("no room after the sweep")
	}
}

// TestQueryVariantsOneStream: viewers with different tokens share one
// stream; when one stops, the seeder stays in the swarm the others use.
func TestQueryVariantsOneStream(t *testing.T) {
	s := newHandlerTestSeeder(t)
	h := newDiscoveringHandler(t, s, nil)
	serve(t, h, manifestOrigin(), "GET", liveMaster+"?token=A", nil)
	serve(t, h, manifestOrigin(), "GET", liveMaster+"?token=B", nil)
	if got := s.Streams(); len(got) != 1 {
		t.Fatalf("streams %v, want one", got)
	}
	p, err := manifest.ParseHLS(liveMaster+"?token=B", []byte(handlerMaster), nil)
	if err != nil {
		t.Fatal(err)
	}
	ih := p.Streams[0].Swarms[manifest.HLSJS].InfoHash
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitStream(ctx, liveMaster); err != nil || !s.HasSwarm(ih) {
		t.Fatalf("seeder not in the viewers' swarm (%v)", err)
	}
}

// TestRegistrationRetried: a manifest served while the seeder is not
// running, or cannot take the stream, is registered by a later request.
func TestRegistrationRetried(t *testing.T) {
	h := newDiscoveringHandler(t, nil, nil)
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	closed := newHandlerTestSeeder(t)
	closed.Close()
	h.app.mu.Lock()
	h.app.seeder = closed
	h.app.mu.Unlock()
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	if len(discovered(h)) != 0 {
		t.Fatalf("a stream that was never added is tracked: %v", discovered(h))
	}
	s := newHandlerTestSeeder(t)
	h.app.mu.Lock()
	h.app.seeder = s
	h.app.mu.Unlock()
	serve(t, h, manifestOrigin(), "GET", liveMaster, nil)
	if !s.HasStream(liveMaster) {
		t.Fatalf("not registered once the seeder runs: %v", s.Streams())
	}
}

// TestConcurrentFirstRequests: concurrent first requests add the stream
// once, and it is tracked (not taken for a configured one).
func TestConcurrentFirstRequests(t *testing.T) {
	s := newHandlerTestSeeder(t)
	h := newDiscoveringHandler(t, s, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", liveMaster, nil)
			_ = h.ServeHTTP(httptest.NewRecorder(), req, manifestOrigin())
		})
	}
	wg.Wait()
	if _, ok := discovered(h)[liveMaster]; !ok || !s.HasStream(liveMaster) {
		t.Fatalf("tracked %v, seeded %v", discovered(h), s.Streams())
	}
}

func TestLiveCacheControl(t *testing.T) {
	for _, c := range []struct {
		upstream []string
		want     string // "" when upstream's stays
	}{
		{nil, "max-age=2"},
		{[]string{"private, no-store"}, ""},
		{[]string{"no-cache"}, ""},
		{[]string{"public", "No-Store"}, ""},
		{[]string{"max-age=1"}, ""},
		{[]string{"max-age=2, must-revalidate"}, ""},
		{[]string{"public, max-age=60"}, "public, max-age=2"},
		{[]string{"s-maxage=10, max-age=\"30\", stale-while-revalidate=4"}, "s-maxage=10, max-age=2, stale-while-revalidate=4"},
		{[]string{"max-age=oops"}, "max-age=2"},
	} {
		got, ok := liveCacheControl(c.upstream, 2)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.upstream, got, ok, c.want)
		}
	}

	// Through the handler, with no rewrite configured.
	h := &ManifestHandler{log: zap.NewNop(), MaxSize: DefaultManifestMaxSize}
	if err := h.Rewrite.provision(); err != nil {
		t.Fatal(err)
	}
	h.cache = newRewriteCache(16)
	for i, c := range [][2]string{{"private, no-store", "private, no-store"}, {"", "max-age=2"}, {"public, max-age=600", "public, max-age=2"}} {
		cc, want := c[0], c[1]
		origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			if cc != "" {
				w.Header().Set("Cache-Control", cc)
			}
			_, err := w.Write([]byte(handlerLive))
			return err
		})
		rec := serve(t, h, origin, "GET", "http://video.example/live/v1.m3u8?case="+strconv.Itoa(i), nil)
		if got := rec.Header().Get("Cache-Control"); got != want {
			t.Errorf("upstream %q: served %q, want %q", cc, got, want)
		}
	}
}

// fileServerLike answers like file_server behind handle_path: HEAD with
// headers only, Range with 206, and a 404 unless the path still has the
// prefix it strips in place. Upstream headers are added, as reverse_proxy
// does. It counts its requests and remembers the last Accept-Encoding.
type fileServerLike struct {
	files    map[string]string
	requests int
	encoding string
}

func (f *fileServerLike) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	f.requests++
	f.encoding = r.Header.Get("Accept-Encoding")
	name, ok := strings.CutPrefix(r.URL.Path, "/media")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	r.URL.Path = name
	body, ok := f.files[name]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	ct := "application/vnd.apple.mpegurl"
	if strings.Contains(name, "video") {
		ct = "video/mp4"
	}
	etag := `"f` + strconv.Itoa(len(body)) + `"`
	w.Header().Add("Content-Type", ct)
	w.Header().Add("ETag", etag)
	w.Header().Add("Accept-Ranges", "bytes")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if r.Header.Get("Range") != "" && len(body) > 4 {
		w.Header().Add("Content-Range", "bytes 0-3/"+strconv.Itoa(len(body)))
		w.Header().Add("Content-Length", "4")
		w.WriteHeader(http.StatusPartialContent)
		_, err := w.Write([]byte(body[:4]))
		return err
	}
	w.Header().Add("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write([]byte(body))
	return err
}

// TestManifestWithoutExtension: a manifest whose URL has no .m3u8 or .mpd
// extension is answered like one that has: HEAD with the length GET
// sends, Range with the whole rewritten manifest, br not asked of
// upstream, and 304 with the rewritten validator. Other responses on
// such paths are asked once and pass through.
func TestManifestWithoutExtension(t *testing.T) {
	const master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e,mp4a.40.2\"\nv1/index.m3u8?token=abc\n"
	const manifestPath = "http://video.example/media/asset.ism/manifest(format=m3u8-aapl)"
	for _, rewrite := range []bool{false, true} {
		h := &ManifestHandler{log: zap.NewNop(), MaxSize: DefaultManifestMaxSize}
		if rewrite {
			h.Rewrite.StripQuery = []string{"token"}
		}
		if err := h.Rewrite.provision(); err != nil {
			t.Fatal(err)
		}
		h.cache = newRewriteCache(16)
		fs := &fileServerLike{files: map[string]string{"/asset.ism/manifest(format=m3u8-aapl)": master, "/asset.ism/video": "0123456789"}}
		get := serve(t, h, fs, "GET", manifestPath, map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"})
		if fs.encoding != "gzip" {
			t.Errorf("upstream asked for %q, want gzip", fs.encoding)
		}
		if want := strconv.Itoa(get.Body.Len()); get.Code != 200 || get.Header().Get("Content-Length") != want || rewrite == strings.Contains(get.Body.String(), "token") {
			t.Fatalf("rewrite %v: GET %d, Content-Length %q for %d bytes:\n%s", rewrite, get.Code, get.Header().Get("Content-Length"), get.Body.Len(), get.Body)
		}
		for _, c := range []struct {
			method string
			hdr    map[string]string
		}{
			{"HEAD", nil},
			{"GET", map[string]string{"Range": "bytes=0-3"}},
		} {
			h.cache = newRewriteCache(16) // not answered from the cache
			req := httptest.NewRequest(c.method, manifestPath, nil)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Before", "kept")
			if err := h.ServeHTTP(rec, req, fs); err != nil {
				t.Fatal(err)
			}
			hdr := rec.Header()
			if rec.Code != 200 || hdr.Get("Content-Length") != get.Header().Get("Content-Length") || len(hdr.Values("ETag")) != 1 ||
				hdr.Get("ETag") != get.Header().Get("ETag") || hdr.Get("Accept-Ranges") != "" || hdr.Get("Content-Range") != "" || hdr.Get("X-Before") != "kept" {
				t.Errorf("rewrite %v: %s %v: %d, headers %v; GET had %v", rewrite, c.method, c.hdr, rec.Code, hdr, get.Header())
			}
			if c.method == "GET" && rec.Body.String() != get.Body.String() {
				t.Errorf("rewrite %v: Range answered with %q", rewrite, rec.Body)
			}
		}
		cond := serve(t, h, fs, "GET", manifestPath, map[string]string{"If-None-Match": get.Header().Get("ETag")})
		if cond.Code != http.StatusNotModified || cond.Header().Get("ETag") != get.Header().Get("ETag") {
			t.Errorf("rewrite %v: If-None-Match %s: %d, ETag %q", rewrite, get.Header().Get("ETag"), cond.Code, cond.Header().Get("ETag"))
		}
		// Not a manifest: one request, answered as upstream answers.
		for _, c := range []struct {
			method, rng string
			status      int
		}{{"GET", "bytes=0-3", 206}, {"HEAD", "", 200}} {
			n := fs.requests
			rec := serve(t, h, fs, c.method, "http://video.example/media/asset.ism/video", map[string]string{"Range": c.rng})
			if fs.requests != n+1 || rec.Code != c.status || rec.Header().Get("Accept-Ranges") != "bytes" {
				t.Errorf("segment %s %q: %d requests, %d, headers %v", c.method, c.rng, fs.requests-n, rec.Code, rec.Header())
			}
		}
	}
}

func TestDecodableEncoding(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   string
		narrow bool
	}{
		{"", "", false},
		{"gzip", "", false},
		{"identity", "", false},
		{"gzip, deflate, br, zstd", "gzip", true},
		{"br", "identity", true},
		{"br;q=1, gzip;q=0", "identity", true},
		{"*", "gzip", true},
		{"*, gzip;q=0", "identity", true},
		{"br, identity;q=0", "", false},
		{"br;q=0", "", false},
	} {
		var values []string
		if c.in != "" {
			values = []string{c.in}
		}
		got, narrow := decodableEncoding(values)
		if got != c.want || narrow != c.narrow {
			t.Errorf("%q: %q, %v; want %q, %v", c.in, got, narrow, c.want, c.narrow)
		}
	}
}

func TestStreamKey(t *testing.T) {
	for in, want := range map[string]string{
		"http://video.example/live/master.m3u8?token=1":         "http://video.example/live/master.m3u8",
		"http://Video.Example:80/live/master.m3u8":              "http://video.example/live/master.m3u8",
		"https://video.example:443/a.m3u8":                      "https://video.example/a.m3u8",
		"https://video.example:8443/a.m3u8":                     "https://video.example:8443/a.m3u8",
		"http://o.example/asset.ism/manifest(format=m3u8-aapl)": "http://o.example/asset.ism/manifest(format=m3u8-aapl)",
		"http://o.example/my%20show/master.m3u8":                "http://o.example/my%20show/master.m3u8",
		"http://o.example/a//master.m3u8":                       "",
		"http://o.example/a/../master.m3u8":                     "",
		"http://o.example/a/%6Daster.m3u8":                      "",
		"http://o.example/my%2fshow/master.m3u8":                "",
		"ftp://o.example/master.m3u8":                           "",
		"/master.m3u8":                                          "",
	} {
		got, ok := streamKey(in)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestRuntimeStreamsOutliveTheApp: the streams discovered through one
// config's app, and those added through the admin API, are seeded by the
// next config's app too (a reload starts it before it stops the old one),
// requests through either config keep a discovered one alive, and a
// stream deleted through the admin API is gone from both and may be
// discovered again.
func TestRuntimeStreamsOutliveTheApp(t *testing.T) {
	s1 := newHandlerTestSeeder(t)
	old := newDiscoveringHandler(t, s1, nil)
	serve(t, old, manifestOrigin(), "GET", liveMaster, nil)
	const manual = "http://video.example/admin/master.m3u8"
	if added, err := old.app.AddStream(seeder.StreamConfig{URL: manual}); err != nil || !added {
		t.Fatalf("admin add: %v %v", added, err)
	}

	// The next config: its app shares the generations, and starts.
	s2 := newHandlerTestSeeder(t)
	next := newDiscoveringHandler(t, s2, nil)
	next.app.gens = old.app.gens
	next.streams = next.app.streamTracker(DefaultStreamIdleTimeout)
	next.app.syncRuntimeStreams() // as App.Start does
	if !s2.HasStream(liveMaster) || !s2.HasStream(manual) {
		t.Fatalf("the next app seeds %v, want the discovered and the admin-added stream", s2.Streams())
	}
	// The old config goes; a player that only polls a media playlist
	// through the new one keeps the stream.
	age(next, DefaultStreamIdleTimeout+time.Minute)
	serve(t, next, manifestOrigin(), "GET", "http://video.example/live/v1.m3u8", nil)
	sweep(next, time.Now())
	if !s2.HasStream(liveMaster) || !s2.HasStream(manual) {
		t.Fatalf("after a sweep the next app seeds %v", s2.Streams())
	}

	// Deleted through the admin API of the new config: gone from both
	// seeders once the old app syncs, and discovered again on request.
	next.app.RemoveStream(liveMaster)
	old.app.syncRuntimeStreams()
	if s1.HasStream(liveMaster) || s2.HasStream(liveMaster) {
		t.Fatalf("deleted stream still seeded: %v / %v", s1.Streams(), s2.Streams())
	}
	serve(t, next, manifestOrigin(), "GET", liveMaster, nil)
	if !s2.HasStream(liveMaster) {
		t.Fatalf("a deleted stream is not discovered again: %v", s2.Streams())
	}
	// An idle discovered stream goes; the admin-added one stays.
	age(next, DefaultStreamIdleTimeout+time.Minute)
	sweep(next, time.Now())
	if s2.HasStream(liveMaster) || !s2.HasStream(manual) {
		t.Fatalf("after the idle timeout the app seeds %v, want only %s", s2.Streams(), manual)
	}
	// Added through the admin API once discovered: it stays too.
	serve(t, next, manifestOrigin(), "GET", liveMaster, nil)
	if added, err := next.app.AddStream(seeder.StreamConfig{URL: liveMaster}); err != nil || added {
		t.Fatalf("admin add of a discovered stream: added %v, %v; want false (seeded already)", added, err)
	}
	age(next, DefaultStreamIdleTimeout+time.Minute)
	sweep(next, time.Now())
	if !s2.HasStream(liveMaster) {
		t.Fatalf("a discovered stream the admin API added was swept: %v", s2.Streams())
	}
}

// The second request for a manifest first asked for with HEAD or a Range
// is a GET without a body: the first attempt has read the request's.
func TestWholeManifestRequestHasNoBody(t *testing.T) {
	r := httptest.NewRequest("HEAD", "http://video.example/m", strings.NewReader("hello"))
	r.Header.Set("Content-Length", "5")
	r.Header.Set("Range", "bytes=0-3")
	up := wholeManifestRequest(r)
	if up.Method != "GET" || up.Body != http.NoBody || up.ContentLength != 0 || up.Header.Get("Content-Length") != "" || up.Header.Get("Range") != "" {
		t.Fatalf("second request: %s, body %v, length %d, headers %v", up.Method, up.Body, up.ContentLength, up.Header)
	}
}
