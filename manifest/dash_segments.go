package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
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

// timelineLimits bound the expansion of a SegmentTimeline by createTimeline.
type timelineLimits struct {
	// lo and hi are the window of entries to list: an entry is kept when
	// it ends after lo and starts before hi, both compared with the
	// entry's Period-relative times in seconds. Infinite values leave
	// that side open.
	lo, hi float64
	// max stops the expansion once the first max entries are final; 0
	// means no limit.
	max int
	// budget, when not nil, is the number of entries the expansion may
	// still create or step over (see maxMPDSegments); createTimeline
	// reports failure when it runs out.
	budget *int
}

// createTimeline is shaka-player's MpdUtils.createTimeline, in float64 with
// the same order of operations, followed by the window of lim. periodDuration
// is +Inf when unknown.
//
// shaka creates every entry and fits the timeline to the Period afterwards;
// an S@r of two billion in a 703-byte MPD then costs seconds and hundreds of
// MiB, so here the window is applied while expanding. A run stops at the
// first entry that starts at or after lim.hi (starts never decrease within a
// run), and the entries that end at or before lim.lo are passed over
// without being stored: in one step where the float64 sums are exact (see
// skippable), else one by one against the budget. The entry positions
// ($Number$) still count every entry shaka would create. Each run's last
// entry is stored whatever its times, because a gap before the next S
// stretches its end (shaka's lastEndTime fix-up), and is filtered with the
// rest at the end. ok is false when lim.budget runs out.
//
// One difference remains: after a run that stops at lim.hi, its end is
// start + n·d rather than shaka's n additions, which differ when the sums
// are not exact (see skippable). That end is the start of a following S
// without @t, whose entries then also start after the window; only the
// count of such an S with r=-1 can change, and with it the positions of
// entries that a later S@t brings back into the window, which takes a
// timeline going back in time, as no well-formed one does.
func createTimeline(ss []*mpd.SegmentTimelineSegment, timescale, pto, periodDuration float64, startNumber int64, lim timelineLimits) (tl []timeRange, ok bool) {
	lastEnd := -pto
	// count is how many entries shaka has created so far, stored here or
	// not; it gives the position of the next one.
	var count int64
	// lastStored reports whether shaka's newest entry is tl's last, the
	// one a gap before the next S stretches.
	lastStored := false
	spend := func() bool {
		if lim.budget == nil {
			return true
		}
		*lim.budget--
		return *lim.budget >= 0
	}
runs:
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
		var repeat int64
		if s.RepeatCount != nil {
			repeat = int64(*s.RepeatCount)
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
					break
				}
				// shaka compares with the next S@t without
				// removing presentationTimeOffset.
				nextStart := float64(*next.StartTime)
				if start >= nextStart {
					break
				}
				repeat = repeatCount(math.Ceil((nextStart - start) / d))
			} else {
				if math.IsInf(periodDuration, 1) {
					break
				}
				if start/timescale >= periodDuration {
					break
				}
				repeat = repeatCount(math.Ceil((periodDuration*timescale - start) / d))
			}
		}
		if lastStored && start != lastEnd {
			tl[len(tl)-1].end = start / timescale
		}
		lastStored = false
		// Step over the entries that end before the window in one
		// go, when the sum is exact (see skippable).
		j := skippable(start, d, timescale, lim.lo, repeat)
		count = addSaturating(count, j)
		start += float64(j) * d
		if lim.budget != nil {
			// Every entry that starts before lim.hi is stored or
			// stepped over, and each costs one from the budget. A
			// run that would exhaust it fails now rather than after
			// half a million entries; the margin of two covers the
			// rounding of this estimate, and a run within it is
			// left to the loop to decide.
			n := float64(repeat-j) + 1
			if !math.IsInf(lim.hi, 1) {
				n = min(n, math.Ceil((lim.hi*timescale-start)/d))
			}
			if n > float64(*lim.budget)+2 {
				return nil, false
			}
		}
		for ; j <= repeat; j++ {
			if lim.max > 0 && len(tl) > lim.max {
				// The first max entries are final: an entry is
				// only changed by the fix-up above, before the
				// next one is made.
				break runs
			}
			end := start + d
			switch {
			case start/timescale >= lim.hi:
				// This entry and the rest of the run start after
				// the window. Count them and move lastEnd past
				// them as shaka's loop would.
				rest := repeat - j + 1
				count = addSaturating(count, rest)
				lastEnd = start + float64(rest)*d
				continue runs
			case end/timescale <= lim.lo && j < repeat:
				if !spend() {
					return nil, false
				}
			default:
				if !spend() {
					return nil, false
				}
				tl = append(tl, timeRange{
					start:         start / timescale,
					end:           end / timescale,
					unscaledStart: start,
					position:      addSaturating(count, startNumber),
				})
				lastStored = j == repeat
			}
			count = addSaturating(count, 1)
			start = end
			lastEnd = end
		}
	}
	if lim.max > 0 && len(tl) > lim.max {
		tl = tl[:lim.max]
	}
	kept := tl[:0]
	for _, tr := range tl {
		if tr.end > lim.lo && tr.start < lim.hi {
			kept = append(kept, tr)
		}
	}
	return kept, true
}

