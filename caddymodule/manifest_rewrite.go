package caddymodule

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// ManifestRewrite says how p2p_manifest rewrites the URIs in manifests. The
// zero value rewrites nothing.
//
// A rewrite edits the manifest text in place: only URIs change, and every
// other byte (tags and elements it does not know, comments, attribute
// order, line endings, namespace declarations, formatting) is served as
// upstream wrote it.
//
// In an HLS playlist it rewrites the URI lines (segments, variants) and
// the URI attributes of EXT-X-MAP, EXT-X-MEDIA, EXT-X-I-FRAME-STREAM-INF,
// EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT and
// EXT-X-SESSION-DATA. Key URIs (EXT-X-KEY, EXT-X-SESSION-KEY) and the
// SERVER-URI of EXT-X-CONTENT-STEERING name services, not media: a CDN
// named by base_url does not serve keys (and must not cache them for
// everyone), so these only lose the strip_query parameters and keep their
// host and form. EXT-X-DATERANGE is left alone: the URIs of interstitials
// belong to an ad server.
//
// In a DASH MPD it rewrites every BaseURL, SegmentTemplate @media and
// @initialization (as text, so $...$ identifiers stay), SegmentURL @media
// and @index, and Initialization and RepresentationIndex @sourceURL.
// BaseURLs of the MPD element resolve against the manifest and get
// uri_form. URIs below them resolve against the BaseURL above, which has
// already moved: a relative one keeps its text minus the strip_query
// parameters, and one with a scheme, a host or a path from the root is
// moved to base_url in the form it was written in. When base_url or
// uri_form absolute is set and the MPD has no BaseURL of its own, one
// naming the manifest's directory is added after the MPD start tag.
//
// URIs with a scheme other than http and https (data:, skd:) are never
// changed. A rewrite is served only if it passes sameShape.
type ManifestRewrite struct {
	// BaseURL moves every URI to another scheme and host, and under
	// its path (a CDN, or back through this server): a URI resolving
	// to http://origin/a/seg.ts becomes <base_url>/a/seg.ts.
	BaseURL string `json:"base_url,omitempty"`
	// URIForm is "absolute" or "relative" (to the manifest); empty keeps
	// each URI's form (relative ones become absolute only when moved to
	// another host).
	URIForm string `json:"uri_form,omitempty"`
	// StripQuery removes query parameters by name, or by a regular
	// expression written between slashes (/^cmcd/), from every URI:
	// session tokens or CMCD that would otherwise vary per viewer.
	StripQuery []string `json:"strip_query,omitempty"`
	// PinVariants keeps each variant's attributes as first seen in a
	// multivariant playlist: the swarm id derives from them, so a live
	// packager restart that changes a bitrate or a codec string would
	// otherwise move every viewer into a new, empty swarm.
	PinVariants bool `json:"pin_variants,omitempty"`

	pins    *variantPins
	base    *url.URL
	names   map[string]bool
	regexps []*regexp.Regexp
}

func (rw *ManifestRewrite) provision() error {
	if rw.BaseURL != "" {
		u, err := url.Parse(rw.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("p2p_manifest: base_url %q is not an absolute http(s) URL", rw.BaseURL)
		}
		rw.base = u
	}
	switch rw.URIForm {
	case "", "absolute", "relative":
	default:
		return fmt.Errorf("p2p_manifest: uri_form %q: want absolute or relative", rw.URIForm)
	}
	if rw.PinVariants {
		rw.pins = &variantPins{byManifest: map[string]map[string]string{}}
	}
	rw.names = map[string]bool{}
	for _, q := range rw.StripQuery {
		if len(q) > 2 && strings.HasPrefix(q, "/") && strings.HasSuffix(q, "/") {
			re, err := regexp.Compile(q[1 : len(q)-1])
			if err != nil {
				return fmt.Errorf("p2p_manifest: strip_query %s: %w", q, err)
			}
			rw.regexps = append(rw.regexps, re)
			continue
		}
		rw.names[q] = true
	}
	return nil
}

func (rw *ManifestRewrite) active() bool {
	return rw.base != nil || rw.URIForm != "" || rw.stripping() || rw.PinVariants
}

