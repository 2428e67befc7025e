package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// Client is a player integration of P2P Media Loader whose stream order and
// segment ids this package reproduces. Each client uses one
// p2p.ClientGeneration.
type Client int

const (
	// HLSJS is hls.js with p2p-media-loader-hlsjs 2.3.1 (core 2.3, SHA-1
	// info_hash, attribute-hash stream index). It plays HLS only.
	HLSJS Client = iota
	// Shaka is shaka-player 4.16 with p2p-media-loader-shaka 2.2.2 (core
	// 2.2, MD5 info_hash, ordinal stream index). It plays HLS and DASH.
	Shaka
)

// NumClients is the number of Client values; arrays indexed by Client have
// this length.
const NumClients = 2

// NoExternalID marks a segment that a client does not announce: the client
// does not play the stream, or its integration would not register the
// segment (see Segment.ExternalID).
const NoExternalID int64 = math.MinInt64

// Clients returns every Client, in index order.
func Clients() []Client { return []Client{HLSJS, Shaka} }

// String returns "hlsjs" or "shaka".
func (c Client) String() string {
	switch c {
	case HLSJS:
		return "hlsjs"
	case Shaka:
		return "shaka"
	}
	return "client(" + strconv.Itoa(int(c)) + ")"
}

// Generation returns the core generation the client bundles: p2p.Core23 for
// HLSJS and p2p.Core22 for Shaka.
func (c Client) Generation() p2p.ClientGeneration {
	if c == HLSJS {
		return p2p.Core23{}
	}
	return p2p.Core22{}
}

// Format is the manifest format of a Presentation.
type Format int

// Manifest formats.
const (
	FormatHLS Format = iota + 1
	FormatDASH
)

