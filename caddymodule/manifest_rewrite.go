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

	"github.com/grafov/m3u8"
	"github.com/zencoder/go-dash/v3/mpd"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// ManifestRewrite says how p2p_manifest rewrites the URIs in manifests:
// segment, variant, rendition and init URIs in HLS, BaseURLs and segment
// templates in DASH. The zero value rewrites nothing.
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
		rw.pins = &variantPins{byManifest: map[string]map[string]m3u8.VariantParams{}}
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
	return rw.base != nil || rw.URIForm != "" || len(rw.names) > 0 || len(rw.regexps) > 0 || rw.PinVariants
}

// maxPinnedManifests bounds the playlists whose variants are pinned.
const maxPinnedManifests = 4096

// variantPins remembers, per multivariant playlist URL (without query),
// the attributes each variant URI had when first seen.
type variantPins struct {
	mu         sync.Mutex
	byManifest map[string]map[string]m3u8.VariantParams
}

// apply pins the variants of m, served at manifestURL.
func (vp *variantPins) apply(manifestURL string, m *m3u8.MasterPlaylist) {
	key, _, _ := strings.Cut(manifestURL, "?")
	vp.mu.Lock()
	defer vp.mu.Unlock()
	pinned := vp.byManifest[key]
	if pinned == nil {
		if len(vp.byManifest) >= maxPinnedManifests {
			return
		}
		pinned = map[string]m3u8.VariantParams{}
		vp.byManifest[key] = pinned
	}
	for _, v := range m.Variants {
		if v == nil {
			continue
		}
		uri, _, _ := strings.Cut(v.URI, "?")
		if first, ok := pinned[uri]; ok {
			alts := v.Alternatives
			v.VariantParams = first
			v.Alternatives = alts
			continue
		}
		if len(pinned) < 256 {
			first := v.VariantParams
			first.Alternatives = nil
			pinned[uri] = first
		}
	}
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

// uri rewrites one URI reference found in the manifest at manifestURL.
func (rw *ManifestRewrite) uri(ref string, manifestURL *url.URL) (string, error) {
	if ref == "" {
		return ref, nil
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	abs := manifestURL.ResolveReference(r)
	if abs.RawQuery != "" && (len(rw.names) > 0 || len(rw.regexps) > 0) {
		q := abs.Query()
		for k := range q {
			if rw.dropParam(k) {
				q.Del(k)
			}
		}
		abs.RawQuery = q.Encode()
	}
	if rw.base != nil {
		abs.Scheme, abs.Host = rw.base.Scheme, rw.base.Host
		if p := strings.TrimSuffix(rw.base.Path, "/"); p != "" {
			abs.Path = p + abs.Path
			abs.RawPath = ""
		}
	}
	sameHost := abs.Scheme == manifestURL.Scheme && abs.Host == manifestURL.Host
	relative := rw.URIForm == "relative" || (rw.URIForm == "" && !r.IsAbs() && r.Host == "")
	if relative && sameHost {
		return relativeRef(manifestURL, abs), nil
	}
	return abs.String(), nil
}

// relativeRef writes target relative to the directory of base (same
// scheme and host).
func relativeRef(base, target *url.URL) string {
	from := strings.Split(path.Dir(base.Path), "/")
	to := strings.Split(target.Path, "/")
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
	if target.RawQuery != "" {
		ref += "?" + target.RawQuery
	}
	return ref
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
	if err == nil {
		// Pinning exists to keep the swarms of an earlier version.
		err = sameShape(kind, playerURL, body, out, h.Rewrite.PinVariants)
	}
	if err != nil {
		res.warning = "manifest passed through unchanged: " + err.Error()
		return res
	}
	res.body, res.changed = out, !bytes.Equal(out, body)
	return res
}

// apply runs the rewrite. The parsers are third-party code fed with
// upstream bytes: a panic in them becomes a pass-through, not a crash.
func (rw *ManifestRewrite) apply(kind manifestKind, body []byte, mu *url.URL) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("the parser panicked: %v", p)
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

// hls rewrites a playlist through grafov/m3u8.
func (rw *ManifestRewrite) hls(body []byte, mu *url.URL) ([]byte, error) {
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(body), true)
	if err != nil {
		return nil, fmt.Errorf("grafov/m3u8 cannot decode it: %w", err)
	}
	fix := func(p *string) error {
		v, err := rw.uri(*p, mu)
		if err == nil {
			*p = v
		}
		return err
	}
	switch typ {
	case m3u8.MASTER:
		m := pl.(*m3u8.MasterPlaylist)
		if rw.pins != nil {
			rw.pins.apply(mu.String(), m)
		}
		seen := map[*m3u8.Alternative]bool{}
		for _, v := range m.Variants {
			if v == nil {
				continue
			}
			if err := fix(&v.URI); err != nil {
				return nil, err
			}
			for _, a := range v.Alternatives {
				if a == nil || seen[a] {
					continue
				}
				seen[a] = true
				if err := fix(&a.URI); err != nil {
					return nil, err
				}
			}
		}
		return m.Encode().Bytes(), nil
	case m3u8.MEDIA:
		m := pl.(*m3u8.MediaPlaylist)
		if m.Map != nil {
			if err := fix(&m.Map.URI); err != nil {
				return nil, err
			}
		}
		// grafov decodes a live playlist with a window of 8 and would
		// encode only that many segments.
		_ = m.SetWinSize(0)
		for _, s := range m.Segments {
			if s == nil {
				continue
			}
			if err := fix(&s.URI); err != nil {
				return nil, err
			}
			if s.Map != nil {
				if err := fix(&s.Map.URI); err != nil {
					return nil, err
				}
			}
		}
		return m.Encode().Bytes(), nil
	}
	return nil, fmt.Errorf("unknown playlist type")
}

// dash rewrites an MPD through go-dash: the BaseURLs (an MPD-level one is
// added when the URIs move to another host) and the segment templates.
func (rw *ManifestRewrite) dash(body []byte, mu *url.URL) ([]byte, error) {
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		return nil, fmt.Errorf("go-dash cannot read it: %w", err)
	}
	fixList := func(l []string) error {
		for i := range l {
			v, err := rw.uri(strings.TrimSpace(l[i]), mu)
			if err != nil {
				return err
			}
			l[i] = v
		}
		return nil
	}
	if len(m.BaseURL) == 0 && (rw.base != nil || rw.URIForm == "absolute") {
		m.BaseURL = []string{"./"}
	}
	if err := fixList(m.BaseURL); err != nil {
		return nil, err
	}
	// In templates only the query is touched: $...$ placeholders stay.
	strip := func(p *string) {
		if p == nil {
			return
		}
		tmpl, q, ok := strings.Cut(*p, "?")
		if !ok {
			return
		}
		var keep []string
		for _, kv := range strings.Split(q, "&") {
			k, _, _ := strings.Cut(kv, "=")
			if name, err := url.QueryUnescape(k); err == nil && rw.dropParam(name) {
				continue
			}
			keep = append(keep, kv)
		}
		*p = tmpl
		if len(keep) > 0 {
			*p += "?" + strings.Join(keep, "&")
		}
	}
	for _, p := range m.Periods {
		if p == nil {
			continue
		}
		for i, b := range p.BaseURL {
			if r, err := url.Parse(b); err == nil && r.IsAbs() {
				if v, err := rw.uri(b, mu); err == nil {
					p.BaseURL[i] = v
				}
			}
		}
		for _, as := range p.AdaptationSets {
			if as == nil {
				continue
			}
			if t := as.SegmentTemplate; t != nil {
				strip(t.Media)
				strip(t.Initialization)
			}
			for _, r := range as.Representations {
				if r == nil || r.SegmentTemplate == nil {
					continue
				}
				strip(r.SegmentTemplate.Media)
				strip(r.SegmentTemplate.Initialization)
			}
		}
	}
	s, err := m.WriteToString()
	if err != nil {
		return nil, fmt.Errorf("go-dash cannot write it: %w", err)
	}
	return []byte(s), nil
}

