package caddymodule

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func init() {
	caddy.RegisterModule(&ManifestHandler{})
	httpcaddyfile.RegisterHandlerDirective("p2p_manifest", parseManifestCaddyfile)
	// Inside encode, so it sees identity bodies and encode compresses the
	// result (caddy-notes §3.1).
	httpcaddyfile.RegisterDirectiveOrder("p2p_manifest", httpcaddyfile.After, "encode")
}

// Defaults of ManifestHandler.
const (
	DefaultManifestMaxSize   = 8 << 20
	DefaultStreamIdleTimeout = 10 * time.Minute
	DefaultSeederWait        = 2 * time.Second
	manifestCacheEntries     = 256
	etagSuffix               = "-p2p"
	// maxDiscoveredStreams caps the streams p2p_manifest handlers
	// register with the seeder, all handlers together. Their URLs come
	// from requests, and each costs the seeder a goroutine, its swarms
	// and, when live, playlist reloads.
	maxDiscoveredStreams = 256
	// maxPlaylistsPerStream caps the media playlists remembered per
	// discovered stream, whose requests keep it alive.
	maxPlaylistsPerStream = 64
	// maxRejectedManifests bounds the memory of manifest versions that
	// did not parse, which keeps them from being parsed per request.
	maxRejectedManifests = 1024
)

// ManifestHandler sits in front of whatever serves HLS playlists and DASH
// MPDs (file_server, reverse_proxy to a CDN or packager). It recognises
// manifests by content type and extension, rewrites them as configured,
// and registers every multivariant playlist and MPD it serves with the p2p
// app, so the seeder joins the swarms players will announce; requests for
// the manifest, its media playlists and its segments keep the stream
// there. Every other response streams through untouched.
type ManifestHandler struct {
	// Discover registers served manifests with the p2p app. Default: true.
	Discover *bool `json:"discover,omitempty"`
	// MaxSize caps a manifest that is buffered; larger ones pass through
	// unchanged. Default: 8 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// StreamIdleTimeout drops a discovered stream from the seeder when
	// neither its manifest nor its media playlists nor its segments were
	// requested for this long. Default: 10m.
	StreamIdleTimeout caddy.Duration `json:"stream_idle_timeout,omitempty"`
	// SeederWait is how long the first request for a new manifest waits
	// for the seeder to join its swarms, so that a private tracker knows
	// them before the player announces. Default: 2s.
	SeederWait caddy.Duration `json:"seeder_wait,omitempty"`
	// LiveMaxAge is the Cache-Control max-age of live HLS media playlists,
	// unless upstream's Cache-Control is private, no-store, no-cache or
	// has a shorter max-age. Default: half the target duration.
	LiveMaxAge caddy.Duration `json:"live_max_age,omitempty"`
	// Rewrite holds the URI rewrites.
	Rewrite ManifestRewrite `json:"rewrite,omitempty"`

	log     *zap.Logger
	app     *App
	cache   *rewriteCache
	streams *streamTracker
}

// CaddyModule returns the Caddy module information.
func (*ManifestHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.p2p_manifest", New: func() caddy.Module { return new(ManifestHandler) }}
}

// Provision finds the p2p app (optional) and prepares the caches.
func (h *ManifestHandler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if h.MaxSize <= 0 {
		h.MaxSize = DefaultManifestMaxSize
	}
	if h.StreamIdleTimeout <= 0 {
		h.StreamIdleTimeout = caddy.Duration(DefaultStreamIdleTimeout)
	}
	if h.SeederWait <= 0 {
		h.SeederWait = caddy.Duration(DefaultSeederWait)
	}
	if err := h.Rewrite.provision(); err != nil {
		return err
	}
	if h.Discover == nil || *h.Discover {
		v, err := ctx.AppIfConfigured("p2p")
		if err == nil {
			h.app = v.(*App)
		} else {
			h.log.Warn("p2p_manifest: no p2p app configured; manifests are not seeded")
		}
	}
	h.cache = newRewriteCache(manifestCacheEntries)
	if h.app != nil {
		h.streams = h.app.streamTracker(time.Duration(h.StreamIdleTimeout))
	}
	return nil
}

// manifestKind tells HLS from DASH.
type manifestKind int

const (
	notManifest manifestKind = iota
	kindHLS
	kindDASH
)

