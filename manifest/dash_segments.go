package manifest

import (
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/zencoder/go-dash/v3/mpd"
)

// timeRange is one entry of shaka's MpdUtils.createTimeline: start and end
// in seconds relative to the Period (presentationTimeOffset removed), the
// unscaled start, and the segment number.
type timeRange struct {
	start, end    float64
	unscaledStart float64
	position      int64
}

// createTimeline is shaka-player's MpdUtils.createTimeline, in float64 with
// the same order of operations. periodDuration is +Inf when unknown.
func createTimeline(ss []*mpd.SegmentTimelineSegment, timescale, pto, periodDuration float64, startNumber int64) []timeRange {
	var tl []timeRange
	lastEnd := -pto
	for i, s := range ss {
		if s == nil {
			continue
		}
		d := float64(s.Duration)
		if d == 0 {
			// "S" element without a duration: ignored.
			continue
		}
		start := lastEnd
		if s.StartTime != nil {
			start = float64(*s.StartTime) - pto
		}
		repeat := 0
		if s.RepeatCount != nil {
			repeat = *s.RepeatCount
		}
		if repeat < 0 {
			var next *mpd.SegmentTimelineSegment
			for _, n := range ss[i+1:] {
				if n != nil {
					next = n
					break
				}
			}
			if next != nil {
				if next.StartTime == nil {
					return tl
				}
				// shaka compares with the next S@t without
				// removing presentationTimeOffset.
				nextStart := float64(*next.StartTime)
				if start >= nextStart {
					return tl
				}
				repeat = int(math.Ceil((nextStart-start)/d)) - 1
			} else {
				if math.IsInf(periodDuration, 1) {
					return tl
				}
				if start/timescale >= periodDuration {
					return tl
				}
				repeat = int(math.Ceil((periodDuration*timescale-start)/d)) - 1
			}
		}
		if len(tl) > 0 && start != lastEnd {
			tl[len(tl)-1].end = start / timescale
		}
		// Cap absurd repeat counts: a real timeline never has more
		// segments than this, and the cap keeps hostile input bounded.
		if repeat > maxTimelineSegments-len(tl) {
			repeat = maxTimelineSegments - len(tl)
		}
		for j := 0; j <= repeat; j++ {
			end := start + d
			tl = append(tl, timeRange{
				start:         start / timescale,
				end:           end / timescale,
				unscaledStart: start,
				position:      int64(len(tl)) + startNumber,
			})
			start = end
			lastEnd = end
		}
		if len(tl) >= maxTimelineSegments {
			break
		}
	}
	return tl
}

// maxTimelineSegments bounds the segments one timeline or template yields.
const maxTimelineSegments = 1 << 20

// inherited returns the first non-nil value among the Representation,
// AdaptationSet and Period levels.
func inherited[E any, V any](levels []*E, get func(*E) *V) *V {
	for _, l := range levels {
		if l == nil {
			continue
		}
		if v := get(l); v != nil {
			return v
		}
	}
	return nil
}