// stripping reports whether strip_query names any parameter.
func (rw *ManifestRewrite) stripping() bool {
	return len(rw.names) > 0 || len(rw.regexps) > 0
}

// Bounds on what pin_variants remembers: playlists, variants per
// playlist, and the length of one attribute list (a longer one is served
// but not pinned).
const (
	maxPinnedManifests = 4096
	maxPinnedVariants  = 256
	maxPinnedAttrs     = 4096
)

// variantPins remembers, per multivariant playlist URL (without query),
// the EXT-X-STREAM-INF attribute list each variant URI (without query)
// had when first seen.
type variantPins struct {
	mu         sync.Mutex
	byManifest map[string]map[string]string
}

// pin returns the attribute list to serve for the variant at variantURI
// in the playlist at manifestURL: the first one seen, which attrs becomes
// if the variant is new.
func (vp *variantPins) pin(manifestURL, variantURI, attrs string) string {
	key, _, _ := strings.Cut(manifestURL, "?")
	uri, _, _ := strings.Cut(variantURI, "?")
	vp.mu.Lock()
	defer vp.mu.Unlock()
	pinned := vp.byManifest[key]
	if pinned == nil {
		if len(vp.byManifest) >= maxPinnedManifests {
			return attrs
		}
		pinned = map[string]string{}
		vp.byManifest[key] = pinned
	}
	if first, ok := pinned[uri]; ok {
		return first
	}
	if len(pinned) < maxPinnedVariants && len(attrs) <= maxPinnedAttrs {
		pinned[uri] = attrs
	}
	return attrs
}

