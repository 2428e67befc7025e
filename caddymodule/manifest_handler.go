package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
)

// ManifestHandler sits in front of whatever serves HLS playlists and DASH
// MPDs (file_server, reverse_proxy to a CDN or packager). It recognises
// manifests by content type and extension, rewrites them as configured,
// and registers every multivariant playlist and MPD it serves with the p2p
// app, so the seeder joins the swarms players will announce. Every other
// response streams through untouched.
type ManifestHandler struct {
	// Discover registers served manifests with the p2p app. Default: true.
	Discover *bool `json:"discover,omitempty"`
	// MaxSize caps a manifest that is buffered; larger ones pass through
	// unchanged. Default: 8 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// StreamIdleTimeout drops a discovered stream from the seeder when its
	// manifest has not been requested for this long. Default: 10m.
	StreamIdleTimeout caddy.Duration `json:"stream_idle_timeout,omitempty"`
	// SeederWait is how long the first request for a new manifest waits
	// for the seeder to join its swarms, so that a private tracker knows
	// them before the player announces. Default: 2s.
	SeederWait caddy.Duration `json:"seeder_wait,omitempty"`
	// LiveMaxAge is the Cache-Control max-age of live HLS media playlists.
	// Default: half the target duration.
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
	up := r
	if byPath != notManifest {
		// A manifest is rewritten whole: ask upstream for all of it,
		// uncompressed, and with our ETag suffix removed so that it
		// can still answer 304.
		up = r.Clone(r.Context())
		up.Method = http.MethodGet
		up.Header.Del("Range")
		up.Header.Del("If-Range")
		up.Header.Set("Accept-Encoding", "identity")
		if inm := up.Header.Get("If-None-Match"); inm != "" {
			up.Header.Set("If-None-Match", strings.ReplaceAll(inm, etagSuffix+`"`, `"`))
		}
	}
	bw := newManifestWriter(w, byPath, h.MaxSize)
	bw.req = r
	bw.lookup = h.cache.get
	// A rewritten manifest gets its own validator; the 304 path must agree.
	bw.suffixETag = h.Rewrite.active()
	if err := next.ServeHTTP(bw, up); err != nil {
		return err
	}
	if !bw.buffering || bw.overflow {
		// Streamed through: not a manifest, or one over max_size.
		h.countHTTP(r, bw)
		return nil
	}
	return h.serveManifest(w, r, bw)
}

// countHTTP adds a segment response to its stream's HTTP traffic, unless
// the seeder itself fetched it.
func (h *ManifestHandler) countHTTP(r *http.Request, bw *manifestWriter) {
	if h.app == nil || bw.written == 0 || (bw.status != http.StatusOK && bw.status != http.StatusPartialContent) ||
		r.Header.Get("User-Agent") == seeder.UserAgent {
		return
	}
	s := h.app.Seeder()
	if s == nil {
		return
	}
	if stream, ok := streamOf(s, bw.url()); ok {
		h.app.offload.addHTTP(stream, bw.written)
	}
}

// serveManifest rewrites and registers a buffered manifest and writes it.
func (h *ManifestHandler) serveManifest(w http.ResponseWriter, r *http.Request, bw *manifestWriter) error {
	hdr := w.Header()
	playerURL := bw.url()
	var res rewriteResult
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
		key := rewriteKey(playerURL, hdr, body)
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
	if res.master && h.streams != nil {
		h.streams.touch(r.Context(), playerURL, time.Duration(h.SeederWait), h.log)
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
		hdr.Set("Cache-Control", "max-age="+strconv.Itoa(max(1, int(age/time.Second))))
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

// requestURL is the manifest URL as the player sees it: the scheme and
// host it used (through a trusted proxy, the forwarded ones) and the
// original request URI.
func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = strings.TrimSpace(strings.Split(fh, ",")[0])
		}
	}
	// The URI before handle_path or rewrite changed it: what the player
	// requested.
	uri := r.URL.RequestURI()
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		uri = or.URL.RequestURI()
	}
	return scheme + "://" + host + uri
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
	// written counts body bytes passed through.
	written int64
	// req is the client's request; url derives the player's URL from it
	// once, only for the responses that need it.
	req       *http.Request
	playerURL string
	// lookup finds a processed manifest by its key; when the head
	// already identifies a cached version, cached is set and the body
	// is discarded unread.
	lookup  func(key string) (rewriteResult, bool)
	cached  *rewriteResult
	discard bool
	buf     bytes.Buffer
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
	if status == http.StatusNotModified && m.pathKind != notManifest && m.suffixETag {
		// The validator of a rewritten manifest carries our suffix.
		if et := hdr.Get("ETag"); et != "" {
			hdr.Set("ETag", withETagSuffix(et))
		}
	}
	if status == http.StatusOK && isManifest {
		cl, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
		if err != nil || cl <= m.limit {
			m.buffering = true
			if err == nil && m.lookup != nil && headKeyable(hdr) {
				if res, ok := m.lookup(rewriteKeyFromHead(m.url(), hdr.Get("ETag"), cl)); ok {
					m.cached, m.discard = &res, true
					return
				}
			}
			if err == nil && cl > 0 {
				m.buf.Grow(int(cl))
			}
			return
		}
	}
	m.ResponseWriter.WriteHeader(status)
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
// is still being buffered.
func (m *manifestWriter) FlushError() error {
	if m.buffering && !m.overflow {
		return nil
	}
	if !m.wrote {
		m.WriteHeader(http.StatusOK)
		if m.buffering {
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

// streamTracker registers discovered streams with the seeder and drops
// those whose manifest nobody requested for the idle timeout.
type streamTracker struct {
	app  *App
	idle time.Duration

	mu       sync.Mutex
	lastSeen map[string]time.Time
}

// touch records a request for a stream's manifest, registering the stream
// with the seeder the first time and waiting up to wait for it to join.
func (t *streamTracker) touch(ctx context.Context, url string, wait time.Duration, log *zap.Logger) {
	t.mu.Lock()
	_, known := t.lastSeen[url]
	t.lastSeen[url] = time.Now()
	t.mu.Unlock()
	if known {
		return
	}
	s := t.app.Seeder()
	if s == nil {
		return
	}
	added, err := s.AddStream(seeder.StreamConfig{URL: url})
	if err != nil {
		log.Warn("p2p_manifest: registering stream", zap.String("url", url), zap.Error(err))
		return
	}
	if added {
		log.Info("p2p_manifest: stream discovered", zap.String("url", url))
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_ = s.WaitStream(wctx, url)
}

// sweep drops idle streams; the app calls it periodically.
func (t *streamTracker) sweep(now time.Time) {
	var drop []string
	t.mu.Lock()
	for u, seen := range t.lastSeen {
		if now.Sub(seen) > t.idle {
			drop = append(drop, u)
			delete(t.lastSeen, u)
		}
	}
	t.mu.Unlock()
	s := t.app.Seeder()
	if s == nil {
		return
	}
	for _, u := range drop {
		s.RemoveStream(u)
	}
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