// segmentTemplate generates the segments of a SegmentTemplate
// Representation (shaka's SegmentTemplate.createStreamInfo).
func (b *dashBuilder) segmentTemplate(r *dashRep) ([]*Segment, *InitSegment, error) {
	per := b.m.Periods[r.period]
	levels := []*mpd.SegmentTemplate{r.rep.SegmentTemplate, r.as.SegmentTemplate, per.SegmentTemplate}
	el := r.element + "/SegmentTemplate"
	pt := b.periods[r.period]

	timescale := 1.0
	if v := inherited(levels, func(t *mpd.SegmentTemplate) *int64 { return t.Timescale }); v != nil && *v > 0 {
		timescale = float64(*v)
	}
	var unscaledDur int64
	if v := inherited(levels, func(t *mpd.SegmentTemplate) *int64 { return t.Duration }); v != nil && *v > 0 {
		unscaledDur = *v
	}
	startNumber := int64(1)
	if v := inherited(levels, func(t *mpd.SegmentTemplate) *int64 { return t.StartNumber }); v != nil && *v >= 0 {
		startNumber = *v
	}
	pto := 0.0
	if v := inherited(levels, func(t *mpd.SegmentTemplate) *uint64 { return t.PresentationTimeOffset }); v != nil {
		pto = float64(*v)
	}
	media := inherited(levels, func(t *mpd.SegmentTemplate) *string { return t.Media })
	timeline := inherited(levels, func(t *mpd.SegmentTemplate) *mpd.SegmentTimeline { return t.SegmentTimeline })
	initTmpl := inherited(levels, func(t *mpd.SegmentTemplate) *string { return t.Initialization })

	if timeline == nil && unscaledDur == 0 {
		return nil, nil, dashError(b.u, el, "the SegmentTemplate has neither a SegmentTimeline nor @duration", nil)
	}
	if media == nil || *media == "" {
		return nil, nil, dashError(b.u, el, "the SegmentTemplate has no @media", nil)
	}
	vals := templateValues{}
	if r.id != "" {
		id := r.id
		vals.repID = &id
	}
	if r.rep.Bandwidth != nil {
		bw := *r.rep.Bandwidth
		vals.bandwidth = &bw
	}
	var init *InitSegment
	if initTmpl != nil && *initTmpl != "" {
		u, err := pickURI(b.u, el+"@initialization", r.bases, fillTemplate(*initTmpl, vals))
		if err != nil {
			return nil, nil, err
		}
		init = &InitSegment{URL: u}
	}

	var segs []*Segment
	if timeline != nil {
		tl := createTimeline(timeline.Segments, timescale, pto, orInf(pt.duration), startNumber)
		periodEnd := pt.end()
		for _, tr := range tl {
			// shaka's TimelineSegmentIndex.fitTimeline compares the
			// Period-relative start with the absolute Period end.
			if tr.start >= periodEnd || tr.end <= 0 {
				continue
			}
			n := tr.position
			t := int64(math.Round(tr.unscaledStart + pto))
			v := vals
			v.number, v.time = &n, &t
			u, err := pickURI(b.u, el+"@media", r.bases, fillTemplate(*media, v))
			if err != nil {
				return nil, nil, err
			}
			segs = append(segs, makeSegment(u, pt.start+tr.start, pt.start+tr.end, n, nil))
		}
		return segs, init, nil
	}

	segDur := float64(unscaledDur) / timescale
	periodEnd := pt.end()
	var availStart, availEnd float64
	if b.dynamic {
		if !b.astOK {
			return nil, nil, dashError(b.u, el, "a dynamic MPD with a @duration SegmentTemplate needs MPD@availabilityStartTime", nil)
		}
		edge := b.now.Sub(b.ast).Seconds()
		availStart, availEnd = max(edge-b.tsbd, 0), edge
	} else {
		if math.IsInf(periodEnd, 1) {
			return nil, nil, dashError(b.u, el, "cannot count the segments of a @duration SegmentTemplate: the Period has no known duration", nil)
		}
		availStart, availEnd = 0, math.Inf(1)
	}
	t0 := max(availStart, pt.start) - pt.start
	t1 := min(availEnd, periodEnd) - pt.start
	first := math.Ceil(t0/segDur) + float64(startNumber)
	last := math.Ceil(t1/segDur) - 1 + float64(startNumber)
	if b.dynamic {
		first = max(first, last-shakaInitialSegmentLimit+1)
	}
	if last-first+1 > maxTimelineSegments {
		return nil, nil, dashError(b.u, el, "the SegmentTemplate yields more than "+strconv.Itoa(maxTimelineSegments)+" segments", nil)
	}
	if math.IsNaN(first) || math.IsNaN(last) || first < math.MinInt64/2 || last > math.MaxInt64/2 {
		return segs, init, nil
	}
	for pos := int64(first); pos <= int64(last); pos++ {
		within := pos - startNumber
		start := float64(within)*segDur + pt.start
		end := min(start+segDur, periodEnd)
		n := pos
		var t int64
		if unscaledDur != 0 && within != 0 && (within > math.MaxInt64/unscaledDur || within < math.MinInt64/unscaledDur) {
			return nil, nil, dashError(b.u, el, "$Time$ overflows", nil)
		}
		t = within * unscaledDur
		v := vals
		v.number, v.time = &n, &t
		u, err := pickURI(b.u, el+"@media", r.bases, fillTemplate(*media, v))
		if err != nil {
			return nil, nil, err
		}
		segs = append(segs, makeSegment(u, start, end, n, nil))
	}
	return segs, init, nil
}