// skippable returns how many leading entries of a run, from start with
// repeat repeats of d, end at or before lo and can be passed over by
// adding k·d to start at once. shaka adds d once per entry; k·d gives the
// same float64 only when every partial sum is exact, which holds while the
// sums stay within 2^53 units of the lowest set bit they share (start and
// d are integers: S@t, S@d and @presentationTimeOffset). Beyond that the
// entries are stepped over one by one, against the budget. The run's last
// entry is never skipped: a gap before the next S may stretch its end.
func skippable(start, d, timescale, lo float64, repeat int64) int64 {
	if math.IsInf(lo, -1) || repeat <= 0 {
		return 0
	}
	unit := min(lowBit(start), lowBit(d))
	limit := math.Ldexp(1, 52+max(unit, 0)) // half of 2^53 units: a margin for the rounding of the bound itself
	ok := func(k int64) bool {
		fk := float64(k)
		return math.Abs(start)+fk*d <= limit && (start+fk*d)/timescale <= lo
	}
	if !ok(1) {
		return 0
	}
	// ok holds for 0 and, once false, stays false as k grows: binary
	// search for the largest k in [1, repeat] it holds for.
	lo2, hi2 := int64(1), repeat
	for lo2 < hi2 {
		mid := lo2 + (hi2-lo2+1)/2
		if ok(mid) {
			lo2 = mid
		} else {
			hi2 = mid - 1
		}
	}
	return lo2
}

// lowBit returns the exponent of the lowest set bit of the integer x, or a
// large number for 0.
func lowBit(x float64) int {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return 1 << 20
	}
	frac, exp := math.Frexp(math.Abs(x))
	return bits.TrailingZeros64(uint64(math.Ldexp(frac, 53))) + exp - 53
}

// repeatCount turns the entry count of an S@r="-1" run, computed in
// float64, into a repeat count, clamping values no int64 holds; the window
// and the segment budget stop such a run long before its end.
func repeatCount(entries float64) int64 {
	const most = 1 << 62
	if !(entries < most) {
		return most - 1
	}
	return int64(entries) - 1
}

