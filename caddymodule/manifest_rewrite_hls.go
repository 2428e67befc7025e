package caddymodule

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// hlsSlotKind says what a span of playlist text the rewrite may replace
// holds.
type hlsSlotKind int

const (
	// hlsURILine is a URI line: a segment, or a variant's media
	// playlist.
	hlsURILine hlsSlotKind = iota
	// hlsMediaURI is the URI attribute of a tag naming media or a
	// playlist.
	hlsMediaURI
	// hlsServiceURI is the URI of a key or content steering server.
	hlsServiceURI
	// hlsVariantAttrs is the attribute list of an EXT-X-STREAM-INF tag.
	hlsVariantAttrs
)

// hlsSlot is a span of playlist text the rewrite may replace.
type hlsSlot struct {
	kind       hlsSlotKind
	start, end int
	// variantURI is, for hlsVariantAttrs, the text of the variant's URI
	// line, or empty if none follows.
	variantURI string
}

// hlsURIAttr names the URI-valued attribute of a tag.
type hlsURIAttr struct {
	name string
	kind hlsSlotKind
}

// hlsURITags are the tags with a URI-valued attribute (RFC 8216bis). The
// URIs of EXT-X-DATERANGE's interstitial attributes are not among them:
// they belong to an ad server.
var hlsURITags = map[string]hlsURIAttr{
	"#EXT-X-MAP":                {"URI", hlsMediaURI},
	"#EXT-X-MEDIA":              {"URI", hlsMediaURI},
	"#EXT-X-I-FRAME-STREAM-INF": {"URI", hlsMediaURI},
	"#EXT-X-PART":               {"URI", hlsMediaURI},
	"#EXT-X-PRELOAD-HINT":       {"URI", hlsMediaURI},
	"#EXT-X-RENDITION-REPORT":   {"URI", hlsMediaURI},
	"#EXT-X-SESSION-DATA":       {"URI", hlsMediaURI},
	"#EXT-X-KEY":                {"URI", hlsServiceURI},
	"#EXT-X-SESSION-KEY":        {"URI", hlsServiceURI},
	"#EXT-X-CONTENT-STEERING":   {"SERVER-URI", hlsServiceURI},
}

const streamInfTag = "#EXT-X-STREAM-INF:"

// hls rewrites a playlist as text: the URIs in its slots change, every
// other byte stays.
func (rw *ManifestRewrite) hls(body []byte, mu *url.URL) ([]byte, error) {
	slots, err := hlsSlots(body)
	if err != nil {
		return nil, err
	}
	var edits []edit
	for _, s := range slots {
		old := string(body[s.start:s.end])
		v := old
		switch s.kind {
		case hlsURILine, hlsMediaURI:
			if v, err = rw.uri(old, mu); err != nil {
				return nil, err
			}
		case hlsServiceURI:
			v = rw.serviceURI(old, mu)
		case hlsVariantAttrs:
			if rw.pins != nil && s.variantURI != "" {
				v = rw.pins.pin(mu.String(), s.variantURI, old)
			}
		}
		if v != old && strings.Contains(old, "{$") {
			// An EXT-X-DEFINE variable: the player substitutes it
			// in the text, which a URL parser would escape.
			return nil, fmt.Errorf("URI %q uses a variable (EXT-X-DEFINE); not rewritten", truncateURI(old))
		}
		if v != old {
			edits = append(edits, edit{s.start, s.end, v})
		}
	}
	return splice(body, edits), nil
}

// serviceURI rewrites the URI of a key or content steering server: an
// http(s) one loses the strip_query parameters, and keeps its host and form.
func (rw *ManifestRewrite) serviceURI(ref string, mu *url.URL) string {
	r, err := url.Parse(ref)
	if err != nil || !isHTTP(mu.ResolveReference(r)) {
		return ref
	}
	return rw.stripQuery(ref)
}

// hlsSkeleton is the playlist with its URI slots, and its variant
// attributes if pinning, blanked out: two playlists with the same
// skeleton differ in nothing else.
func hlsSkeleton(body []byte, pinning bool) ([]byte, error) {
	slots, err := hlsSlots(body)
	if err != nil {
		return nil, err
	}
	edits := make([]edit, 0, len(slots))
	for _, s := range slots {
		if s.kind != hlsVariantAttrs || pinning {
			edits = append(edits, edit{s.start, s.end, "\x00"})
		}
	}
	return splice(body, edits), nil
}

