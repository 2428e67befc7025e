package manifest

import "fmt"

// DefaultRetain is how many segments a LiveStream keeps after they leave the
// playlist, so that a viewer whose copy of the playlist is a refresh behind
// can still be served.
const DefaultRetain = 3

// LiveStream follows one HLS media playlist across refreshes. Each refresh
// is merged into the known segments without renumbering: a segment keeps
// the externalIds it got when first seen (its runtime id, URL plus byte
// range, identifies it, as in both client integrations), new segments are
// numbered by the rules of Presentation.LoadMediaPlaylist, and segments that
// left the playlist are dropped after Retain more have left, so memory stays
// bounded by the playlist window. A playlist that gains EXT-X-ENDLIST keeps
// the ids of the segments it had (spec §4.1).
//
// A segment that left the playlist and comes back is new to both
// integrations, which forget a segment once it is gone
// (p2p-media-loader-hlsjs removes every runtime id the new playlist lacks),
// so it is numbered afresh: an origin that recycles segment names serves
// new content under the old URL at a new media sequence number. The
// exception is a segment back at its own media sequence number, which is a
// stale copy of the playlist from a cache that is behind; it keeps its ids
// (for hls.js the new number would be the same, and shaka's would collide
// with the current segments').
//
// The Stream's Segments always hold the latest playlist's segments. A
// LiveStream is not safe for concurrent use, and neither are two LiveStreams
// of one Presentation: they share the count from which shaka numbers audio
// segments (the newest video segment), so refresh them from one goroutine,
// and in each round the video playlists before the audio ones.
type LiveStream struct {
	// Retain is how many departed segments are kept for Lookup.
	Retain int

	p       *Presentation
	s       *Stream
	retired []*Segment
}

// NewLiveStream starts following stream s of p. If s is already loaded its
// segments are the starting point; otherwise the first Refresh loads it.
func NewLiveStream(p *Presentation, s *Stream) *LiveStream {
	return &LiveStream{Retain: DefaultRetain, p: p, s: s}
}

// Stream returns the followed stream.
func (l *LiveStream) Stream() *Stream { return l.s }

// Refresh is the outcome of one playlist refresh.
type Refresh struct {
	// New are the segments seen for the first time, in playlist order.
	New []*Segment
	// Removed are the segments that left the playlist.
	Removed []*Segment
	// Ended reports that the playlist has EXT-X-ENDLIST.
	Ended bool
}

// Refresh merges a new copy of the playlist, fetched from responseURL (empty
// means the stream URL), and reports what changed.
func (l *LiveStream) Refresh(responseURL string, body []byte) (*Refresh, error) {
	s := l.s
	if !s.Loaded {
		if err := l.p.LoadMediaPlaylist(s, responseURL, body); err != nil {
			return nil, err
		}
		return &Refresh{New: append([]*Segment(nil), s.Segments...), Ended: !s.Live}, nil
	}
	if responseURL == "" {
		responseURL = s.URL
	}
	m, err := parseHLSMedia(responseURL, body)
	if err != nil {
		return nil, fmt.Errorf("refreshing %s: %w", s.URL, err)
	}
	rule := l.p.hlsIDRule(s, m, true)

	current := make(map[string]*Segment, len(s.Segments))
	for _, seg := range s.Segments {
		current[seg.RuntimeID()] = seg
	}
	retired := make(map[string]*Segment, len(l.retired))
	for _, seg := range l.retired {
		retired[seg.RuntimeID()] = seg
	}

	out := &Refresh{Ended: m.endList}
	next := make([]*Segment, len(m.segs))
	inNext := make(map[string]bool, len(m.segs))
	var prev *Segment
	for i, fresh := range m.segs {
		id := fresh.RuntimeID()
		seg, ok := current[id]
		if old, back := retired[id]; !ok && back && old.Sequence == fresh.Sequence {
			// A departed segment back at its own media sequence
			// number: this copy of the playlist is stale (a cache
			// behind the others), and the segment is the one that
			// left. At another number it is new content under a
			// recycled URL, numbered below as both integrations
			// do, having forgotten the URL when it left.
			seg, ok = old, true
		}
		if !ok {
			seg = fresh
			if prev != nil {
				seg.Start = prev.Start + prev.Duration
			} else if len(s.Segments) > 0 {
				last := s.Segments[len(s.Segments)-1]
				seg.Start = last.Start + last.Duration
			}
			for _, c := range Clients() {
				seg.ExternalID[c] = rule.id(c, i)
			}
			out.New = append(out.New, seg)
		}
		next[i] = seg
		inNext[id] = true
		prev = seg
	}
	for _, seg := range s.Segments {
		if !inNext[seg.RuntimeID()] {
			out.Removed = append(out.Removed, seg)
		}
	}
	// Retired: previously retired and newly removed segments that are
	// not back in the playlist, newest last, at most Retain.
	var stillRetired []*Segment
	for _, seg := range l.retired {
		if id := seg.RuntimeID(); !inNext[id] && current[id] == nil {
			stillRetired = append(stillRetired, seg)
		}
	}
	stillRetired = append(stillRetired, out.Removed...)
	if keep := max(l.Retain, 0); len(stillRetired) > keep {
		stillRetired = append([]*Segment(nil), stillRetired[len(stillRetired)-keep:]...)
	}
	l.retired = stillRetired

	s.ResponseURL = responseURL
	s.Segments = next
	s.Live = !m.endList
	s.ShakaLive = m.shakaLive
	s.MediaSequence = m.seq
	if m.init != nil {
		s.Init = m.init
	}
	if m.shakaLive {
		s.shakaLoadedLive = true
	}
	return out, nil
}

// Lookup returns the segment client c announces as externalID, among the
// current playlist and the retained departed segments.
func (l *LiveStream) Lookup(c Client, externalID int64) *Segment {
	if seg := l.s.Segment(c, externalID); seg != nil {
		return seg
	}
	if c < 0 || int(c) >= NumClients || externalID == NoExternalID {
		return nil
	}
	for i := len(l.retired) - 1; i >= 0; i-- {
		if l.retired[i].ExternalID[c] == externalID {
			return l.retired[i]
		}
	}
	return nil
}

// Retained returns the departed segments still kept, oldest first.
func (l *LiveStream) Retained() []*Segment { return append([]*Segment(nil), l.retired...) }