// kindByPath classifies a request path by its extension.
func kindByPath(p string) manifestKind {
	switch strings.ToLower(path.Ext(p)) {
	case ".m3u8", ".m3u":
		return kindHLS
	case ".mpd":
		return kindDASH
	}
	return notManifest
}

// kindByType classifies a response by its media type.
func kindByType(contentType string) manifestKind {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch strings.ToLower(mt) {
	case "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl":
		return kindHLS
	case "application/dash+xml":
		return kindDASH
	}
	return notManifest
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *ManifestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return next.ServeHTTP(w, r)
	}
	byPath := kindByPath(r.URL.Path)
	ourValidator := strings.Contains(r.Header.Get("If-None-Match"), etagSuffix+`"`)
	up := r
	// saved holds the response headers earlier handlers set, for a
	// request that may have to be asked again (manifestWriter.retry).
	var saved http.Header
	if byPath != notManifest {
		up = wholeManifestRequest(r)
	} else {
		// Only the response tells whether this is a manifest. A HEAD
		// has no body to process and a Range request may get part of
		// one: if the answer is a manifest, it is asked again as a
		// known one would be. The upstream request is a copy, because
		// handlers after this one (handle_path) change it in place.
		retryable := r.Method == http.MethodHead || r.Header.Get("Range") != ""
		ae, narrow := decodableEncoding(r.Header.Values("Accept-Encoding"))
		if retryable || narrow || ourValidator {
			up = r.Clone(r.Context())
			if narrow {
				// A manifest in br or zstd could be neither rewritten
				// nor registered; gzip is decoded.
				up.Header.Set("Accept-Encoding", ae)
			}
			if ourValidator {
				stripOurValidator(up.Header)
			}
		}
		if retryable {
			saved = w.Header().Clone()
		}
	}
	bw := h.newManifestWriter(w, r, up, byPath, ourValidator)
	bw.retryable = saved != nil
	if err := next.ServeHTTP(bw, up); err != nil {
		return err
	}
	if bw.retry {
		// Start again from the headers as they were before the
		// first answer.
		hdr := w.Header()
		clear(hdr)
		maps.Copy(hdr, saved)
		up = wholeManifestRequest(r)
		bw = h.newManifestWriter(w, r, up, byPath, ourValidator)
		if err := next.ServeHTTP(bw, up); err != nil {
			return err
		}
	}
	if !bw.buffering || bw.overflow {
		// Streamed through: not a manifest, one over max_size, or a
		// 304 for one.
		h.countHTTP(r, bw)
		if bw.status == http.StatusNotModified || bw.overflow {
			h.manifestRequested(r, bw)
		}
		return nil
	}
	return h.serveManifest(w, r, bw)
}

// newManifestWriter wraps w for one pass of the request r, sent upstream
// as up.
func (h *ManifestHandler) newManifestWriter(w http.ResponseWriter, r, up *http.Request, byPath manifestKind, ourValidator bool) *manifestWriter {
	bw := newManifestWriter(w, byPath, h.MaxSize)
	bw.req = r
	bw.headOnly = up.Method == http.MethodHead
	bw.lookup = h.cache.get
	// A rewritten manifest gets its own validator; the 304 path must agree.
	bw.suffixETag = h.Rewrite.active()
	bw.ourValidator = ourValidator
	return bw
}

// wholeManifestRequest is the upstream request for a manifest, which is
// rewritten whole: by GET, all of it, uncompressed, and with our ETag
// suffix removed so that upstream can still answer 304.
func wholeManifestRequest(r *http.Request) *http.Request {
	up := r.Clone(r.Context())
	up.Method = http.MethodGet
	// A GET without a body: a first attempt has read r's already.
	up.Body, up.ContentLength = http.NoBody, 0
	up.Header.Del("Content-Length")
	up.Header.Del("Transfer-Encoding")
	up.Header.Del("Range")
	up.Header.Del("If-Range")
	up.Header.Set("Accept-Encoding", "identity")
	stripOurValidator(up.Header)
	return up
}

// stripOurValidator removes the ETag suffix of rewritten manifests from
// If-None-Match, so that upstream compares its own ETags.
func stripOurValidator(hdr http.Header) {
	if inm := hdr.Get("If-None-Match"); inm != "" {
		hdr.Set("If-None-Match", strings.ReplaceAll(inm, etagSuffix+`"`, `"`))
	}
}

