package manifest

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// hlsAttrListRE is hls.js's ATTR_LIST_REGEX (src/utils/attr-list.ts). Go's
// regexp has the same leftmost-first semantics for this pattern, so
// FindAllStringSubmatch yields the same name/value pairs as hls.js's exec
// loop on a single line.
var hlsAttrListRE = regexp.MustCompile(`(.+?)=(".*?"|.*?)(?:,|$)`)

// parseHLSAttrs parses an attribute list as hls.js's AttrList does: names
// are trimmed, values are taken verbatim except that a value starting and
// ending with '"' loses those quotes. Later duplicates win. This keeps what
// grafov/m3u8 loses: values with surrounding spaces (grafov trims them),
// empty quoted strings (grafov's pattern skips them) and the exact text of
// numbers such as FRAME-RATE=30.000.
func parseHLSAttrs(s string) map[string]string {
	out := make(map[string]string, 8)
	for _, m := range hlsAttrListRE.FindAllStringSubmatch(s, -1) {
		name := strings.TrimSpace(m[1])
		v := m[2]
		if len(v) > 0 && v[0] == '"' && strings.LastIndexByte(v, '"') == len(v)-1 {
			if len(v) >= 2 {
				v = v[1 : len(v)-1]
			} else {
				v = ""
			}
		}
		out[name] = v
	}
	return out
}

// jsParseInt is parseInt(s, 10) for the values playlists contain: leading
// whitespace and an optional sign, then decimal digits up to the first
// non-digit. ok is false when there are no digits (NaN). Values beyond the
// int64 range saturate, which p2p prints as "Infinity" like hls.js.
func jsParseInt(s string) (v int64, ok bool) {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v > (math.MaxInt64-9)/10 {
			v = math.MaxInt64
		} else {
			v = v*10 + int64(s[i]-'0')
		}
		i++
	}
	if i == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// hlsLines splits playlist text into lines without their line terminators
// ("\n", "\r\n" or a lone "\r"), calling fn with the 1-based line number and
// the line with surrounding white space removed. The line aliases body. It
// stops when fn returns false.
func hlsLines(body []byte, fn func(n int, line []byte) bool) {
	n := 0
	for len(body) > 0 {
		n++
		i := bytes.IndexAny(body, "\r\n")
		var line []byte
		if i < 0 {
			line, body = body, nil
		} else {
			line = body[:i]
			if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
				body = body[i+2:]
			} else {
				body = body[i+1:]
			}
		}
		if !fn(n, bytes.TrimSpace(line)) {
			return
		}
	}
}

// validDuration reports whether s is an EXTINF duration: a finite,
// non-negative number strconv.ParseFloat accepts. Plain decimals are
// checked without allocating.
func validDuration(s []byte) bool {
	dot, digits := false, 0
	plain := len(s) > 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			plain = false
		}
	}
	if plain {
		return digits > 0
	}
	v, err := strconv.ParseFloat(string(s), 64)
	return err == nil && v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// scannedVariant is one EXT-X-STREAM-INF tag and its URI line.
type scannedVariant struct {
	line    int
	attrs   map[string]string
	uri     string
	uriLine int
}

// scannedMedia is one EXT-X-MEDIA tag.
type scannedMedia struct {
	line  int
	attrs map[string]string
}

// masterScan is what the attribute pre-scan of a multivariant playlist
// finds.
type masterScan struct {
	variants []scannedVariant
	media    []scannedMedia
	// clean is the playlist without blank lines, for grafov/m3u8, which
	// takes a blank line after EXT-X-STREAM-INF for the variant's URI.
	clean []byte
}

// utf8BOM is the UTF-8 encoding of U+FEFF, the byte order mark.
var utf8BOM = []byte("\xef\xbb\xbf")

// trimBOM removes one leading UTF-8 byte order mark. Players never see it:
// browsers decode a response as UTF-8 and drop a leading BOM before hls.js
// or shaka-player read the text, so a playlist saved by an editor that
// writes one plays, and must parse here too.
func trimBOM(body []byte) []byte {
	return bytes.TrimPrefix(body, utf8BOM)
}

// isHLSMediaPlaylist reports whether the text is a media playlist by hls.js's
// rule: a line starting with "#EXTINF:" or "#EXT-X-TARGETDURATION:". A
// leading byte order mark is ignored.
func isHLSMediaPlaylist(body []byte) bool {
	body = trimBOM(body)
	for _, tag := range []string{"#EXTINF:", "#EXT-X-TARGETDURATION:"} {
		for i := 0; ; {
			j := bytes.Index(body[i:], []byte(tag))
			if j < 0 {
				break
			}
			k := i + j
			if k == 0 || body[k-1] == '\n' || body[k-1] == '\r' {
				return true
			}
			i = k + 1
		}
	}
	return false
}

