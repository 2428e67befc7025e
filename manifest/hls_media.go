package manifest

import (
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/grafov/m3u8"
)

// hlsMedia is a parsed media playlist whose segments have no externalIds
// yet.
type hlsMedia struct {
	segs    []*Segment
	init    *InitSegment
	seq     int64
	endList bool
	// shakaLive is shaka-player's view: neither EXT-X-ENDLIST nor
	// EXT-X-PLAYLIST-TYPE:VOD (HlsParser.determinePresentationType_).
	shakaLive bool
}

// LoadMediaPlaylist parses the media playlist of stream s, fetched from
// responseURL (the URL after redirects, against which segment URIs are
// resolved; empty means s.URL), and assigns every segment its externalIds
// (spec §4):
//
//   - hls.js: the media sequence number when the playlist is live (no
//     EXT-X-ENDLIST, EVENT playlists included), else the 0-based position in
//     the playlist whatever EXT-X-MEDIA-SEQUENCE says.
//   - shaka, HLS: p2p-media-loader-shaka 2.2.2 numbers the segments of a
//     stream backwards from the last media sequence number in
//     shaka-player's mediaSequence→time map for VIDEO, which it hands to
//     audio streams as well (spec §4.2's caveat). shaka-player 4.16 fills
//     that map only for live playlists (no EXT-X-ENDLIST and no
//     EXT-X-PLAYLIST-TYPE:VOD); for VOD it stays empty and ids are the
//     0-based positions. So: VOD ids are positions; live video ids are media
//     sequence numbers (id = last − count + 1 + position, where last is the
//     highest media sequence number of the video playlists loaded so far);
//     live audio ids use the same formula with the audio playlist's own
//     count, so they follow the video playlist's numbering, aligned at the
//     end; with no video playlist loaded they are positions.
//
// Load video streams before audio streams, as shaka does, so that audio ids
// see the video numbering. For later refreshes of a live playlist use a
// LiveStream, which keeps ids of known segments. Calling LoadMediaPlaylist
// again starts the stream afresh.
//
// grafov/m3u8 parses the playlist. A line scan (scanMedia) first checks it
// and records what grafov cannot express: EXT-X-BYTERANGE without an offset
// (grafov stores offset 0, while the range continues after the previous
// segment's), the line of each segment for error messages, and blank lines,
// which grafov would take for segment URIs.
func (p *Presentation) LoadMediaPlaylist(s *Stream, responseURL string, body []byte) error {
	if responseURL == "" {
		responseURL = s.URL
	}
	m, err := parseHLSMedia(responseURL, body)
	if err != nil {
		return err
	}
	s.ResponseURL = responseURL
	s.Loaded = true
	s.Live = !m.endList
	s.ShakaLive = m.shakaLive
	s.MediaSequence = m.seq
	s.Init = m.init
	s.shakaLoadedLive = m.shakaLive
	rule := p.hlsIDRule(s, m, false)
	var start float64
	for i, seg := range m.segs {
		seg.Start = start
		start += seg.Duration
		for _, c := range Clients() {
			seg.ExternalID[c] = rule.id(c, i)
		}
	}
	s.Segments = m.segs
	return nil
}

// hlsIDRule holds how each client numbers the segments of one load or
// refresh of a playlist.
type hlsIDRule struct {
	n int
	// hls.js
	hlsjs     bool
	hlsjsLive bool
	seq       int64
	// shaka
	shaka      bool
	shakaNone  bool  // shaka registers no new segment
	shakaFirst int64 // id of position 0
}

func (r hlsIDRule) id(c Client, i int) int64 {
	switch c {
	case HLSJS:
		if !r.hlsjs {
			return NoExternalID
		}
		if r.hlsjsLive {
			return r.seq + int64(i)
		}
		return int64(i)
	case Shaka:
		if !r.shaka || r.shakaNone {
			return NoExternalID
		}
		return r.shakaFirst + int64(i)
	}
	return NoExternalID
}

// hlsIDRule works out the numbering of a load (refresh false) or refresh of
// s's playlist m, updating the presentation's copy of shaka's video
// mediaSequence map.
func (p *Presentation) hlsIDRule(s *Stream, m *hlsMedia, refresh bool) hlsIDRule {
	n := len(m.segs)
	r := hlsIDRule{n: n, hlsjs: s.PlayedBy(HLSJS), hlsjsLive: !m.endList, seq: m.seq, shaka: s.PlayedBy(Shaka)}
	if !r.shaka {
		return r
	}
	// shaka stays in live mode for the refresh that brings EXT-X-ENDLIST
	// (it switches to VOD only after the update), so that refresh still
	// numbers new segments from the map.
	live := m.shakaLive || (refresh && s.shakaLoadedLive)
	if !live {
		if refresh {
			// A VOD stream's index is read once.
			r.shakaNone = true
		}
		return r
	}
	if !s.shakaAudio && n > 0 {
		last := m.seq + int64(n) - 1
		if !p.shakaVideoLastOK || last > p.shakaVideoLast {
			p.shakaVideoLast, p.shakaVideoLastOK = last, true
		}
	}
	switch {
	case !p.shakaVideoLastOK && !refresh:
		r.shakaFirst = 0
	case !p.shakaVideoLastOK || (refresh && p.shakaVideoLast == 0):
		// getStreamLastMediaSequence is undefined (or 0): the
		// integration stops updating the stream.
		r.shakaNone = true
	default:
		r.shakaFirst = p.shakaVideoLast - int64(n) + 1
	}
	return r
}