// dropParam reports whether strip_query removes the query parameter name.
func (rw *ManifestRewrite) dropParam(name string) bool {
	if rw.names[name] {
		return true
	}
	for _, re := range rw.regexps {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// stripRawQuery removes the strip_query parameters from a raw query. The
// parameters it keeps stay in their order and encoding, so a query with
// nothing to remove comes back unchanged.
func (rw *ManifestRewrite) stripRawQuery(query string) string {
	if query == "" || !rw.stripping() {
		return query
	}
	params := strings.Split(query, "&")
	kept := params[:0]
	for _, kv := range params {
		k, _, _ := strings.Cut(kv, "=")
		if name, err := url.QueryUnescape(k); err == nil && rw.dropParam(name) {
			continue
		}
		kept = append(kept, kv)
	}
	return strings.Join(kept, "&")
}

// stripQuery removes the strip_query parameters from the URI reference
// ref, keeping the rest as written; a query left empty goes with its '?'.
// It works on the text, so that it can edit DASH segment templates, which
// are not URIs until their identifiers are filled in.
func (rw *ManifestRewrite) stripQuery(ref string) string {
	q := strings.IndexByte(ref, '?')
	if q < 0 || !rw.stripping() {
		return ref
	}
	if h := strings.IndexByte(ref, '#'); h >= 0 && h < q {
		return ref // the '?' is in the fragment
	}
	query, fragment := ref[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, fragment = query[:h], query[h:]
	}
	kept := rw.stripRawQuery(query)
	if kept == "" {
		return ref[:q] + fragment
	}
	return ref[:q+1] + kept + fragment
}

// isHTTP reports whether u is an absolute http or https URL, the only
// kind the rewrite moves.
func isHTTP(u *url.URL) bool {
	return (u.Scheme == "http" || u.Scheme == "https") && u.Opaque == "" && u.Host != ""
}

// target is where the rewrite sends the absolute http(s) URL u: to the
// same URL without the strip_query parameters, under base_url if one is
// set.
func (rw *ManifestRewrite) target(u *url.URL) *url.URL {
	t := *u
	if t.RawQuery != "" {
		t.RawQuery = rw.stripRawQuery(t.RawQuery)
	}
	if rw.base != nil {
		// Joined escaped, so that escapes such as %2F survive.
		p := strings.TrimSuffix(rw.base.EscapedPath(), "/") + u.EscapedPath()
		t.Scheme, t.User, t.Host = rw.base.Scheme, rw.base.User, rw.base.Host
		t.Path, t.RawPath = p, p
		if unescaped, err := url.PathUnescape(p); err == nil {
			t.Path = unescaped
		}
	}
	return &t
}

// moved is target for an absolute URL written as a string; other URLs
// come back unchanged.
func (rw *ManifestRewrite) moved(s string) string {
	u, err := url.Parse(s)
	if err != nil || !isHTTP(u) {
		return s
	}
	return rw.target(u).String()
}

// uri rewrites a URI reference found in the manifest at manifestURL so
// that it names target's URL, in the form uri_form asks for.
func (rw *ManifestRewrite) uri(ref string, manifestURL *url.URL) (string, error) {
	if ref == "" {
		return ref, nil
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("parsing URI %q: %w", ref, err)
	}
	abs := manifestURL.ResolveReference(r)
	if !isHTTP(abs) {
		return ref, nil
	}
	if rw.base == nil && rw.URIForm == "" {
		// Nothing moves: the reference keeps its text but for the
		// parameters removed.
		return rw.stripQuery(ref), nil
	}
	t := rw.target(abs)
	sameHost := t.Scheme == manifestURL.Scheme && t.Host == manifestURL.Host
	relative := rw.URIForm == "relative" || (rw.URIForm == "" && !r.IsAbs() && r.Host == "")
	if relative && sameHost {
		return relativeRef(manifestURL, t), nil
	}
	return t.String(), nil
}

// relativeRef writes target relative to the directory of base (same
// scheme and host).
func relativeRef(base, target *url.URL) string {
	from := strings.Split(path.Dir(base.EscapedPath()), "/")
	to := strings.Split(target.EscapedPath(), "/")
	i := 0
	for i < len(from) && i < len(to)-1 && from[i] == to[i] {
		i++
	}
	var parts []string
	for range from[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, to[i:]...)
	// A dir of "/" splits into ["", ""]: drop the empty step it leaves.
	if len(from) == 2 && from[1] == "" {
		parts = to[1:]
	}
	ref := strings.Join(parts, "/")
	// An empty path would name the base itself, and a colon in the
	// first segment would read as a scheme.
	if first, _, _ := strings.Cut(ref, "/"); ref == "" || strings.Contains(first, ":") {
		ref = "./" + ref
	}
	if target.RawQuery != "" || target.ForceQuery {
		ref += "?" + target.RawQuery
	}
	if target.Fragment != "" {
		ref += "#" + target.EscapedFragment()
	}
	return ref
}

// edit replaces body[start:end] with text; start == end inserts it.
type edit struct {
	start, end int
	text       string
}

// splice applies edits, in order and not overlapping, to body. Every byte
// outside them is copied as it is. Without edits it returns body itself.
func splice(body []byte, edits []edit) []byte {
	if len(edits) == 0 {
		return body
	}
	n := len(body)
	for _, e := range edits {
		n += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	pos := 0
	for _, e := range edits {
		out = append(out, body[pos:e.start]...)
		out = append(out, e.text...)
		pos = e.end
	}
	return append(out, body[pos:]...)
}

// rewriteResult is a processed manifest, cached per source version.
type rewriteResult struct {
	body       []byte
	changed    bool
	master     bool // a multivariant playlist or an MPD: a stream to seed
	liveMaxAge time.Duration
	warning    string
}

// process classifies, checks and rewrites one manifest body.
func (h *ManifestHandler) process(kind manifestKind, playerURL string, body []byte) rewriteResult {
	res := rewriteResult{body: body}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case bytes.HasPrefix(trimmed, []byte("#EXTM3U")):
		kind = kindHLS
	case bytes.HasPrefix(trimmed, []byte("<")):
		kind = kindDASH
	default:
		res.warning = "response with a manifest type is neither a playlist nor an MPD; passed through"
		return res
	}
	if kind == kindHLS {
		res.master = bytes.Contains(body, []byte("#EXT-X-STREAM-INF"))
		if !res.master && !bytes.Contains(body, []byte("#EXT-X-ENDLIST")) {
			res.liveMaxAge = hlsTargetDuration(body) / 2
		}
	} else {
		res.master = true
	}
	if !h.Rewrite.active() {
		return res
	}
	mu, err := url.Parse(playerURL)
	if err != nil {
		res.warning = "unparsable request URL; manifest passed through"
		return res
	}
	out, err := h.Rewrite.apply(kind, body, mu)
	// A manifest the rewrite leaves as it is has nothing to check.
	if err == nil && !bytes.Equal(out, body) {
		err = h.Rewrite.sameShape(kind, playerURL, body, out)
	}
	if err != nil {
		res.warning = "manifest passed through unchanged: " + err.Error()
		return res
	}
	res.body, res.changed = out, !bytes.Equal(out, body)
	return res
}

// apply runs the rewrite. The DASH side decodes upstream bytes with
// encoding/xml: a panic there becomes a pass-through, not a crash.
func (rw *ManifestRewrite) apply(kind manifestKind, body []byte, mu *url.URL) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("the rewrite panicked: %v", p)
		}
	}()
	if kind == kindHLS {
		return rw.hls(body, mu)
	}
	return rw.dash(body, mu)
}