func orInf(d float64) float64 {
	if d == 0 {
		return math.Inf(1)
	}
	return d
}

// rangeRE is shaka's TXml.parseRange pattern.
var rangeRE = regexp.MustCompile(`([0-9]+)-([0-9]+)`)

// parseRange parses "start-end" as shaka does; ok is false when it does not
// match or the range runs backwards (no bytes to fetch).
func parseRange(s string) (*ByteRange, bool) {
	m := rangeRE.FindStringSubmatch(s)
	if m == nil {
		return nil, false
	}
	a, err1 := strconv.ParseInt(m[1], 10, 64)
	z, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || z < a {
		return nil, false
	}
	return &ByteRange{Start: a, End: z}, true
}

// segmentList generates the segments of a SegmentList Representation
// (shaka's SegmentList.createStreamInfo).
func (b *dashBuilder) segmentList(r *dashRep) ([]*Segment, *InitSegment, error) {
	per := b.m.Periods[r.period]
	levels := []*mpd.SegmentList{r.rep.SegmentList, r.as.SegmentList, per.SegmentList}
	el := r.element + "/SegmentList"
	pt := b.periods[r.period]

	var urls []*mpd.SegmentURL
	for _, l := range levels {
		if l != nil && len(l.SegmentURLs) > 0 {
			urls = l.SegmentURLs
			break
		}
	}
	timescale := 1.0
	if v := inherited(levels, func(l *mpd.SegmentList) *uint32 { return l.Timescale }); v != nil && *v > 0 {
		timescale = float64(*v)
	}
	var segDur float64
	hasDur := false
	if v := inherited(levels, func(l *mpd.SegmentList) *uint32 { return l.Duration }); v != nil && *v > 0 {
		segDur, hasDur = float64(*v)/timescale, true
	}
	startNumber := int64(1)
	if v := inherited(levels, func(l *mpd.SegmentList) *uint32 { return l.StartNumber }); v != nil {
		startNumber = int64(*v)
	}
	if startNumber == 0 {
		startNumber = 1
	}
	pto := 0.0
	if v := inherited(levels, func(l *mpd.SegmentList) *uint64 { return l.PresentationTimeOffset }); v != nil {
		pto = float64(*v)
	}
	var tl []timeRange
	hasTimeline := false
	if t := inherited(levels, func(l *mpd.SegmentList) *mpd.SegmentTimeline { return l.SegmentTimeline }); t != nil {
		tl, hasTimeline = createTimeline(t.Segments, timescale, pto, orInf(pt.duration), startNumber), true
	}
	switch {
	case !hasDur && !hasTimeline && len(urls) > 1:
		return nil, nil, dashError(b.u, el, "the SegmentList has several SegmentURLs but neither @duration nor a SegmentTimeline", nil)
	case !hasDur && pt.duration == 0 && !hasTimeline && len(urls) == 1:
		return nil, nil, dashError(b.u, el, "the SegmentList has one SegmentURL but no @duration, SegmentTimeline or Period duration", nil)
	case hasTimeline && len(tl) == 0:
		return nil, nil, dashError(b.u, el, "the SegmentList has an empty SegmentTimeline", nil)
	}
	var init *InitSegment
	if in := inherited(levels, func(l *mpd.SegmentList) *mpd.URL { return l.Initialization }); in != nil {
		is, err := b.initURL(r, el+"/Initialization", in)
		if err != nil {
			return nil, nil, err
		}
		init = is
	}
	startTime := 0.0
	if hasDur {
		startTime = segDur * float64(startNumber-1)
	} else if hasTimeline {
		startTime = tl[0].start
	}
	n := len(urls)
	if hasTimeline && len(tl) != n {
		n = min(len(tl), n)
	}
	segs := make([]*Segment, 0, n)
	prevEnd := startTime
	for i := 0; i < n; i++ {
		su := urls[i]
		if su == nil {
			continue
		}
		start := prevEnd
		var end float64
		switch {
		case hasDur:
			end = start + segDur
		case hasTimeline:
			end = tl[i].end
		default:
			end = start + pt.duration
		}
		var br *ByteRange
		if su.MediaRange != nil {
			br, _ = parseRange(*su.MediaRange)
		}
		u, err := pickURI(b.u, fmt.Sprintf("%s/SegmentURL[%d]", el, i), r.bases, strOr(su.Media, ""))
		if err != nil {
			return nil, nil, err
		}
		segs = append(segs, makeSegment(u, pt.start+start, pt.start+end, int64(i)+startNumber, br))
		prevEnd = end
	}
	return segs, init, nil
}

