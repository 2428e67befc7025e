package caddymodule

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
)

// dashSlotKind says what a span of MPD text the rewrite may replace
// holds.
type dashSlotKind int

const (
	// dashTopBase is the text of a BaseURL of the MPD element, which
	// resolves against the manifest URL.
	dashTopBase dashSlotKind = iota
	// dashNestedBase is the text of a BaseURL of a Period, an
	// AdaptationSet or a Representation.
	dashNestedBase
	// dashTemplate is SegmentTemplate @media or @initialization: a URI
	// once its $...$ identifiers are filled in.
	dashTemplate
	// dashSegmentURL is SegmentURL @media or @index, or Initialization
	// or RepresentationIndex @sourceURL.
	dashSegmentURL
)

// dashSlot is a span of MPD text the rewrite may replace.
type dashSlot struct {
	kind       dashSlotKind
	start, end int
	// value is the text with XML references decoded and, for a
	// BaseURL, surrounding white space removed (the span leaves it
	// out too).
	value string
	// quote is the attribute's quote character, or 0 for element text.
	quote byte
}

// mpdLayout is where the rewrite may edit an MPD.
type mpdLayout struct {
	slots []dashSlot
	// topBases are the spans of the MPD element's BaseURL elements,
	// tags included.
	topBases []edit
	// afterMPDTag is the offset just past the MPD start tag, where a
	// BaseURL is added.
	afterMPDTag int
	// prefix is the MPD element's namespace prefix as written, with its
	// colon, or empty.
	prefix string
}

// dashURIAttr names the URI-valued attributes of an element.
type dashURIAttr struct {
	names []string
	kind  dashSlotKind
}

// dashURIElements are the MPD elements with URI-valued attributes.
var dashURIElements = map[string]dashURIAttr{
	"SegmentTemplate":     {[]string{"media", "initialization"}, dashTemplate},
	"SegmentURL":          {[]string{"media", "index"}, dashSegmentURL},
	"Initialization":      {[]string{"sourceURL"}, dashSegmentURL},
	"RepresentationIndex": {[]string{"sourceURL"}, dashSegmentURL},
}

// dashBaseParents are the elements whose BaseURLs the rewrite edits.
var dashBaseParents = map[string]bool{"MPD": true, "Period": true, "AdaptationSet": true, "Representation": true}

// dash rewrites an MPD by editing its bytes: the BaseURLs and the URI
// attributes change, every other byte stays. A BaseURL is added to an
// MPD without one when the URIs move to another host or become absolute.
func (rw *ManifestRewrite) dash(body []byte, mu *url.URL) ([]byte, error) {
	l, err := mpdLayoutOf(body)
	if err != nil {
		return nil, err
	}
	var edits []edit
	if len(l.topBases) == 0 && (rw.base != nil || rw.URIForm == "absolute") {
		v, err := rw.uri("./", mu)
		if err != nil {
			return nil, err
		}
		el := "<" + l.prefix + "BaseURL>" + escapeXML(v, 0) + "</" + l.prefix + "BaseURL>"
		edits = append(edits, edit{l.afterMPDTag, l.afterMPDTag, el})
	}
	for _, s := range l.slots {
		v := s.value
		if s.kind == dashTopBase {
			if v, err = rw.uri(s.value, mu); err != nil {
				return nil, err
			}
		} else {
			v = rw.nestedRef(s.value)
		}
		if v != s.value {
			edits = append(edits, edit{s.start, s.end, escapeXML(v, s.quote)})
		}
	}
	return splice(body, edits), nil
}