// addSaturating returns a+b, or the int64 limit it would cross. Positions
// of hostile timelines saturate instead of wrapping around.
func addSaturating(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

// maxMPDSegments bounds the work of one ParseDASH: the segments it lists
// over all Representations and Periods, together with the SegmentTimeline
// entries it steps over on the way. Without a bound a few hundred bytes of
// MPD (an S@r of billions, a @duration template over years) cost seconds of
// CPU and hundreds of MiB, once per Representation and Period; at the
// bound a parse takes about half a second on a 2-core machine and
// allocates about 250 MiB (90 MiB live). The limit is above real content: a two-hour film of 2-second
// segments in twenty Representations has 72,000 segments, a 24-hour DVR
// window of them in twelve 518,400. An MPD beyond it is refused with
// ErrTooManySegments rather than cut short, because a seeder that announced
// a silently shortened list would serve only the start of the content (or
// only its first Representations) with nothing in its logs to say why.
const maxMPDSegments = 1 << 19

// ErrTooManySegments is the error, wrapped in a *SyntaxError, of an MPD
// with more segments than one parse lists.
var ErrTooManySegments = errors.New("too many segments")

// tooManySegments is the error of an element whose segments exhaust the
// budget of maxMPDSegments.
func tooManySegments(u, element string) *SyntaxError {
	return dashError(u, element, "the MPD has more than "+strconv.Itoa(maxMPDSegments)+" segments, the most one parse lists", ErrTooManySegments)
}

// dashLiveEdgeAllowance is how far past the live edge, in seconds, the
// SegmentTimeline of a dynamic MPD is expanded. A packager lists a segment
// once it is complete, so only a seeder clock that runs this much slow
// would leave one out (until a later reload); and an S@r of billions cannot
// run the timeline decades past the edge.
const dashLiveEdgeAllowance = 60.0

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
	picker := newURIPicker(b.u, r.bases)
	mediaTmpl := compileTemplate(*media)
	mediaEl := el + "@media"
	var init *InitSegment
	if initTmpl != nil && *initTmpl != "" {
		u, err := picker.pick(el+"@initialization", fillTemplate(*initTmpl, vals))
		if err != nil {
			return nil, nil, err
		}
		init = &InitSegment{URL: u}
	}

	var segs []*Segment
	if timeline != nil {
		// shaka's TimelineSegmentIndex.fitTimeline drops the entries
		// that end before the Period starts or start after it ends,
		// comparing the Period-relative start with the absolute Period
		// end.
		lim := timelineLimits{lo: 0, hi: pt.end(), budget: &b.budget}
		if b.dynamic && b.astOK {
			// Only the entries inside the availability window
			// (timeShiftBufferDepth behind the live edge) and
			// dashLiveEdgeAllowance past it: shaka evicts older
			// ones on its first update, and later ones are not
			// available yet.
			edge := b.now.Sub(b.ast).Seconds() - pt.start
			lim.lo = max(edge-b.tsbd, 0)
			lim.hi = min(lim.hi, edge+dashLiveEdgeAllowance)
		}
		tl, ok := createTimeline(timeline.Segments, timescale, pto, orInf(pt.duration), startNumber, lim)
		if !ok {
			return nil, nil, tooManySegments(b.u, el)
		}
		segs = make([]*Segment, 0, len(tl))
		for _, tr := range tl {
			n := tr.position
			t := int64(math.Round(tr.unscaledStart + pto))
			v := vals
			v.number, v.time = &n, &t
			u, err := picker.pick(mediaEl, mediaTmpl.fill(v))
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
	if math.IsNaN(first) || math.IsNaN(last) || first < math.MinInt64/2 || last > math.MaxInt64/2 {
		return segs, init, nil
	}
	// The count is known before any segment is made, so an MPD over the
	// budget costs nothing here.
	if n := last - first + 1; n > 0 {
		if n > float64(b.budget) {
			return nil, nil, tooManySegments(b.u, el)
		}
		b.budget -= int(n)
		segs = make([]*Segment, 0, int(n))
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
		u, err := picker.pick(mediaEl, mediaTmpl.fill(v))
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
		// Entry i times SegmentURL i, so no more entries than URLs are
		// needed (and one, to tell an empty timeline). The SegmentURLs
		// are counted against the budget below.
		lim := timelineLimits{lo: math.Inf(-1), hi: math.Inf(1), max: max(len(urls), 1)}
		tl, _ = createTimeline(t.Segments, timescale, pto, orInf(pt.duration), startNumber, lim)
		hasTimeline = true
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
	if n > b.budget {
		return nil, nil, tooManySegments(b.u, el)
	}
	b.budget -= n
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