// scanMaster scans a multivariant playlist for its EXT-X-STREAM-INF and
// EXT-X-MEDIA tags, keeping raw attribute values, and checks its structure.
func scanMaster(u string, body []byte) (*masterScan, error) {
	sc := &masterScan{}
	var (
		err     error
		pending = -1 // index into sc.variants of a STREAM-INF awaiting its URI
		clean   bytes.Buffer
	)
	clean.Grow(len(body))
	hlsLines(body, func(n int, lineBytes []byte) bool {
		line := string(lineBytes)
		if n == 1 && line != "#EXTM3U" {
			err = hlsError(u, n, "the playlist does not start with #EXTM3U", nil)
			return false
		}
		if line == "" {
			return true
		}
		clean.WriteString(line)
		clean.WriteByte('\n')
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			if pending >= 0 {
				err = hlsError(u, sc.variants[pending].line, "#EXT-X-STREAM-INF has no URI line (line "+strconv.Itoa(n)+" starts another)", nil)
				return false
			}
			sc.variants = append(sc.variants, scannedVariant{line: n, attrs: parseHLSAttrs(line[len("#EXT-X-STREAM-INF:"):])})
			pending = len(sc.variants) - 1
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			sc.media = append(sc.media, scannedMedia{line: n, attrs: parseHLSAttrs(line[len("#EXT-X-MEDIA:"):])})
		case strings.HasPrefix(line, "#"):
		default:
			if pending >= 0 {
				sc.variants[pending].uri = line
				sc.variants[pending].uriLine = n
				pending = -1
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, hlsError(u, 0, "empty playlist", nil)
	}
	if pending >= 0 {
		return nil, hlsError(u, sc.variants[pending].line, "#EXT-X-STREAM-INF has no URI line", nil)
	}
	if len(sc.variants) == 0 {
		return nil, hlsError(u, 0, "no #EXT-X-STREAM-INF variant and no #EXTINF segment: neither a multivariant nor a media playlist", nil)
	}
	for _, v := range sc.variants {
		if _, ok := v.attrs["BANDWIDTH"]; !ok {
			if _, ok := v.attrs["AVERAGE-BANDWIDTH"]; !ok {
				return nil, hlsError(u, v.line, "#EXT-X-STREAM-INF has no BANDWIDTH attribute", nil)
			}
		}
	}
	sc.clean = clean.Bytes()
	return sc, nil
}

// scannedSegment is what the line scan of a media playlist records for one
// segment: where it is and the byte range as written, which grafov/m3u8
// cannot tell apart from an explicit "@0" when the offset is absent.
type scannedSegment struct {
	line      int
	hasRange  bool
	length    int64
	hasOffset bool
	offset    int64
	// mapIndex indexes mediaScan.maps: the EXT-X-MAP in force, or -1.
	mapIndex int
}

// scannedMap is an EXT-X-MAP tag.
type scannedMap struct {
	line  int
	uri   string
	br    *ByteRange
	start int64
}

// mediaScan is what the line scan of a media playlist finds.
type mediaScan struct {
	segments     []scannedSegment
	maps         []scannedMap
	seq          int64
	endList      bool
	playlistType string
	// clean is the playlist without blank lines, or nil when it has
	// none. grafov/m3u8 takes a blank line for a segment URI line.
	clean []byte
}

// scanMedia checks a media playlist line by line and records what grafov/m3u8
// loses. Every structural error names its line.
func scanMedia(u string, body []byte) (*mediaScan, error) {
	sc := &mediaScan{segments: make([]scannedSegment, 0, bytes.Count(body, []byte("#EXTINF")))}
	var (
		err        error
		infLine    int // line of a pending EXTINF, or 0
		rangeLine  int // line of a pending EXT-X-BYTERANGE, or 0
		pendingSeg scannedSegment
		curMap     = -1
		blank      bool
		seqLine    int
	)
	hlsLines(body, func(n int, lb []byte) bool {
		if n == 1 && string(lb) != "#EXTM3U" {
			err = hlsError(u, n, "the playlist does not start with #EXTM3U", nil)
			return false
		}
		if len(lb) == 0 {
			blank = true
			return true
		}
		if lb[0] != '#' {
			if infLine == 0 {
				err = hlsError(u, n, "segment URI without a preceding #EXTINF", nil)
				return false
			}
			pendingSeg.line = n
			pendingSeg.mapIndex = curMap
			sc.segments = append(sc.segments, pendingSeg)
			pendingSeg = scannedSegment{}
			infLine, rangeLine = 0, 0
			return true
		}
		if bytes.HasPrefix(lb, []byte("#EXTINF:")) {
			if infLine != 0 {
				err = hlsError(u, infLine, "#EXTINF is not followed by a segment URI (line "+strconv.Itoa(n)+" has another #EXTINF)", nil)
				return false
			}
			d := bytes.TrimSpace(lb[len("#EXTINF:"):])
			if i := bytes.IndexByte(d, ','); i >= 0 {
				d = bytes.TrimSpace(d[:i])
			}
			if !validDuration(d) {
				err = hlsError(u, n, "#EXTINF has an invalid duration "+strconv.Quote(string(d)), nil)
				return false
			}
			infLine = n
			return true
		}
		if !bytes.HasPrefix(lb, []byte("#EXT-X-")) {
			return true
		}
		line := string(lb)
		switch {
		case strings.HasPrefix(line, "#EXT-X-BYTERANGE:"):
			if rangeLine != 0 {
				err = hlsError(u, n, "second #EXT-X-BYTERANGE for one segment (first on line "+strconv.Itoa(rangeLine)+")", nil)
				return false
			}
			length, offset, hasOffset, ok := parseHLSByteRange(line[len("#EXT-X-BYTERANGE:"):])
			if !ok {
				err = hlsError(u, n, "bad #EXT-X-BYTERANGE "+strconv.Quote(line[len("#EXT-X-BYTERANGE:"):])+": want <length>[@<offset>] with length > 0", nil)
				return false
			}
			if !hasOffset {
				prev := len(sc.segments) - 1
				if prev < 0 || !sc.segments[prev].hasRange {
					err = hlsError(u, n, "#EXT-X-BYTERANGE without an offset must follow a segment with a byte range", nil)
					return false
				}
			}
			pendingSeg.hasRange, pendingSeg.length, pendingSeg.hasOffset, pendingSeg.offset = true, length, hasOffset, offset
			rangeLine = n
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			if seqLine != 0 {
				err = hlsError(u, n, "second #EXT-X-MEDIA-SEQUENCE (first on line "+strconv.Itoa(seqLine)+")", nil)
				return false
			}
			if len(sc.segments) > 0 || infLine != 0 {
				err = hlsError(u, n, "#EXT-X-MEDIA-SEQUENCE must appear before the first segment", nil)
				return false
			}
			v, perr := strconv.ParseInt(strings.TrimSpace(line[len("#EXT-X-MEDIA-SEQUENCE:"):]), 10, 64)
			if perr != nil || v < 0 {
				err = hlsError(u, n, "#EXT-X-MEDIA-SEQUENCE is not a non-negative integer", nil)
				return false
			}
			sc.seq, seqLine = v, n
		case line == "#EXT-X-ENDLIST":
			sc.endList = true
		case strings.HasPrefix(line, "#EXT-X-PLAYLIST-TYPE:"):
			sc.playlistType = strings.ToUpper(strings.TrimSpace(line[len("#EXT-X-PLAYLIST-TYPE:"):]))
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			a := parseHLSAttrs(line[len("#EXT-X-MAP:"):])
			m := scannedMap{line: n, uri: a["URI"]}
			if m.uri == "" {
				err = hlsError(u, n, "#EXT-X-MAP has no URI", nil)
				return false
			}
			if br, ok := a["BYTERANGE"]; ok {
				length, offset, _, ok := parseHLSByteRange(br)
				if !ok {
					err = hlsError(u, n, "#EXT-X-MAP has a bad BYTERANGE "+strconv.Quote(br), nil)
					return false
				}
				m.br = &ByteRange{Start: offset, End: offset + length - 1}
			}
			sc.maps = append(sc.maps, m)
			curMap = len(sc.maps) - 1
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			err = hlsError(u, n, "#EXT-X-STREAM-INF in a media playlist", nil)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, hlsError(u, 0, "empty playlist", nil)
	}
	if infLine != 0 {
		return nil, hlsError(u, infLine, "#EXTINF is not followed by a segment URI", nil)
	}
	if blank {
		var clean bytes.Buffer
		clean.Grow(len(body))
		hlsLines(body, func(_ int, line []byte) bool {
			if len(line) > 0 {
				clean.Write(line)
				clean.WriteByte('\n')
			}
			return true
		})
		sc.clean = clean.Bytes()
	}
	return sc, nil
}

// parseHLSByteRange parses "<n>[@<o>]" with decimal integers, n > 0, and
// n+o within the int64 range.
func parseHLSByteRange(s string) (length, offset int64, hasOffset, ok bool) {
	s = strings.TrimSpace(s)
	ls, os, hasOffset := strings.Cut(s, "@")
	length, err := strconv.ParseInt(ls, 10, 64)
	if err != nil || length <= 0 || !allDigits(ls) {
		return 0, 0, false, false
	}
	if hasOffset {
		offset, err = strconv.ParseInt(os, 10, 64)
		if err != nil || offset < 0 || !allDigits(os) {
			return 0, 0, false, false
		}
		if offset > math.MaxInt64-length {
			return 0, 0, false, false
		}
	}
	return length, offset, hasOffset, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hlsError(u string, line int, msg string, err error) *SyntaxError {
	return &SyntaxError{Format: FormatHLS, URL: u, Line: line, Msg: msg, Err: err}
}