// String returns "hls" or "dash".
func (f Format) String() string {
	switch f {
	case FormatHLS:
		return "hls"
	case FormatDASH:
		return "dash"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Presentation is one manifest (an HLS multivariant or media playlist, or a
// DASH MPD) with every stream a P2P Media Loader client can share.
type Presentation struct {
	// URL is the manifest URL after redirects, against which relative
	// URIs are resolved.
	URL string
	// BaseSwarmID is the base of every stream swarm string: the
	// application's swarmId (Options.SwarmID) or p2p.BaseSwarmID(URL).
	BaseSwarmID string
	// Format is FormatHLS or FormatDASH.
	Format Format
	// Dynamic is true for a DASH MPD of type "dynamic". For HLS, see
	// Stream.Live.
	Dynamic bool
	// Streams are the video variants (or DASH video representations)
	// followed by the audio renditions (or DASH audio representations),
	// each in manifest order.
	Streams []*Stream

	// shakaVideoLast is the last media sequence number in shaka-player's
	// shared mediaSequence→time map for video, which only live HLS
	// playlists fill; shakaVideoLastOK reports whether it has entries.
	shakaVideoLast   int64
	shakaVideoLastOK bool
}

// Stream is one swarm-bearing stream: an HLS variant (EXT-X-STREAM-INF)
// or audio rendition (EXT-X-MEDIA TYPE=AUDIO with a URI), or a DASH
// video or audio Representation (with the matching Representations of later
// Periods appended, as shaka combines Periods).
type Stream struct {
	// Attributes are the stream's attributes as written in the manifest.
	// Attributes.Kind is p2p.KindVariant for HLS variants and DASH video
	// representations and p2p.KindAudioRendition for HLS audio renditions
	// and DASH audio representations. Attributes.Ordinal is the stream's
	// shaka ordinal (or -1 when shaka does not register it) and
	// Attributes.Type is empty; the per-client values are in Swarms.
	Attributes p2p.StreamAttributes
	// URL is, for HLS, the absolute media playlist URL as written in the
	// multivariant playlist (hls.js's stream runtime id). It is empty for
	// DASH.
	URL string
	// ResponseURL is, for HLS, the media playlist URL after redirects,
	// against which segment URIs are resolved. hls.js gives a stream whose
	// playlist redirects no P2P (spec §4.1); Redirected reports this.
	ResponseURL string
	// RepresentationID is the DASH Representation@id of the first Period.
	RepresentationID string
	// Swarms holds, per Client, the stream's swarm identity. The zero
	// value (empty InfoHash) means the client never registers the stream:
	// hls.js does not play DASH, and shaka skips some renditions.
	Swarms [NumClients]p2p.SwarmIdentity

	// Loaded reports whether Segments are known: HLS media playlists are
	// loaded separately (see Presentation.LoadMediaPlaylist) and DASH
	// SegmentBase representations need their segment index (see
	// Stream.ApplySegmentIndex).
	Loaded bool
	// Live is true for an HLS media playlist without EXT-X-ENDLIST (hls.js's
	// rule) and for every stream of a dynamic MPD.
	Live bool
	// ShakaLive is true when shaka treats the HLS playlist as live: it has
	// neither EXT-X-ENDLIST nor EXT-X-PLAYLIST-TYPE:VOD.
	ShakaLive bool
	// MediaSequence is the HLS EXT-X-MEDIA-SEQUENCE of the last loaded
	// playlist.
	MediaSequence int64
	// Init is the initialization segment (EXT-X-MAP, DASH Initialization)
	// of the first segment, if any. Init segments are never exchanged over
	// P2P and have no externalId.
	Init *InitSegment
	// Index locates the segment index of a DASH SegmentBase
	// representation; nil otherwise.
	Index *InitSegment
	// Segments are the stream's media segments in playback order.
	Segments []*Segment

	// segmentBase holds what ApplySegmentIndex needs for a DASH
	// SegmentBase representation.
	segmentBase *segmentBaseInfo
	// shakaAudio is true when shaka-player treats the stream as audio.
	shakaAudio bool
	// shakaLoadedLive remembers that shaka saw the HLS playlist as live,
	// so that the refresh which adds EXT-X-ENDLIST still numbers new
	// segments by media sequence.
	shakaLoadedLive bool
}

// Redirected reports whether the HLS media playlist was served from a URL
// other than the one in the multivariant playlist, in which case hls.js does
// not use P2P for the stream (spec §4.1).
func (s *Stream) Redirected() bool {
	return s.ResponseURL != "" && s.URL != "" && s.ResponseURL != s.URL
}

// PlayedBy reports whether client c registers the stream with a swarm.
func (s *Stream) PlayedBy(c Client) bool {
	return c >= 0 && int(c) < NumClients && s.Swarms[c].InfoHash != ""
}

// Segment looks up the segment that client c announces as externalID.
func (s *Stream) Segment(c Client, externalID int64) *Segment {
	if c < 0 || int(c) >= NumClients || externalID == NoExternalID {
		return nil
	}
	for _, seg := range s.Segments {
		if seg.ExternalID[c] == externalID {
			return seg
		}
	}
	return nil
}

// ByteRange is an inclusive range of bytes of a resource.
type ByteRange struct {
	// Start is the offset of the first byte.
	Start int64 `json:"start"`
	// End is the offset of the last byte (inclusive).
	End int64 `json:"end"`
}

// Len returns the number of bytes in the range.
func (r ByteRange) Len() int64 { return r.End - r.Start + 1 }

// InitSegment is an initialization segment or a segment index: a URL and an
// optional byte range.
type InitSegment struct {
	// URL is absolute.
	URL string
	// ByteRange is nil for the whole resource.
	ByteRange *ByteRange
}

// Segment is one media segment.
type Segment struct {
	// URL is the absolute segment URL.
	URL string
	// ByteRange is nil when the segment is the whole resource.
	ByteRange *ByteRange
	// Duration is in seconds.
	Duration float64
	// Start is the segment's start time in seconds: for DASH shaka's
	// presentation time (which the shaka externalId derives from); for HLS
	// the sum of the preceding EXTINF durations since the stream was first
	// loaded.
	Start float64
	// Sequence is the HLS media sequence number (EXT-X-MEDIA-SEQUENCE plus
	// the position in the playlist) or the DASH segment number.
	Sequence int64
	// ExternalID is, per Client, the integer the client announces for the
	// segment, or NoExternalID. Ids are assigned once, when a segment is
	// first seen, and never change afterwards (spec §4.1).
	ExternalID [NumClients]int64
}

// RuntimeID returns the id both client integrations key segments by: the
// URL, followed by "|start-end" for a byte range. A segment whose runtime id
// is already known keeps its externalId when a playlist is refreshed.
func (s *Segment) RuntimeID() string {
	if s.ByteRange == nil {
		return s.URL
	}
	return s.URL + "|" + strconv.FormatInt(s.ByteRange.Start, 10) + "-" + strconv.FormatInt(s.ByteRange.End, 10)
}

// StreamDescription is what one client announces for one stream: the
// swarm and the externalId of every segment. It is the unit Describe
// returns, meant to be compared with what the real players compute.
type StreamDescription struct {
	// Client is "hlsjs" or "shaka".
	Client string `json:"client"`
	// Generation is the core generation, "core-2.3" or "core-2.2".
	Generation string `json:"generation"`
	// Kind is "video" for variants and video representations, "audio"
	// for audio renditions and representations.
	Kind string `json:"kind"`
	// Playlist is the HLS media playlist URL or the DASH representation
	// id.
	Playlist string `json:"playlist"`
	// StreamType is "main" or "secondary".
	StreamType string `json:"streamType"`
	// Index is the stream index.
	Index string `json:"index"`
	// Swarm is the stream swarm string.
	Swarm string `json:"swarm"`
	// InfoHash is the 20-character info_hash.
	InfoHash string `json:"infoHash"`
	// Segments lists the segments the client announces.
	Segments []SegmentDescription `json:"segments"`
}

// SegmentDescription is one announced segment.
type SegmentDescription struct {
	// URL is the absolute segment URL.
	URL string `json:"url"`
	// ByteRange is null for a whole resource.
	ByteRange *ByteRange `json:"byteRange"`
	// ExternalID is the announced id.
	ExternalID int64 `json:"externalId"`
}

// Describe lists, for every client and every stream it plays, the swarm and
// the announced segments: clients in Clients order, streams in Presentation
// order. Streams whose segments are not loaded are listed with no segments.
func (p *Presentation) Describe() []StreamDescription {
	var out []StreamDescription
	for _, c := range Clients() {
		for _, s := range p.Streams {
			if !s.PlayedBy(c) {
				continue
			}
			id := s.Swarms[c]
			d := StreamDescription{
				Client:     c.String(),
				Generation: id.Generation,
				Kind:       kindName(s.Attributes.Kind),
				Playlist:   s.URL,
				StreamType: string(id.Type),
				Index:      id.Index,
				Swarm:      id.Swarm,
				InfoHash:   string(id.InfoHash),
				Segments:   make([]SegmentDescription, 0, len(s.Segments)),
			}
			if p.Format == FormatDASH {
				d.Playlist = s.RepresentationID
			}
			for _, seg := range s.Segments {
				if seg.ExternalID[c] == NoExternalID {
					continue
				}
				d.Segments = append(d.Segments, SegmentDescription{
					URL:        seg.URL,
					ByteRange:  seg.ByteRange,
					ExternalID: seg.ExternalID[c],
				})
			}
			out = append(out, d)
		}
	}
	return out
}

// MarshalJSON encodes Describe as a JSON array.
func (p *Presentation) MarshalJSON() ([]byte, error) {
	d := p.Describe()
	if d == nil {
		d = []StreamDescription{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("manifest: encoding presentation: %w", err)
	}
	return b, nil
}

func kindName(k p2p.StreamKind) string {
	if k == p2p.KindAudioRendition {
		return "audio"
	}
	return "video"
}

// identify fills s.Swarms from s.Attributes: the hls.js identity when hlsjs
// is true, and the shaka identity with shakaType and shakaOrdinal unless
// shakaOrdinal is -1 (shaka does not register the stream).
func (p *Presentation) identify(s *Stream, hlsjs bool, shakaType p2p.StreamType, shakaOrdinal int) {
	if hlsjs {
		a := s.Attributes
		a.Type = ""
		s.Swarms[HLSJS] = p2p.Identify(HLSJS.Generation(), p.BaseSwarmID, a)
	} else {
		s.Swarms[HLSJS] = p2p.SwarmIdentity{}
	}
	if shakaOrdinal >= 0 {
		a := s.Attributes
		a.Type = shakaType
		a.Ordinal = shakaOrdinal
		s.Swarms[Shaka] = p2p.Identify(Shaka.Generation(), p.BaseSwarmID, a)
	} else {
		s.Swarms[Shaka] = p2p.SwarmIdentity{}
	}
	s.Attributes.Ordinal = shakaOrdinal
}

// Options adjusts parsing.
type Options struct {
	// SwarmID is the application's swarmId; empty means the default,
	// p2p.BaseSwarmID of the manifest URL.
	SwarmID string
	// Now is the wall-clock time used to compute the segment availability
	// window of a dynamic MPD (the segments of a @duration template, and
	// the part of a SegmentTimeline that is listed). The zero value means
	// time.Now().
	Now time.Time
}

func (o *Options) swarmID(manifestURL string) string {
	if o != nil && o.SwarmID != "" {
		return o.SwarmID
	}
	return p2p.BaseSwarmID(manifestURL)
}

// SyntaxError reports a broken manifest: the line (HLS) or element (DASH)
// at fault and what is wrong with it.
type SyntaxError struct {
	// Format is the manifest format.
	Format Format
	// URL is the manifest or playlist URL.
	URL string
	// Line is the 1-based HLS line number, or 0.
	Line int
	// Element names the DASH element, e.g.
	// "Period[0]/AdaptationSet[1]/Representation[2] (id=v1)/SegmentTemplate".
	Element string
	// Msg describes the problem.
	Msg string
	// Err is an underlying error, if any.
	Err error
}

// Error formats the error with its location.
func (e *SyntaxError) Error() string {
	loc := ""
	switch {
	case e.Line > 0:
		loc = "line " + strconv.Itoa(e.Line) + ": "
	case e.Element != "":
		loc = e.Element + ": "
	}
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return fmt.Sprintf("manifest: %s %s: %s%s", e.Format, e.URL, loc, msg)
}

// Unwrap returns the underlying error.
func (e *SyntaxError) Unwrap() error { return e.Err }