// decodableEncoding narrows an Accept-Encoding to the codings a manifest
// can be processed in: "gzip" if the client accepts it, else "identity".
// narrow is false when the header names no other coding (or is absent, or
// forbids both), and should be left as it is.
func decodableEncoding(values []string) (ae string, narrow bool) {
	gzipQ, starQ, identityQ := -1.0, -1.0, -1.0
	other := false
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			q := 1.0
			if name, val, ok := strings.Cut(params, "="); ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					q = f
				}
			}
			switch coding {
			case "":
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "identity":
				identityQ = q
			case "*":
				starQ = q
				other = other || q > 0
			default:
				other = other || q > 0
			}
		}
	}
	switch {
	case !other:
		return "", false
	case gzipQ > 0 || (gzipQ < 0 && starQ > 0):
		return "gzip", true
	case identityQ != 0 && (identityQ > 0 || starQ != 0):
		return "identity", true
	}
	return "", false
}

// countHTTP adds a segment response to its stream's HTTP traffic, unless
// the seeder itself fetched it, and keeps a discovered stream alive.
func (h *ManifestHandler) countHTTP(r *http.Request, bw *manifestWriter) {
	if h.app == nil || bw.written == 0 || (bw.status != http.StatusOK && bw.status != http.StatusPartialContent) ||
		fromSeeder(r) {
		return
	}
	s := h.app.Seeder()
	if s == nil {
		return
	}
	if stream, ok := streamOf(s, bw.url()); ok {
		h.app.offload.addHTTP(stream, bw.written)
		if h.streams != nil {
			h.streams.refresh(stream, time.Now())
		}
	}
}

// fromSeeder reports a request of the seeder's HTTP source, which neither
// counts as viewer traffic nor keeps a stream alive: the seeder reloads
// the playlists of every stream it seeds.
func fromSeeder(r *http.Request) bool {
	return r.Header.Get("User-Agent") == seeder.UserAgent
}

// manifestRequested keeps alive the discovered stream a manifest request
// belongs to: its own manifest or one of its media playlists.
func (h *ManifestHandler) manifestRequested(r *http.Request, bw *manifestWriter) {
	if h.streams == nil || fromSeeder(r) {
		return
	}
	if key, ok := streamKey(bw.url()); ok {
		h.streams.refresh(key, time.Now())
	}
}