// initURL resolves an Initialization or RepresentationIndex element.
func (b *dashBuilder) initURL(r *dashRep, el string, in *mpd.URL) (*InitSegment, error) {
	u, err := pickURI(b.u, el, r.bases, strOr(in.SourceURL, ""))
	if err != nil {
		return nil, err
	}
	is := &InitSegment{URL: u}
	if in.Range != nil {
		br, ok := parseRange(*in.Range)
		if !ok {
			return nil, dashError(b.u, el, "bad @range "+strconv.Quote(*in.Range), nil)
		}
		is.ByteRange = br
	}
	return is, nil
}

// segmentBase records where the segment index of a SegmentBase
// Representation is; its segments come from ApplySegmentIndex.
func (b *dashBuilder) segmentBase(r *dashRep) ([]*Segment, *InitSegment, *segmentBaseInfo, error) {
	per := b.m.Periods[r.period]
	levels := []*mpd.SegmentBase{r.rep.SegmentBase, r.as.SegmentBase, per.SegmentBase}
	el := r.element + "/SegmentBase"
	pt := b.periods[r.period]
	timescale := 1.0
	if v := inherited(levels, func(s *mpd.SegmentBase) *uint32 { return s.Timescale }); v != nil && *v > 0 {
		timescale = float64(*v)
	}
	pto := 0.0
	if v := inherited(levels, func(s *mpd.SegmentBase) *uint64 { return s.PresentationTimeOffset }); v != nil {
		pto = float64(*v)
	}
	mediaURL, err := pickURI(b.u, el, r.bases, "")
	if err != nil {
		return nil, nil, nil, err
	}
	var init *InitSegment
	if in := inherited(levels, func(s *mpd.SegmentBase) *mpd.URL { return s.Initialization }); in != nil {
		if init, err = b.initURL(r, el+"/Initialization", in); err != nil {
			return nil, nil, nil, err
		}
	}
	info := &segmentBaseInfo{url: mediaURL, periodStart: pt.start, timestampOffset: pt.start - pto/timescale}
	if ri := inherited(levels, func(s *mpd.SegmentBase) *mpd.URL { return s.RepresentationIndex }); ri != nil {
		idx, err := b.initURL(r, el+"/RepresentationIndex", ri)
		if err != nil {
			return nil, nil, nil, err
		}
		info.url, info.indexRange = idx.URL, idx.ByteRange
	} else if ir := inherited(levels, func(s *mpd.SegmentBase) *string { return s.IndexRange }); ir != nil {
		br, ok := parseRange(*ir)
		if !ok {
			return nil, nil, nil, dashError(b.u, el, "bad @indexRange "+strconv.Quote(*ir), nil)
		}
		info.indexRange = br
	} else {
		return nil, nil, nil, dashError(b.u, el, "the SegmentBase has neither @indexRange nor RepresentationIndex", nil)
	}
	return nil, init, info, nil
}