// hlsSlots finds the spans of a playlist the rewrite may replace, in
// order. Lines are split and trimmed as the manifest package does; a URI
// attribute that is not a quoted string is an error, since where it ends
// is a guess.
func hlsSlots(body []byte) ([]hlsSlot, error) {
	var slots []hlsSlot
	variant := -1 // index in slots of an EXT-X-STREAM-INF awaiting its URI
	err := eachHLSLine(body, func(off int, line []byte) error {
		switch {
		case len(line) == 0:
		case line[0] != '#':
			slots = append(slots, hlsSlot{kind: hlsURILine, start: off, end: off + len(line)})
			if variant >= 0 {
				slots[variant].variantURI = string(line)
				variant = -1
			}
		case bytes.HasPrefix(line, []byte(streamInfTag)):
			slots = append(slots, hlsSlot{kind: hlsVariantAttrs, start: off + len(streamInfTag), end: off + len(line)})
			variant = len(slots) - 1
		default:
			tag, attrs, ok := bytes.Cut(line, []byte(":"))
			spec, known := hlsURITags[string(tag)]
			if !ok || !known {
				return nil
			}
			list, err := parseHLSAttrList(attrs)
			if err != nil {
				return fmt.Errorf("%s: %w", tag, err)
			}
			base := off + len(tag) + 1
			for _, a := range list {
				if a.name != spec.name {
					continue
				}
				if !a.quoted {
					return fmt.Errorf("%s: %s is not a quoted string", tag, a.name)
				}
				slots = append(slots, hlsSlot{kind: spec.kind, start: base + a.start, end: base + a.end})
			}
		}
		return nil
	})
	return slots, err
}

// eachHLSLine calls fn with every line of body, without its terminator
// ("\n", "\r\n" or "\r") and surrounding white space, and the line's
// offset in body. A byte order mark before the first line is skipped. It
// stops at fn's first error.
func eachHLSLine(body []byte, fn func(off int, line []byte) error) error {
	pos := 0
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		pos = 3
	}
	for pos < len(body) {
		end := len(body)
		if i := bytes.IndexAny(body[pos:], "\r\n"); i >= 0 {
			end = pos + i
		}
		line := body[pos:end]
		lead := len(line) - len(bytes.TrimLeftFunc(line, unicode.IsSpace))
		if err := fn(pos+lead, bytes.TrimSpace(line)); err != nil {
			return err
		}
		pos = end + 1
		if end+1 < len(body) && body[end] == '\r' && body[end+1] == '\n' {
			pos++
		}
	}
	return nil
}

// hlsAttr is one attribute of an attribute list: its name and where its
// value is, inside the quotes for a quoted string.
type hlsAttr struct {
	name       string
	start, end int
	quoted     bool
}

// parseHLSAttrList splits an attribute list (RFC 8216bis section 4.2) into
// its attributes. A quoted-string value runs to the next double quote, so
// it may hold commas; names are trimmed as hls.js trims them.
func parseHLSAttrList(s []byte) ([]hlsAttr, error) {
	var attrs []hlsAttr
	for i := 0; i < len(s); {
		eq := bytes.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("attribute %q has no value", strings.TrimSpace(string(s[i:])))
		}
		a := hlsAttr{name: strings.TrimSpace(string(s[i : i+eq]))}
		i += eq + 1
		if i < len(s) && s[i] == '"' {
			n := bytes.IndexByte(s[i+1:], '"')
			if n < 0 {
				return nil, fmt.Errorf("%s: unterminated quoted string", a.name)
			}
			a.start, a.end, a.quoted = i+1, i+1+n, true
			i = a.end + 1
			if i < len(s) && s[i] != ',' {
				return nil, fmt.Errorf("%s: text after the quoted string", a.name)
			}
		} else {
			n := bytes.IndexByte(s[i:], ',')
			if n < 0 {
				n = len(s) - i
			}
			a.start, a.end = i, i+n
			i = a.end
		}
		attrs = append(attrs, a)
		i++ // the comma
	}
	return attrs, nil
}

// truncateURI shortens a URI for a message.
func truncateURI(u string) string {
	if len(u) > 80 {
		return u[:80] + "..."
	}
	return u
}