// parseHLSMedia scans and decodes a media playlist. Every media playlist
// (LoadMediaPlaylist, LiveStream.Refresh) comes through here, so this is
// where its byte order mark is removed.
func parseHLSMedia(u string, body []byte) (*hlsMedia, error) {
	body = trimBOM(body)
	base, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("manifest: parsing playlist URL %q: %w", u, err)
	}
	sc, err := scanMedia(u, body)
	if err != nil {
		return nil, err
	}
	text := body
	if sc.clean != nil {
		text = sc.clean
	}
	pl, err := decodeGrafovMedia(u, text, len(sc.segments))
	if err != nil {
		return nil, err
	}
	n := int(pl.Count())
	if n != len(sc.segments) || n > len(pl.Segments) {
		return nil, hlsError(u, 0, fmt.Sprintf("grafov/m3u8 found %d segments, the line scan %d", n, len(sc.segments)), nil)
	}
	if pl.SeqNo != uint64(sc.seq) {
		return nil, hlsError(u, 0, fmt.Sprintf("grafov/m3u8 read media sequence %d, the line scan %d", pl.SeqNo, sc.seq), nil)
	}
	m := &hlsMedia{
		seq:     sc.seq,
		endList: pl.Closed,
	}
	m.shakaLive = !pl.Closed && pl.MediaType != m3u8.VOD && sc.playlistType != "VOD"
	if sc.seq > math.MaxInt64-int64(n) {
		return nil, hlsError(u, 0, "EXT-X-MEDIA-SEQUENCE is too large", nil)
	}

	res := newResolver(base)
	segs := make([]Segment, n)
	ptrs := make([]*Segment, n)
	nRanges := 0
	for i := range sc.segments {
		if sc.segments[i].hasRange {
			nRanges++
		}
	}
	ranges := make([]ByteRange, 0, nRanges)
	var prev *ByteRange
	for i := 0; i < n; i++ {
		g := pl.Segments[i]
		ss := &sc.segments[i]
		if g == nil {
			return nil, hlsError(u, ss.line, "grafov/m3u8 lost the segment", nil)
		}
		abs, err := res.resolve(g.URI)
		if err != nil {
			return nil, hlsError(u, ss.line, "bad segment URI", err)
		}
		seg := &segs[i]
		seg.URL = abs
		seg.Duration = g.Duration
		seg.Sequence = sc.seq + int64(i)
		if ss.hasRange {
			start := ss.offset
			if !ss.hasOffset {
				if prev == nil {
					return nil, hlsError(u, ss.line, "EXT-X-BYTERANGE without an offset must follow a segment with a byte range", nil)
				}
				if prev.End == math.MaxInt64 {
					return nil, hlsError(u, ss.line, "EXT-X-BYTERANGE overflows", nil)
				}
				start = prev.End + 1
			}
			if start > math.MaxInt64-ss.length+1 {
				return nil, hlsError(u, ss.line, "EXT-X-BYTERANGE overflows", nil)
			}
			if g.Limit != ss.length || (ss.hasOffset && g.Offset != ss.offset) {
				return nil, hlsError(u, ss.line, fmt.Sprintf("grafov/m3u8 read byte range %d@%d, the line scan %d@%d", g.Limit, g.Offset, ss.length, ss.offset), nil)
			}
			ranges = append(ranges, ByteRange{Start: start, End: start + ss.length - 1})
			seg.ByteRange = &ranges[len(ranges)-1]
			prev = seg.ByteRange
		} else {
			prev = nil
		}
		ptrs[i] = seg
	}
	m.segs = ptrs
	if n > 0 && sc.segments[0].mapIndex >= 0 {
		mp := sc.maps[sc.segments[0].mapIndex]
		abs, err := res.resolve(mp.uri)
		if err != nil {
			return nil, hlsError(u, mp.line, "bad EXT-X-MAP URI", err)
		}
		m.init = &InitSegment{URL: abs, ByteRange: mp.br}
	}
	return m, nil
}

// resolver resolves segment URIs against a playlist URL. Plain relative
// file names (the common case: letters, digits and "-._~/$&+,;=@", no dot
// segments) are joined to the base directory directly, which gives the same
// result as url.ResolveReference without parsing each URI.
type resolver struct {
	base *url.URL
	dir  string // base directory ending in '/', or "" when the fast path is off
}

func newResolver(base *url.URL) *resolver {
	r := &resolver{base: base}
	if base.Opaque == "" && base.RawPath == "" && base.Host != "" && strings.HasPrefix(base.Path, "/") &&
		!strings.Contains(base.Path, "/.") && !strings.Contains(base.Path, "//") {
		if x, err := resolveRef(base, "x"); err == nil && strings.HasSuffix(x, "/x") {
			r.dir = x[:len(x)-1]
		}
	}
	return r
}

func (r *resolver) resolve(ref string) (string, error) {
	if r.dir != "" && plainRelative(ref) {
		return r.dir + ref, nil
	}
	return resolveRef(r.base, ref)
}

// plainRelative reports whether ref is a relative path that
// url.ResolveReference would append to the base directory unchanged.
func plainRelative(ref string) bool {
	if ref == "" || ref[0] == '/' || ref[0] == '.' {
		return false
	}
	prevSlash := false
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '~', c == '$', c == '&', c == '+', c == ',', c == ';', c == '=', c == '@':
		case c == '.':
			if prevSlash {
				return false
			}
		case c == '/':
			if prevSlash {
				return false
			}
		default:
			return false
		}
		prevSlash = c == '/'
	}
	return true
}