// nestedRef rewrites a URI below the MPD element. It resolves against the
// BaseURLs above it, which the rewrite has already moved, so a relative
// reference only loses the strip_query parameters; one with a scheme, a
// host or a path from the root is moved to base_url itself, in the form
// it was written in. The reference is edited as text, so that template
// identifiers such as $Number%05d$ stay as written.
func (rw *ManifestRewrite) nestedRef(ref string) string {
	if scheme, _, _ := splitOrigin(ref); scheme != "" && !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
		return ref
	}
	ref = rw.stripQuery(ref)
	if rw.base == nil {
		return ref
	}
	_, origin, rest := splitOrigin(ref)
	basePath := strings.TrimSuffix(rw.base.EscapedPath(), "/")
	switch {
	case origin != "":
		return (&url.URL{Scheme: rw.base.Scheme, User: rw.base.User, Host: rw.base.Host}).String() + basePath + rest
	case strings.HasPrefix(rest, "/"):
		return basePath + rest
	}
	return ref
}

// splitOrigin splits a URI reference (RFC 3986 appendix B) into its
// scheme, its scheme and authority as written ("https://host", "//host",
// or empty without an authority), and what follows them: the path, query
// and fragment, or all of ref when it has no authority.
func splitOrigin(ref string) (scheme, origin, rest string) {
	hier := ref
	if i := strings.IndexAny(ref, ":/?#"); i > 0 && ref[i] == ':' && validScheme(ref[:i]) {
		scheme, hier = ref[:i], ref[i+1:]
	}
	if !strings.HasPrefix(hier, "//") {
		return scheme, "", ref
	}
	end := len(hier)
	if i := strings.IndexAny(hier[2:], "/?#"); i >= 0 {
		end = 2 + i
	}
	n := len(ref) - len(hier) + end
	return scheme, ref[:n], ref[n:]
}

// validScheme reports whether s is a URI scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// mpdSkeleton is the MPD with its URI slots blanked out and the MPD
// element's BaseURLs (which the rewrite may add) removed: two MPDs with the
// same skeleton differ in nothing else.
func mpdSkeleton(body []byte) ([]byte, error) {
	l, err := mpdLayoutOf(body)
	if err != nil {
		return nil, err
	}
	edits := slices.Clone(l.topBases)
	for _, s := range l.slots {
		if s.kind != dashTopBase {
			edits = append(edits, edit{s.start, s.end, "\x00"})
		}
	}
	slices.SortFunc(edits, func(a, b edit) int { return cmp.Compare(a.start, b.start) })
	return splice(body, edits), nil
}

