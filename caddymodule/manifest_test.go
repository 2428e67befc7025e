package caddymodule_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func httpDo(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// No transparent gzip: the test sees what Caddy sends.
	req.Header.Set("Accept-Encoding", "identity")
	if v, ok := hdr["Accept-Encoding"]; ok {
		req.Header.Set("Accept-Encoding", v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// demoPlayerSwarm returns the URL under which a player on this site loads
// the demo stream from media (served at /media/) and the info hash of its
// first hls.js swarm.
func demoPlayerSwarm(t *testing.T, media string) (player, infoHash string) {
	t.Helper()
	player = fmt.Sprintf("http://127.0.0.1:%d/media/demo/master.m3u8", httpPort)
	p, err := manifest.Load(context.Background(), player, seeder.FileSource{Root: media, StripPrefix: "/media"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return player, string(p.Streams[0].Swarms[manifest.HLSJS].InfoHash)
}

// announceFor announces a fresh viewer in swarm ih on a new socket and
// returns the reply.
func announceFor(t *testing.T, ih string) map[string]any {
	t.Helper()
	return announceOn(t, dialTracker(t, "/announce"), ih, "-PM0203-manifesttst1")
}

// TestManifestHandlerDiscoversAndGuards: file_server + p2p_manifest + the
// p2p app with no stream listed + a private tracker. Serving the
// multivariant playlist makes the seeder join its swarms, the tracker then
// accepts them and refuses others; HEAD, Range and conditional requests
// get correct answers; segments stream through untouched.
func TestManifestHandlerDiscoversAndGuards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	// The seeder attaches to the tracker in-process.
	globals := fmt.Sprintf("\tp2p {\n\t\ttracker local\n\t\tsource file %s {\n\t\t\tstrip_prefix /media\n\t\t}\n\t\twebrtc_listen 127.0.0.1:0\n\t\tinterfaces lo\n\t}\n", media)
	site := fmt.Sprintf(`:%d {
	p2p_tracker /announce {
		authorizer known_streams
	}
	p2p_dashboard /dashboard
	handle_path /media/* {
		root * %s
		p2p_manifest
		file_server
	}
}
`, httpPort, media)
	loadCaddyfileGlobals(t, globals, site)
	defer caddy.Stop()

	player, known := demoPlayerSwarm(t, media)

	// Before the playlist is served the swarm is unknown.
	if m := announceFor(t, known); m["failure reason"] == nil {
		t.Fatalf("announce before discovery accepted: %v", m)
	}
	resp, body := httpDo(t, "GET", "/media/demo/master.m3u8", nil)
	want, _ := readFile(filepath.Join(media, "demo", "master.m3u8"))
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("master: %d, %d bytes (want %d), CL %q", resp.StatusCode, len(body), len(want), resp.Header.Get("Content-Length"))
	}
	// The first request waited for the seeder: the swarm is known now.
	if m := announceFor(t, known); m["failure reason"] != nil || m["interval"] == nil {
		t.Fatalf("announce after discovery: %v", m)
	}
	// The in-process seeder is in the swarm as a complete peer.
	waitUntil(t, "the local seeder in the tracker's swarm", func() bool {
		return strings.Contains(getAdmin(t, "/p2p/tracker"), `"info_hash":"`+known+`","info_hash_hex":"`) &&
			strings.Count(getAdmin(t, "/p2p/tracker"), `"complete":1`) >= 1
	})
	if m := announceFor(t, "AAAAAAAAAAAAAAAAAAAA"); m["failure reason"] == nil || m["info_hash"] != "AAAAAAAAAAAAAAAAAAAA" {
		t.Fatalf("unknown swarm accepted: %v", m)
	}
	if st := getAdmin(t, "/p2p/seeder"); !strings.Contains(st, player) {
		t.Fatalf("seeder does not list %s:\n%s", player, st)
	}

	// HEAD: the same length, no body.
	resp, body = httpDo(t, "HEAD", "/media/demo/master.m3u8", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("HEAD: %d, body %d, CL %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	// Range on a manifest: the whole manifest.
	resp, body = httpDo(t, "GET", "/media/demo/master.m3u8", map[string]string{"Range": "bytes=0-9"})
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Accept-Ranges") != "" {
		t.Fatalf("Range: %d, %d bytes, Accept-Ranges %q", resp.StatusCode, len(body), resp.Header.Get("Accept-Ranges"))
	}
	// Conditional request with the ETag we sent.
	etag := resp.Header.Get("ETag")
	resp, _ = httpDo(t, "GET", "/media/demo/master.m3u8", map[string]string{"If-None-Match": etag})
	if etag == "" || resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != etag {
		t.Fatalf("If-None-Match %q: %d, ETag %q", etag, resp.StatusCode, resp.Header.Get("ETag"))
	}
	// Segments, with Range, stream through untouched.
	seg, _ := readFile(filepath.Join(media, "demo", "180p", "seg_001.ts"))
	resp, body = httpDo(t, "GET", "/media/demo/180p/seg_001.ts", map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, seg[10:20]) {
		t.Fatalf("segment range: %d, %q", resp.StatusCode, body)
	}
	// The segment bytes count for the stream; the seeder's fetches would
	// not (its User-Agent), nor do reports for unknown streams.
	httpDo(t, "GET", "/media/demo/180p/seg_002.ts", map[string]string{"User-Agent": seeder.UserAgent})
	var dash struct {
		Streams []struct {
			URL       string `json:"url"`
			HTTPBytes uint64 `json:"http_bytes"`
		} `json:"streams"`
	}
	_, body = httpDo(t, "GET", "/dashboard?format=json", nil)
	if err := json.Unmarshal(body, &dash); err != nil || len(dash.Streams) != 1 || dash.Streams[0].URL != player || dash.Streams[0].HTTPBytes != 10 {
		t.Fatalf("dashboard data %s (%v), want 10 HTTP bytes for %s", body, err, player)
	}
	if st := getAdmin(t, "/p2p/streams"); !strings.Contains(st, `"http_bytes":10,`) {
		t.Fatalf("/p2p/streams: %s", st)
	}
	// A media playlist is not a stream of its own.
	httpDo(t, "GET", "/media/demo/180p/index.m3u8", nil)
	if st := getAdmin(t, "/p2p/seeder"); strings.Contains(st, "180p/index.m3u8\",\"swarm") {
		t.Fatal("a media playlist was registered as a stream")
	}
}

func readFile(p string) ([]byte, error) {
	f, err := http.Dir(filepath.Dir(p)).Open(filepath.Base(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// upstream is an origin behind reverse_proxy that gzips whatever the client
// accepts, answers Range, and sends ETags and 304s.
func upstream(t *testing.T, files map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		ct := "application/vnd.apple.mpegurl"
		if strings.HasSuffix(r.URL.Path, ".mpd") {
			ct = "application/dash+xml"
		}
		etag := fmt.Sprintf(`"v%d"`, len(body))
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", ct)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if rg := r.Header.Get("Range"); rg != "" {
			w.Header().Set("Content-Range", "bytes 0-9/"+fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, body[:10])
			return
		}
		// Gzip even if asked for identity: the handler must cope.
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, body)
		zw.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

const testMaster = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
v360/index.m3u8?token=abc&cmcd_x=1&keep=1
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.64001e,mp4a.40.2"
v180/index.m3u8?token=abc
`

const testLive = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:100
#EXTINF:4.000,
seg100.ts?token=abc
#EXTINF:4.000,
seg101.ts?token=abc
`

const testMPD = `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT8S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true">
      <Representation id="v0" codecs="avc1.640015" bandwidth="200000" width="320" height="180">
        <SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s?token=abc" media="seg-$RepresentationID$-$Number$.m4s?token=abc&amp;keep=1" startNumber="1"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
`

// TestManifestHandlerRewritesBehindReverseProxy: reverse_proxy to an
// upstream that gzips, answers Range and sends ETags: manifests are
// decoded, rewritten (query parameters stripped, URIs moved to a CDN
// base), get a derived ETag that still yields 304s, and live playlists
// get a short max-age; broken and oversized manifests pass through.
func TestManifestHandlerRewritesBehindReverseProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	up := upstream(t, map[string]string{
		"/vod/master.m3u8": testMaster,
		"/live/index.m3u8": testLive,
		"/dash/stream.mpd": testMPD,
		"/bad/master.m3u8": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=oops\n",
		"/big/master.m3u8": testMaster + strings.Repeat("# padding\n", 500),
	})
	site := fmt.Sprintf(`:%d {
	p2p_manifest {
		discover off
		max_size 4KiB
		strip_query token /^cmcd/
		base_url https://cdn.example
	}
	# Flushing at once must not push out a manifest being buffered.
	reverse_proxy %s {
		flush_interval -1
	}
}
`, httpPort, up.URL)
	loadCaddyfile(t, site)
	defer caddy.Stop()

	resp, body := httpDo(t, "GET", "/vod/master.m3u8", map[string]string{"Range": "bytes=0-9"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("master: %d, encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	s := string(body)
	for _, want := range []string{"https://cdn.example/vod/v360/index.m3u8?keep=1", "https://cdn.example/vod/v180/index.m3u8\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("master lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "token") || strings.Contains(s, "cmcd") {
		t.Errorf("query parameters not stripped:\n%s", s)
	}
	if resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length %q for %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasSuffix(etag, `-p2p"`) {
		t.Fatalf("rewritten manifest keeps the upstream ETag %q", etag)
	}
	resp, _ = httpDo(t, "GET", "/vod/master.m3u8", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != etag {
		t.Fatalf("conditional GET: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// Compressed for a client that accepts it only if encode is used: here
	// there is no encode, so identity.
	resp, body = httpDo(t, "GET", "/live/index.m3u8", nil)
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=2" {
		t.Errorf("live playlist Cache-Control %q, want max-age=2", cc)
	}
	if !strings.Contains(string(body), "https://cdn.example/live/seg100.ts\n") {
		t.Errorf("live playlist not rewritten:\n%s", body)
	}
	resp, body = httpDo(t, "GET", "/dash/stream.mpd", nil)
	d := string(body)
	if resp.StatusCode != 200 || !strings.Contains(d, "<BaseURL>https://cdn.example/dash/</BaseURL>") ||
		strings.Contains(d, "token") || !strings.Contains(d, "keep=1") || !strings.Contains(d, "$Number$") {
		t.Errorf("MPD not rewritten as expected:\n%s", d)
	}
	// Broken: passed through, not broken further.
	resp, body = httpDo(t, "GET", "/bad/master.m3u8", nil)
	if resp.StatusCode != 200 || string(body) != "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=oops\n" {
		t.Errorf("broken manifest: %d %q", resp.StatusCode, body)
	}
	// Oversized: passed through (gzip and all, as upstream sent it).
	resp, body = httpDo(t, "GET", "/big/master.m3u8", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("oversized manifest: %d, encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if zr, err := gzip.NewReader(bytes.NewReader(body)); err != nil {
		t.Errorf("oversized manifest body: %v", err)
	} else if b, _ := io.ReadAll(zr); string(b) != testMaster+strings.Repeat("# padding\n", 500) {
		t.Error("oversized manifest changed")
	}
}

// TestManifestHandlerDropsIdleStreams: a discovered stream whose manifest
// nobody requests for stream_idle_timeout leaves the seeder; a trusted
// proxy's X-Forwarded-Proto and -Host name the URL players use.
func TestManifestHandlerDropsIdleStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	globals := fmt.Sprintf("\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n\tp2p {\n\t\tsource file %s {\n\t\t\tstrip_prefix /media\n\t\t}\n\t\twebrtc_listen 127.0.0.1:0\n\t\tinterfaces lo\n\t}\n", media)
	site := fmt.Sprintf(":%d {\n\thandle_path /media/* {\n\t\troot * %s\n\t\tp2p_manifest {\n\t\t\tstream_idle_timeout 1s\n\t\t}\n\t\tfile_server\n\t}\n}\n", httpPort, media)
	loadCaddyfileGlobals(t, globals, site)
	defer caddy.Stop()
	resp, _ := httpDo(t, "GET", "/media/demo/master.m3u8", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "video.example"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	const seen = "https://video.example/media/demo/master.m3u8"
	if st := getAdmin(t, "/p2p/seeder"); !strings.Contains(st, `"url":"`+seen+`"`) {
		t.Fatalf("stream not registered as %s:\n%s", seen, st)
	}
	waitUntil(t, "the idle stream to be dropped", func() bool {
		return !strings.Contains(getAdmin(t, "/p2p/seeder"), seen)
	})
}

// TestManifestHandlerIgnoresUnconfiguredHosts: on a server with a site
// address and a catch-all site, a manifest requested under a Host no site
// names is served but not registered: the seeder would fetch from, and
// join swarms for, whatever host a client made up.
func TestManifestHandlerIgnoresUnconfiguredHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	globals := fmt.Sprintf("\tp2p {\n\t\tsource file %s {\n\t\t\tstrip_prefix /media\n\t\t}\n\t\twebrtc_listen 127.0.0.1:0\n\t\tinterfaces lo\n\t}\n", media)
	block := fmt.Sprintf("{\n\thandle_path /media/* {\n\t\troot * %s\n\t\tp2p_manifest\n\t\tfile_server\n\t}\n}\n", media)
	loadCaddyfileGlobals(t, globals, fmt.Sprintf("http://video.localhost:%d %s:%d %s", httpPort, block, httpPort, block))
	defer caddy.Stop()
	for _, host := range []string{"evil.example", fmt.Sprintf("video.localhost:%d", httpPort)} {
		req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/media/demo/master.m3u8", httpPort), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("Host %s: status %d", host, resp.StatusCode)
		}
	}
	st := getAdmin(t, "/p2p/seeder")
	if strings.Contains(st, "evil.example") || !strings.Contains(st, fmt.Sprintf(`"url":"http://video.localhost:%d/media/demo/master.m3u8"`, httpPort)) {
		t.Fatalf("seeder streams:\n%s", st)
	}
}

// TestManifestHandlerDiscoveriesSurviveReload: a config reload keeps the
// streams p2p_manifest discovered (players do not load the multivariant
// playlist again), so known_streams goes on accepting their viewers.
func TestManifestHandlerDiscoveriesSurviveReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	media := demoMedia(t)
	globals := fmt.Sprintf("\tp2p {\n\t\ttracker local\n\t\tsource file %s {\n\t\t\tstrip_prefix /media\n\t\t}\n\t\twebrtc_listen 127.0.0.1:0\n\t\tinterfaces lo\n\t}\n", media)
	site := func(header string) string {
		return fmt.Sprintf(`:%d {
	header %s
	p2p_tracker /announce {
		authorizer known_streams
	}
	handle_path /media/* {
		root * %s
		p2p_manifest
		file_server
	}
}
`, httpPort, header, media)
	}
	loadCaddyfileGlobals(t, globals, site("X-Config one"))
	defer caddy.Stop()
	player, known := demoPlayerSwarm(t, media)
	if resp, _ := httpDo(t, "GET", "/media/demo/master.m3u8", nil); resp.StatusCode != 200 {
		t.Fatalf("master: %d", resp.StatusCode)
	}
	if m := announceFor(t, known); m["failure reason"] != nil {
		t.Fatalf("announce after discovery: %v", m)
	}

	loadCaddyfileGlobals(t, globals, site("X-Config two"))
	if resp, _ := httpDo(t, "GET", "/media/demo/v0/index.m3u8", nil); resp.Header.Get("X-Config") != "two" {
		t.Fatalf("the reload did not take: X-Config %q", resp.Header.Get("X-Config"))
	}
	waitUntil(t, "the new config's seeder with the discovered stream", func() bool {
		return strings.Contains(getAdmin(t, "/p2p/seeder"), player)
	})
	waitUntil(t, "the new config's seeder in the discovered stream's swarm", func() bool {
		return strings.Contains(getAdmin(t, "/p2p/tracker"), `"info_hash":"`+known+`","info_hash_hex":"`)
	})
	// A new viewer (the first one's socket carried over, with its id).
	if m := announceOn(t, dialTracker(t, "/announce"), known, "-PM0203-manifesttst2"); m["failure reason"] != nil {
		t.Fatalf("announce after the reload: %v", m)
	}
}