// hlsTargetDuration reads EXT-X-TARGETDURATION.
func hlsTargetDuration(body []byte) time.Duration {
	const tag = "#EXT-X-TARGETDURATION:"
	i := bytes.Index(body, []byte(tag))
	if i < 0 {
		return 0
	}
	rest := body[i+len(tag):]
	if j := bytes.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(rest)), 64)
	if err != nil || n <= 0 || n > 3600 {
		return 0
	}
	return time.Duration(n * float64(time.Second))
}

// sameShape checks a rewrite against the original before it is served.
// Outside the URIs (and, with pin_variants, the variant attributes) the
// rewrite must be the original byte for byte, and the manifest package
// must read the same presentation from both: the same streams, swarms
// (unless pinning), init segments and segments, with the same byte
// ranges, times and ids, and every playlist, init and segment URL where
// target sends the original's.
func (rw *ManifestRewrite) sameShape(kind manifestKind, u string, before, after []byte) error {
	// One clock for both: a dynamic MPD's segment window depends on it.
	opts := &manifest.Options{Now: time.Now()}
	parse := func(b []byte) (*manifest.Presentation, error) {
		if kind == kindDASH {
			return manifest.ParseDASH(u, b, opts)
		}
		return manifest.ParseHLS(u, b, opts)
	}
	p1, err := parse(before)
	if err != nil {
		// Not ours to judge: players may still play it; pass it on.
		return fmt.Errorf("the original does not parse: %w", err)
	}
	p2, err := parse(after)
	if err != nil {
		return fmt.Errorf("the rewrite does not parse: %w", err)
	}
	if err := rw.sameSkeleton(kind, before, after); err != nil {
		return err
	}
	if len(p1.Streams) != len(p2.Streams) {
		return fmt.Errorf("the rewrite has %d streams, the original %d", len(p2.Streams), len(p1.Streams))
	}
	if p1.Dynamic != p2.Dynamic {
		return fmt.Errorf("the rewrite changes the MPD type")
	}
	for i := range p1.Streams {
		a, b := p1.Streams[i], p2.Streams[i]
		// A media playlist's one stream is the playlist itself, whose
		// URL is the request's; other stream URLs are rewritten URIs.
		want := a.URL
		if a.URL != p1.URL {
			want = rw.moved(a.URL)
		}
		if b.URL != want {
			return fmt.Errorf("stream %d: the rewrite has playlist %s, want %s", i, b.URL, want)
		}
		if err := rw.sameStream(a, b); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
	}
	return nil
}

// sameSkeleton checks that before and after differ only where the rewrite
// may change them.
func (rw *ManifestRewrite) sameSkeleton(kind manifestKind, before, after []byte) error {
	skeleton := mpdSkeleton
	if kind == kindHLS {
		skeleton = func(b []byte) ([]byte, error) { return hlsSkeleton(b, rw.PinVariants) }
	}
	s1, err := skeleton(before)
	if err != nil {
		return fmt.Errorf("the original does not parse: %w", err)
	}
	s2, err := skeleton(after)
	if err != nil {
		return fmt.Errorf("the rewrite does not parse: %w", err)
	}
	if !bytes.Equal(s1, s2) {
		return fmt.Errorf("the rewrite changes more than URIs")
	}
	return nil
}