// mpdLayoutOf finds where the rewrite may edit an MPD. encoding/xml only
// locates things: the edits are made to the bytes as written. Elements
// count when they are in the MPD element's namespace.
func mpdLayoutOf(body []byte) (*mpdLayout, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	l := &mpdLayout{afterMPDTag: -1}
	var (
		ns       string
		stack    []string // local names of open elements; "" for foreign ones
		base     *dashSlot
		baseFrom int // offset of the open BaseURL's start tag
		baseText strings.Builder
	)
	for {
		before := int(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the MPD is not well-formed XML: %w", err)
		}
		after := int(d.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			if base != nil {
				return nil, errors.New("an element inside a BaseURL")
			}
			tag := body[before:after]
			if len(stack) == 0 {
				if t.Name.Local != "MPD" || l.afterMPDTag >= 0 {
					return nil, fmt.Errorf("the root element is %s, not one MPD", t.Name.Local)
				}
				if bytes.HasSuffix(tag, []byte("/>")) {
					return nil, errors.New("the MPD element is empty")
				}
				ns, l.afterMPDTag = t.Name.Space, after
				if name := rawName(tag); strings.Contains(name, ":") {
					l.prefix = name[:strings.IndexByte(name, ':')+1]
				}
			}
			name := t.Name.Local
			if t.Name.Space != ns {
				name = ""
			}
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			switch {
			case name == "BaseURL" && dashBaseParents[parent]:
				kind := dashNestedBase
				if len(stack) == 1 {
					kind = dashTopBase
				}
				base, baseFrom = &dashSlot{kind: kind, start: after}, before
				baseText.Reset()
				if bytes.HasSuffix(tag, []byte("/>")) {
					base.start = -1 // nothing to edit between the tags
				}
			case name != "":
				if spec, ok := dashURIElements[name]; ok {
					slots, err := attrSlots(tag, before, t.Attr, spec)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", name, err)
					}
					l.slots = append(l.slots, slots...)
				}
			}
			stack = append(stack, name)
		case xml.CharData:
			if base != nil {
				baseText.Write(t)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			if base != nil {
				return nil, errors.New("markup other than text inside a BaseURL")
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if base == nil {
				break
			}
			if base.start >= 0 {
				base.end = before
				base.start, base.end = trimSpan(body, base.start, base.end)
				base.value = strings.TrimSpace(baseText.String())
				l.slots = append(l.slots, *base)
			}
			if base.kind == dashTopBase {
				l.topBases = append(l.topBases, edit{start: baseFrom, end: after})
			}
			base = nil
		}
	}
	if l.afterMPDTag < 0 {
		return nil, errors.New("no MPD element")
	}
	return l, nil
}

// attrSlots finds the URI-valued attributes of an element in its start
// tag, which is at offset off. attrs are the attributes encoding/xml
// decoded from the tag, in the same order.
func attrSlots(tag []byte, off int, attrs []xml.Attr, spec dashURIAttr) ([]dashSlot, error) {
	raw := rawAttrs(tag)
	if len(raw) != len(attrs) {
		return nil, fmt.Errorf("found %d attributes, encoding/xml %d", len(raw), len(attrs))
	}
	var slots []dashSlot
	for i, a := range raw {
		if slices.Contains(spec.names, a.name) {
			slots = append(slots, dashSlot{kind: spec.kind, start: off + a.start, end: off + a.end, value: attrs[i].Value, quote: a.quote})
		}
	}
	return slots, nil
}

// rawAttr is an attribute of a start tag as written: its name, prefix
// included, where its value is between the quotes, and the quote.
type rawAttr struct {
	name       string
	start, end int
	quote      byte
}

// rawAttrs lists the attributes of a start tag that encoding/xml has
// found well-formed.
func rawAttrs(tag []byte) []rawAttr {
	var out []rawAttr
	i := 1 + len(rawName(tag))
	for {
		for i < len(tag) && isXMLSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || tag[i] == '/' || tag[i] == '>' {
			return out
		}
		n := i
		for i < len(tag) && tag[i] != '=' && !isXMLSpace(tag[i]) {
			i++
		}
		name := string(tag[n:i])
		for i < len(tag) && (tag[i] == '=' || isXMLSpace(tag[i])) {
			i++
		}
		if i >= len(tag) {
			return out
		}
		q := tag[i]
		end := bytes.IndexByte(tag[i+1:], q)
		if end < 0 {
			return out
		}
		out = append(out, rawAttr{name: name, start: i + 1, end: i + 1 + end, quote: q})
		i += end + 2
	}
}

// rawName is the element name of a start tag as written.
func rawName(tag []byte) string {
	i := 1
	for i < len(tag) && !isXMLSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	return string(tag[1:i])
}

func isXMLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// trimSpan narrows body[start:end] by the white space at either end.
func trimSpan(body []byte, start, end int) (int, int) {
	for start < end && isXMLSpace(body[start]) {
		start++
	}
	for end > start && isXMLSpace(body[end-1]) {
		end--
	}
	return start, end
}

// Escapers for element text and for attribute values, whose white space
// other than spaces must be written as references to survive.
var (
	xmlTextEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")
	xmlAttrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "'", "&apos;",
		"\t", "&#x9;", "\n", "&#xA;", "\r", "&#xD;")
)

// escapeXML escapes s for an attribute value in quote, or for element
// text when quote is 0.
func escapeXML(s string, quote byte) string {
	if quote == 0 {
		return xmlTextEscaper.Replace(s)
	}
	return xmlAttrEscaper.Replace(s)
}