// sameShape checks a rewrite against the original: both parse with the
// manifest package into the same streams and segment counts, so a lossy
// round trip through grafov or go-dash never reaches a player.
func sameShape(kind manifestKind, u string, before, after []byte, swarmsMayMove bool) error {
	parse := func(b []byte) (*manifest.Presentation, error) {
		if kind == kindDASH {
			return manifest.ParseDASH(u, b, nil)
		}
		return manifest.ParseHLS(u, b, nil)
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
	if len(p1.Streams) != len(p2.Streams) {
		return fmt.Errorf("the rewrite has %d streams, the original %d", len(p2.Streams), len(p1.Streams))
	}
	for i := range p1.Streams {
		a, b := p1.Streams[i], p2.Streams[i]
		if len(a.Segments) != len(b.Segments) {
			return fmt.Errorf("stream %d: the rewrite has %d segments, the original %d", i, len(b.Segments), len(a.Segments))
		}
		for c := range a.Swarms {
			if !swarmsMayMove && a.Swarms[c].InfoHash != b.Swarms[c].InfoHash {
				return fmt.Errorf("stream %d: the rewrite moves it to another swarm", i)
			}
		}
	}
	return nil
}

// rewriteKey identifies a source version: the URL plus the upstream's
// strong ETag and length, or a hash of the body when there is no ETag.
func rewriteKey(u string, hdr http.Header, body []byte) string {
	if headKeyable(hdr) {
		return rewriteKeyFromHead(u, hdr.Get("ETag"), int64(len(body)))
	}
	sum := sha256.Sum256(body)
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