// ApplySegmentIndex fills the segments of a DASH SegmentBase stream from its
// segment index: data holds the bytes of s.Index (the sidx box, starting at
// s.Index.ByteRange.Start of the media file). Segments follow shaka's
// Mp4SegmentIndexParser: start = earliest_presentation_time/timescale +
// (periodStart − presentationTimeOffset/timescale), byte ranges from the
// first_offset and referenced sizes. Hierarchical sidx (references to other
// sidx boxes) is rejected, as shaka rejects it.
func (s *Stream) ApplySegmentIndex(data []byte) error {
	sb := s.segmentBase
	if sb == nil {
		return fmt.Errorf("manifest: stream %q has no DASH SegmentBase index", s.RepresentationID)
	}
	var offset int64
	if sb.indexRange != nil {
		offset = sb.indexRange.Start
	}
	segs, err := parseSIDX(data, offset, sb.url, sb.timestampOffset)
	if err != nil {
		return fmt.Errorf("manifest: segment index of representation %q: %w", s.RepresentationID, err)
	}
	s.Segments = segs
	s.Loaded = true
	return nil
}

// parseSIDX finds the first sidx box in data (a sequence of ISO BMFF boxes)
// and converts its references into segments.
func parseSIDX(data []byte, offset int64, mediaURL string, timestampOffset float64) ([]*Segment, error) {
	for len(data) >= 8 {
		size := int64(binary.BigEndian.Uint32(data))
		typ := string(data[4:8])
		hdr := int64(8)
		if size == 1 {
			if len(data) < 16 {
				return nil, fmt.Errorf("truncated box header")
			}
			size = int64(binary.BigEndian.Uint64(data[8:]))
			hdr = 16
		} else if size == 0 {
			size = int64(len(data))
		}
		if size < hdr || size > int64(len(data)) {
			return nil, fmt.Errorf("box %q has a bad size %d", typ, size)
		}
		if typ != "sidx" {
			data = data[size:]
			continue
		}
		return sidxSegments(data[hdr:size], size, offset, mediaURL, timestampOffset)
	}
	return nil, fmt.Errorf("no sidx box")
}

func sidxSegments(b []byte, boxSize, offset int64, mediaURL string, timestampOffset float64) ([]*Segment, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("truncated sidx")
	}
	version := b[0]
	b = b[4:]             // version and flags
	need := 4 + 4 + 4 + 4 // reference_ID, timescale, 32-bit times
	if version != 0 {
		need = 4 + 4 + 8 + 8
	}
	if len(b) < need+4 {
		return nil, fmt.Errorf("truncated sidx")
	}
	timescale := binary.BigEndian.Uint32(b[4:])
	if timescale == 0 {
		return nil, fmt.Errorf("sidx timescale is 0")
	}
	var ept, firstOffset uint64
	if version == 0 {
		ept, firstOffset = uint64(binary.BigEndian.Uint32(b[8:])), uint64(binary.BigEndian.Uint32(b[12:]))
		b = b[16:]
	} else {
		ept, firstOffset = binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
		b = b[24:]
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	if len(b) < count*12 {
		return nil, fmt.Errorf("sidx has %d references but room for %d", count, len(b)/12)
	}
	if firstOffset > math.MaxInt64/2 {
		return nil, fmt.Errorf("sidx first_offset is too large")
	}
	unscaled := float64(ept)
	ts := float64(timescale)
	startByte := offset + boxSize + int64(firstOffset)
	segs := make([]*Segment, 0, count)
	for i := 0; i < count; i++ {
		chunk := binary.BigEndian.Uint32(b[i*12:])
		if chunk>>31 == 1 {
			return nil, fmt.Errorf("hierarchical sidx is not supported")
		}
		size := int64(chunk & 0x7fffffff)
		dur := float64(binary.BigEndian.Uint32(b[i*12+4:]))
		start := unscaled/ts + timestampOffset
		end := (unscaled+dur)/ts + timestampOffset
		if size == 0 || startByte > math.MaxInt64-size {
			return nil, fmt.Errorf("sidx reference %d has a bad size", i)
		}
		segs = append(segs, makeSegment(mediaURL, start, end, int64(i), &ByteRange{Start: startByte, End: startByte + size - 1}))
		unscaled += dur
		startByte += size
	}
	return segs, nil
}