// sameStream compares a stream of the original with the rewrite's.
func (rw *ManifestRewrite) sameStream(a, b *manifest.Stream) error {
	// Pinning exists to keep the swarms of an earlier version.
	if !rw.PinVariants {
		for c := range a.Swarms {
			if a.Swarms[c].InfoHash != b.Swarms[c].InfoHash {
				return fmt.Errorf("the rewrite moves it to another swarm")
			}
		}
	}
	if a.Live != b.Live || a.Loaded != b.Loaded || a.MediaSequence != b.MediaSequence {
		return fmt.Errorf("the rewrite changes whether it is live, loaded or its media sequence")
	}
	if err := rw.sameInit("init segment", a.Init, b.Init); err != nil {
		return err
	}
	if err := rw.sameInit("segment index", a.Index, b.Index); err != nil {
		return err
	}
	if len(a.Segments) != len(b.Segments) {
		return fmt.Errorf("the rewrite has %d segments, the original %d", len(b.Segments), len(a.Segments))
	}
	for j, s := range a.Segments {
		t := b.Segments[j]
		if want := rw.moved(s.URL); t.URL != want {
			return fmt.Errorf("segment %d: the rewrite has %s, want %s", j, t.URL, want)
		}
		if !sameRange(s.ByteRange, t.ByteRange) || s.Duration != t.Duration || s.Start != t.Start ||
			s.Sequence != t.Sequence || s.ExternalID != t.ExternalID {
			return fmt.Errorf("segment %d: the rewrite changes its byte range, time or ids", j)
		}
	}
	return nil
}

// sameInit compares an init segment or segment index of the original
// with the rewrite's.
func (rw *ManifestRewrite) sameInit(what string, a, b *manifest.InitSegment) error {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil || b == nil:
		return fmt.Errorf("the rewrite adds or drops the %s", what)
	}
	if want := rw.moved(a.URL); b.URL != want {
		return fmt.Errorf("%s: the rewrite has %s, want %s", what, b.URL, want)
	}
	if !sameRange(a.ByteRange, b.ByteRange) {
		return fmt.Errorf("%s: the rewrite changes its byte range", what)
	}
	return nil
}

// sameRange reports whether two optional byte ranges are equal.
func sameRange(a, b *manifest.ByteRange) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// rewriteKey identifies a source version: the URL without its query plus
// the upstream's strong ETag and length, or a hash of the body when there
// is no ETag. The query is left out because the result does not depend on
// it (references with a path drop the base's query, pins and swarm ids
// ignore it), and because it varies per viewer (CMCD, tokens): keyed with
// it, every request could cost a rewrite and two parses.
func rewriteKey(u string, hdr http.Header, body []byte) string {
	if headKeyable(hdr) {
		return rewriteKeyFromHead(u, hdr.Get("ETag"), int64(len(body)))
	}
	sum := sha256.Sum256(body)
	u, _, _ = strings.Cut(u, "?")
	return u + "\x00" + hex.EncodeToString(sum[:16])
}

// headKeyable reports whether a response's head alone names its version:
// a strong ETag on an unencoded body (an encoded one is keyed after
// decoding, by content).
func headKeyable(hdr http.Header) bool {
	et := hdr.Get("ETag")
	enc := strings.ToLower(hdr.Get("Content-Encoding"))
	return et != "" && !strings.HasPrefix(et, "W/") && (enc == "" || enc == "identity")
}

// rewriteKeyFromHead is rewriteKey from the ETag and the length.
func rewriteKeyFromHead(u, etag string, n int64) string {
	u, _, _ = strings.Cut(u, "?")
	return u + "\x00" + etag + "\x00" + strconv.FormatInt(n, 10)
}

// rewriteCache is a small LRU of processed manifests.
type rewriteCache struct {
	max   int
	mu    sync.Mutex
	order *list.List
	items map[string]*list.Element
}

type rewriteEntry struct {
	key string
	res rewriteResult
}

func newRewriteCache(n int) *rewriteCache {
	return &rewriteCache{max: n, order: list.New(), items: map[string]*list.Element{}}
}

func (c *rewriteCache) get(key string) (rewriteResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*rewriteEntry).res, true
	}
	return rewriteResult{}, false
}

func (c *rewriteCache) put(key string, res rewriteResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*rewriteEntry).res = res
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&rewriteEntry{key: key, res: res})
	for c.order.Len() > c.max {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.items, el.Value.(*rewriteEntry).key)
	}
}