// serveManifest rewrites and registers a buffered manifest and writes it.
func (h *ManifestHandler) serveManifest(w http.ResponseWriter, r *http.Request, bw *manifestWriter) error {
	hdr := w.Header()
	playerURL := bw.url()
	var res rewriteResult
	// key names the source version, as the rewrite cache does.
	key := bw.cacheKey
	if bw.cached != nil {
		// Found by its validators when the head arrived; the body
		// was discarded unread.
		res = *bw.cached
	} else {
		body := bw.buf.Bytes()
		switch strings.ToLower(hdr.Get("Content-Encoding")) {
		case "", "identity":
		case "gzip":
			plain, err := gunzipLimited(body, h.MaxSize)
			if err != nil {
				h.log.Warn("p2p_manifest: undecodable gzip manifest passed through", zap.String("uri", r.RequestURI), zap.Error(err))
				return bw.flushBuffered(r)
			}
			body = plain
			hdr.Del("Content-Encoding")
		default:
			h.log.Warn("p2p_manifest: manifest with an unknown content encoding passed through", zap.String("uri", r.RequestURI), zap.String("encoding", hdr.Get("Content-Encoding")))
			return bw.flushBuffered(r)
		}
		kind := bw.kind
		if kind == notManifest {
			kind = bw.pathKind
		}
		key = rewriteKey(playerURL, hdr, body)
		var ok bool
		res, ok = h.cache.get(key)
		if !ok {
			// The buffer is reused by nobody, but the result is
			// cached: keep its own copy of an unchanged body.
			res = h.process(kind, playerURL, bytes.Clone(body))
			h.cache.put(key, res)
			// Logged once per source version, not per request.
			if res.warning != "" {
				h.log.Warn("p2p_manifest: "+res.warning, zap.String("uri", r.RequestURI))
			}
		}
	}
	if h.streams != nil && !fromSeeder(r) {
		if streamURL, ok := streamKey(playerURL); ok {
			if res.master {
				// The rest of the key is the version, whatever the query.
				h.discover(r, streamURL, strings.TrimPrefix(key, playerURL), res.body)
			} else {
				h.streams.refresh(streamURL, time.Now())
			}
		}
	}
	out := res.body
	if bw.suffixETag {
		if et := hdr.Get("ETag"); et != "" {
			hdr.Set("ETag", withETagSuffix(et))
		}
	}
	if res.liveMaxAge > 0 {
		age := res.liveMaxAge
		if h.LiveMaxAge > 0 {
			age = time.Duration(h.LiveMaxAge)
		}
		if cc, ok := liveCacheControl(hdr.Values("Cache-Control"), max(1, int(age/time.Second))); ok {
			hdr.Set("Cache-Control", cc)
		}
	}
	hdr.Del("Accept-Ranges")
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(bw.status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(out)
	return err
}

// liveCacheControl returns the Cache-Control of a live media playlist:
// upstream's, with max-age set to maxAge seconds. ok is false when
// upstream's must stay: it keeps the playlist out of caches (private,
// no-store, no-cache) or already has a max-age no longer than maxAge.
func liveCacheControl(upstream []string, maxAge int) (cc string, ok bool) {
	var directives []string
	set := false
	for _, line := range upstream {
		for d := range strings.SplitSeq(line, ",") {
			d = strings.TrimSpace(d)
			name, val, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "":
				continue
			case "private", "no-store", "no-cache":
				return "", false
			case "max-age":
				if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`)); err == nil && n <= maxAge {
					return "", false
				}
				if !set {
					directives = append(directives, "max-age="+strconv.Itoa(maxAge))
					set = true
				}
				continue
			}
			directives = append(directives, d)
		}
	}
	if !set {
		directives = append(directives, "max-age="+strconv.Itoa(maxAge))
	}
	return strings.Join(directives, ", "), true
}

// playerOrigin returns the scheme and host the player used: those of the
// connection or, through a trusted proxy, the forwarded ones (forwarded
// reports that the host is X-Forwarded-Host).
func playerOrigin(r *http.Request) (scheme, host string, forwarded bool) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host = r.Host
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = strings.TrimSpace(strings.Split(fh, ",")[0])
			forwarded = true
		}
	}
	return scheme, host, forwarded
}

// requestURL is the manifest URL as the player sees it: the scheme and
// host it used (see playerOrigin) and the original request URI.
func requestURL(r *http.Request) string {
	scheme, host, _ := playerOrigin(r)
	// The URI before handle_path or rewrite changed it: what the player
	// requested.
	uri := r.URL.RequestURI()
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		uri = or.URL.RequestURI()
	}
	return scheme + "://" + host + uri
}

// streamKey returns the URL a stream is registered and looked up under:
// rawURL without its query, with the host in lower case and without a
// default port, as a browser writes it, so that the swarms are those
// players compute and query parameters (tokens, CMCD) or spellings of the
// Host header do not make new streams. ok is false for a URL a browser
// would not send: not http(s), or a path with dot segments, empty
// segments or needless escapes, which a file server may map to the same
// file under endless names.
func streamKey(rawURL string) (key string, ok bool) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	p := u.EscapedPath()
	if !canonicalPath(p) {
		return "", false
	}
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return u.Scheme + "://" + host + p, true
}

// canonicalPath reports whether an escaped URL path is in the form a
// browser sends: rooted, clean, and escaping only what needs it, in upper
// case hex.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' || path.Clean(p) != p {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+2 >= len(p) {
			return false
		}
		hi, lo := upperHex(p[i+1]), upperHex(p[i+2])
		if hi < 0 || lo < 0 {
			return false
		}
		if c := byte(hi<<4 | lo); c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			return false
		}
		i += 2
	}
	return true
}

// upperHex returns the value of an upper case hex digit, or -1.
func upperHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// hostConfigured reports whether the Host of r is one a site of its server
// is configured for: matched by a host matcher of one of the server's
// routes. A server without host matchers (a site such as :8080) takes any
// Host, and so does a request outside a Caddy server (tests).
func hostConfigured(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return true
	}
	if _, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); !ok {
		// The host matcher needs the replacer.
		return true
	}
	sites := false
	for _, route := range srv.Routes {
		for _, set := range route.MatcherSets {
			for _, m := range set {
				var hosts caddyhttp.MatchHost
				switch m := m.(type) {
				case caddyhttp.MatchHost:
					hosts = m
				case *caddyhttp.MatchHost:
					hosts = *m
				default:
					continue
				}
				sites = true
				if hosts.Match(r) {
					return true
				}
			}
		}
	}
	return !sites
}

// discover registers the presentation served at streamURL with the
// seeder the first time it is seen, waiting up to seeder_wait for the
// seeder to join its swarms, and keeps it while it is requested. body is
// the manifest as served and version names it (see rewriteKey).
func (h *ManifestHandler) discover(r *http.Request, streamURL, version string, body []byte) {
	t := h.streams
	known, current := t.refreshManifest(streamURL, version, time.Now())
	if current {
		return
	}
	s := h.app.Seeder()
	if s == nil {
		// Nothing is recorded: the next request tries again.
		return
	}
	if known && !s.HasStream(streamURL) {
		// Discovered through an older config's handler while this
		// config was starting.
		h.app.syncRuntimeStreams()
	}
	if t.isRejected(streamURL, version) {
		return
	}
	if !known {
		if _, _, forwarded := playerOrigin(r); !forwarded && !hostConfigured(r) {
			// A Host no site is configured for, sent to a
			// catch-all route: not a URL players were given.
			return
		}
		if seededElsewhere(s, streamURL) || !t.hasRoom(streamURL, h.log) {
			return
		}
	}
	playlists, err := presentationPlaylists(streamURL, body)
	if err != nil {
		// An HTML page served for a missing .m3u8, or a manifest the
		// seeder could not load either.
		t.reject(streamURL, version)
		if !known {
			h.log.Debug("p2p_manifest: manifest not registered", zap.String("url", streamURL), zap.Error(err))
		}
		return
	}
	if known {
		t.setPlaylists(streamURL, version, playlists)
		return
	}
	t.add(r.Context(), s, streamURL, version, playlists, time.Duration(h.SeederWait), h.log)
}

// seededElsewhere reports whether the seeder has the stream at streamURL
// from the app's configuration or another handler, perhaps under a URL
// with a query: such a stream is not this handler's to drop, and a second
// copy would only duplicate its swarms.
func seededElsewhere(s *seeder.Seeder, streamURL string) bool {
	if s.HasStream(streamURL) {
		return true
	}
	for _, u := range s.Streams() {
		if p2p.BaseSwarmID(u) == streamURL {
			return true
		}
	}
	return false
}

// presentationPlaylists parses a multivariant playlist or an MPD served
// at manifestURL and returns the stream keys of its media playlists (none
// for DASH). It fails for a body the manifest package, and so the seeder,
// cannot read, or one with no stream.
func presentationPlaylists(manifestURL string, body []byte) (playlists []string, err error) {
	defer func() {
		// The parsers are fed upstream bytes and use third-party
		// code: a panic is a failed parse, not a crash.
		if p := recover(); p != nil {
			playlists, err = nil, fmt.Errorf("the manifest parser panicked: %v", p)
		}
	}()
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), " \t\r\n")
	var p *manifest.Presentation
	switch {
	case bytes.HasPrefix(trimmed, []byte("#EXTM3U")):
		p, err = manifest.ParseHLS(manifestURL, body, nil)
	case bytes.HasPrefix(trimmed, []byte("<")):
		p, err = manifest.ParseDASH(manifestURL, body, nil)
	default:
		return nil, errors.New("neither a playlist nor an MPD")
	}
	if err != nil {
		return nil, err
	}
	if len(p.Streams) == 0 {
		return nil, errors.New("no stream to seed")
	}
	for _, st := range p.Streams {
		if len(playlists) == maxPlaylistsPerStream {
			break
		}
		if key, ok := streamKey(st.URL); ok && key != manifestURL {
			playlists = append(playlists, key)
		}
	}
	return playlists, nil
}

// withETagSuffix marks an ETag as belonging to the rewritten body.
func withETagSuffix(et string) string {
	if strings.HasSuffix(et, etagSuffix+`"`) || !strings.HasSuffix(et, `"`) {
		return et
	}
	return strings.TrimSuffix(et, `"`) + etagSuffix + `"`
}

// gunzipLimited decompresses at most limit bytes.
func gunzipLimited(b []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("over %d bytes decompressed", limit)
	}
	return out, nil
}

// manifestWriter decides when the response head is written whether to
// buffer it (a 200 manifest under the size cap) or to pass it through,
// and keeps the buffer under the cap: a body that outgrows it is flushed
// and the rest streams through.
type manifestWriter struct {
	*caddyhttp.ResponseWriterWrapper
	pathKind  manifestKind
	kind      manifestKind
	limit     int64
	status    int
	wrote     bool
	buffering bool
	overflow  bool
	// suffixETag marks validators of manifests p2p_manifest rewrites.
	suffixETag bool
	// ourValidator reports that the client's If-None-Match carries
	// that suffix: a 304 answers for a rewritten manifest.
	ourValidator bool
	// written counts body bytes passed through.
	written int64
	// req is the client's request; url derives the player's URL from it
	// once, only for the responses that need it.
	req       *http.Request
	playerURL string
	// headOnly is set when upstream was asked by HEAD: there is no body
	// to process.
	headOnly bool
	// retryable allows retry: a manifest that arrives as a head only or
	// in part is discarded, for ServeHTTP to ask for all of it.
	retryable bool
	retry     bool
	// lookup finds a processed manifest by its key; when the head
	// already identifies a cached version, cached is set (and cacheKey
	// to its key) and the body is discarded unread.
	lookup   func(key string) (rewriteResult, bool)
	cached   *rewriteResult
	cacheKey string
	discard  bool
	buf      bytes.Buffer
}

func newManifestWriter(w http.ResponseWriter, pathKind manifestKind, limit int64) *manifestWriter {
	return &manifestWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, pathKind: pathKind, limit: limit}
}

// url returns the URL the player requested (see requestURL).
func (m *manifestWriter) url() string {
	if m.playerURL == "" {
		m.playerURL = requestURL(m.req)
	}
	return m.playerURL
}

// WriteHeader implements http.ResponseWriter.
func (m *manifestWriter) WriteHeader(status int) {
	if m.wrote {
		return
	}
	if status < 200 {
		// 1xx responses pass straight through.
		m.ResponseWriter.WriteHeader(status)
		return
	}
	m.wrote = true
	m.status = status
	hdr := m.Header()
	m.kind = kindByType(hdr.Get("Content-Type"))
	isManifest := m.kind != notManifest || (m.pathKind != notManifest && !isMediaType(hdr.Get("Content-Type")))
	if status == http.StatusNotModified && m.suffixETag && (m.pathKind != notManifest || m.ourValidator) {
		// The validator of a rewritten manifest carries our suffix.
		if et := hdr.Get("ETag"); et != "" {
			hdr.Set("ETag", withETagSuffix(et))
		}
	}
	if status == http.StatusOK && isManifest {
		cl, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
		if err != nil || cl <= m.limit {
			if err == nil && m.lookup != nil && headKeyable(hdr) {
				key := rewriteKeyFromHead(m.url(), hdr.Get("ETag"), cl)
				if res, ok := m.lookup(key); ok {
					m.buffering = true
					m.cached, m.cacheKey, m.discard = &res, key, true
					return
				}
			}
			if m.headOnly {
				// Upstream answered a HEAD: there is no body to
				// process, and the rewrite may change its length.
				if m.retryable {
					m.retry, m.discard = true, true
					return
				}
				m.ResponseWriter.WriteHeader(status)
				return
			}
			m.buffering = true
			if err == nil && cl > 0 {
				m.buf.Grow(int(cl))
			}
			return
		}
	}
	if status == http.StatusPartialContent && m.retryable && m.kind != notManifest {
		if total := contentRangeTotal(hdr.Get("Content-Range")); total >= 0 && total <= m.limit {
			// Part of a manifest that would be rewritten whole.
			m.retry, m.discard = true, true
			return
		}
	}
	m.ResponseWriter.WriteHeader(status)
}

// contentRangeTotal returns the complete length in a Content-Range header
// ("bytes 0-9/1234"), or -1 when it is missing or unknown.
func contentRangeTotal(cr string) int64 {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// isMediaType reports a content type that is clearly not a manifest
// (a segment served under a manifest-like name).
func isMediaType(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return strings.HasPrefix(mt, "video/") || strings.HasPrefix(mt, "audio/mp4") || strings.HasPrefix(mt, "image/")
}

// Write implements http.ResponseWriter.
func (m *manifestWriter) Write(p []byte) (int, error) {
	if !m.wrote {
		m.WriteHeader(http.StatusOK)
	}
	if m.discard {
		return len(p), nil
	}
	if !m.buffering || m.overflow {
		n, err := m.ResponseWriter.Write(p)
		m.written += int64(n)
		return n, err
	}
	if int64(m.buf.Len()+len(p)) > m.limit {
		// Too big after all: send what we have and stream the rest.
		m.overflow = true
		m.Header().Del("Content-Length")
		m.ResponseWriter.WriteHeader(m.status)
		if _, err := m.ResponseWriter.Write(m.buf.Bytes()); err != nil {
			return 0, err
		}
		m.buf.Reset()
		return m.ResponseWriter.Write(p)
	}
	return m.buf.Write(p)
}

// ReadFrom keeps file_server's io.Copy from bypassing the buffer: the
// wrapper's own ReadFrom would copy straight to the client.
func (m *manifestWriter) ReadFrom(r io.Reader) (int64, error) {
	if m.discard {
		return io.Copy(io.Discard, r)
	}
	if m.buffering && !m.overflow {
		// Straight into the pre-sized buffer, without a copy buffer.
		n, err := m.buf.ReadFrom(io.LimitReader(r, m.limit-int64(m.buf.Len())+1))
		if err != nil || int64(m.buf.Len()) <= m.limit {
			return n, err
		}
		// Over the cap: hand the excess to Write's overflow path.
		extra := m.buf.Bytes()[m.limit:]
		tail := bytes.Clone(extra)
		m.buf.Truncate(int(m.limit))
		if _, err := m.Write(tail); err != nil {
			return n, err
		}
		k, err := io.Copy(writerOnly{m}, r)
		return n + k, err
	}
	return io.Copy(writerOnly{m}, r)
}

// FlushError keeps reverse_proxy's flushes (http.ResponseController finds
// this method before unwrapping) from sending the head of a manifest that
// is still being buffered, or of an answer that is discarded.
func (m *manifestWriter) FlushError() error {
	if m.discard || (m.buffering && !m.overflow) {
		return nil
	}
	if !m.wrote {
		m.WriteHeader(http.StatusOK)
		if m.buffering || m.discard {
			return nil
		}
	}
	return http.NewResponseController(m.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (m *manifestWriter) Flush() { _ = m.FlushError() }

// writerOnly hides every method but Write.
type writerOnly struct{ io.Writer }

// flushBuffered writes a buffered response unchanged.
func (m *manifestWriter) flushBuffered(r *http.Request) error {
	m.ResponseWriter.WriteHeader(m.status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := m.ResponseWriter.Write(m.buf.Bytes())
	return err
}

// parseManifestCaddyfile parses the p2p_manifest directive.
func parseManifestCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ManifestHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler:
//
//	p2p_manifest [<matcher>] {
//	    discover on|off
//	    max_size <size>
//	    stream_idle_timeout <duration>
//	    seeder_wait <duration>
//	    live_max_age <duration>
//	    base_url <url>
//	    uri_form absolute|relative
//	    strip_query <name|/regexp/>...
//	    pin_variants
//	}
func (h *ManifestHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "discover":
			var v string
			if !d.AllArgs(&v) || (v != "on" && v != "off") {
				return d.Errf("discover: want on or off")
			}
			b := v == "on"
			h.Discover = &b
		case "max_size":
			n, err := parseSize(d)
			if err != nil {
				return err
			}
			h.MaxSize = n
		case "stream_idle_timeout", "seeder_wait", "live_max_age":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			switch opt {
			case "stream_idle_timeout":
				h.StreamIdleTimeout = caddy.Duration(dur)
			case "seeder_wait":
				h.SeederWait = caddy.Duration(dur)
			default:
				h.LiveMaxAge = caddy.Duration(dur)
			}
		case "base_url":
			if !d.AllArgs(&h.Rewrite.BaseURL) {
				return d.ArgErr()
			}
		case "uri_form":
			if !d.AllArgs(&h.Rewrite.URIForm) {
				return d.ArgErr()
			}
		case "pin_variants":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Rewrite.PinVariants = true
		case "strip_query":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Rewrite.StripQuery = append(h.Rewrite.StripQuery, args...)
		default:
			return d.Errf("unknown p2p_manifest option %q", opt)
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*ManifestHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ManifestHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ManifestHandler)(nil)
)
