package manifest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zencoder/go-dash/v3/mpd"
)

// hostileMPD is the reviewer's 703-byte static MPD: four Representations
// sharing a SegmentTimeline of two billion one-second segments, in a
// 10-second Period. Before the window was applied while expanding it took
// about a second and 765 MiB.
func hostileMPD(typ, timing, timeline string) string {
	var reps strings.Builder
	for i := range 4 {
		fmt.Fprintf(&reps, `<Representation id="v%d" bandwidth="%d" width="640" height="360" codecs="avc1.4d401e"/>`, i, 100000*(i+1))
	}
	return `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="` + typ + `" ` + timing + `><Period start="PT0S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1" media="$Number$.m4s">` + timeline + `</SegmentTemplate>` + reps.String() + `</AdaptationSet></Period></MPD>`
}

// parseCost parses body and reports the bytes allocated meanwhile.
func parseCost(t *testing.T, body string, opts *Options) (*Presentation, uint64, error) {
	t.Helper()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	p, err := ParseDASH(mpdURL, []byte(body), opts)
	runtime.ReadMemStats(&m1)
	return p, m1.TotalAlloc - m0.TotalAlloc, err
}

// wantTooMany checks that err is ErrTooManySegments in a *SyntaxError.
func wantTooMany(t *testing.T, err error) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrTooManySegments) {
		t.Fatalf("error %v, want ErrTooManySegments in a *SyntaxError", err)
	}
}

// The allocation bounds below are generous (the parses allocate tens of
// KiB); what they rule out is the hundreds of MiB of the unbounded
// expansion.
const cheapParse = 4 << 20

func TestDASHHugeRepeatStaticStopsAtPeriodEnd(t *testing.T) {
	body := hostileMPD("static", `mediaPresentationDuration="PT10S"`, `<SegmentTimeline><S t="0" d="1" r="2000000000"/></SegmentTimeline>`)
	p, alloc, err := parseCost(t, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if alloc > cheapParse {
		t.Errorf("a %d-byte MPD allocated %d MiB", len(body), alloc>>20)
	}
	if len(p.Streams) != 4 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	for _, s := range p.Streams {
		wantIDs(t, s.RepresentationID, s.Segments, Shaka, []int64{0, 2, 4, 6, 8, 10, 12, 14, 16, 18})
		if got := s.Segments[9].URL; got != "https://cdn.example.com/vod/10.m4s" {
			t.Errorf("%s: last segment %s", s.RepresentationID, got)
		}
	}
}

// TestDASHTimelineNumbersPastTheWindow: the entries a run leaves out still
// count for $Number$, so a later S@t numbers its segments as shaka does.
func TestDASHTimelineNumbersPastTheWindow(t *testing.T) {
	body := `<MPD type="static"><Period duration="PT10S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate timescale="1" media="$Number$-$Time$.m4s"><SegmentTimeline>` +
		`<S t="8" d="1" r="999999999"/><S t="4" d="2" r="1"/>` +
		`</SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`
	p, alloc, err := parseCost(t, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if alloc > cheapParse {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
	var got []string
	for _, s := range p.Streams[0].Segments {
		got = append(got, strings.TrimPrefix(s.URL, "https://cdn.example.com/vod/"))
	}
	// The first run: 8 s and 9 s (numbers 1, 2), then a billion entries
	// past the Period end; the second S goes back to 4 s as entries
	// 1000000001 and 1000000002.
	want := []string{"1-8.m4s", "2-9.m4s", "1000000001-4.m4s", "1000000002-6.m4s"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("segments %v, want %v", got, want)
	}
}

func TestDASHHugeRepeatDynamicIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	timeline := `<SegmentTimeline><S t="0" d="1" r="2000000000"/><S d="1"/></SegmentTimeline>`

	// No timeShiftBufferDepth: every entry from availabilityStartTime to
	// the live edge (63 million) is in the window, more than one parse
	// lists.
	body := hostileMPD("dynamic", `availabilityStartTime="2024-01-01T00:00:00Z"`, timeline)
	_, alloc, err := parseCost(t, body, &Options{Now: now})
	wantTooMany(t, err)
	if alloc > cheapParse {
		t.Errorf("refusing the MPD allocated %d MiB", alloc>>20)
	}
	if !strings.Contains(err.Error(), "Representation[0] (id=v0)/SegmentTemplate") {
		t.Errorf("error %q does not name the element", err)
	}

	// With a one-minute window: the minute behind the live edge and
	// dashLiveEdgeAllowance past it, whatever the timeline claims
	// beyond.
	body = hostileMPD("dynamic", `availabilityStartTime="2024-01-01T00:00:00Z" timeShiftBufferDepth="PT1M"`, timeline)
	p, alloc, err := parseCost(t, body, &Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if alloc > cheapParse {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
	edge := now.Sub(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds()
	for _, s := range p.Streams {
		if want := 60 + int(dashLiveEdgeAllowance); len(s.Segments) != want {
			t.Fatalf("%s: %d segments, want %d", s.RepresentationID, len(s.Segments), want)
		}
		first := s.Segments[0]
		if first.Start != edge-60 || first.Sequence != int64(edge-60)+1 || first.ExternalID[Shaka] != int64(2*(edge-60)) {
			t.Errorf("%s: first segment %+v, want start %v", s.RepresentationID, first, edge-60)
		}
	}
}

// TestDASHTimelineDynamicWindow: a live timeline lists the segments of the
// availability window only, and the ids do not depend on the clipping.
func TestDASHTimelineDynamicWindow(t *testing.T) {
	body := `<MPD type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z" timeShiftBufferDepth="PT10S">
  <Period id="p" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="1000" media="v-$Time$.m4s">
        <SegmentTimeline><S t="0" d="2000" r="99"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="v" bandwidth="1"/>
    </AdaptationSet>
  </Period>
</MPD>`
	// 100 s after availabilityStartTime: the window is (90, 100] plus
	// the allowance, and the timeline ends at 200 s.
	now := time.Date(2026, 1, 1, 0, 1, 40, 0, time.UTC)
	p, err := ParseDASH(mpdURL, []byte(body), &Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for start := 90; start < 160; start += 2 {
		want = append(want, int64(2*start))
	}
	wantIDs(t, "window", p.Streams[0].Segments, Shaka, want)
	if got := p.Streams[0].Segments[0].URL; got != "https://cdn.example.com/vod/v-90000.m4s" {
		t.Errorf("first segment %s", got)
	}
}

func TestDASHDurationTemplateIsBounded(t *testing.T) {
	tmpl := `<SegmentTemplate media="$Number$.m4s" duration="1"/><Representation id="v" bandwidth="1"/>`
	// A static presentation of 100,000 days of one-second segments:
	// refused before a segment is made.
	body := `<MPD type="static" mediaPresentationDuration="P100000D"><Period><AdaptationSet mimeType="video/mp4">` + tmpl + `</AdaptationSet></Period></MPD>`
	_, alloc, err := parseCost(t, body, nil)
	wantTooMany(t, err)
	if alloc > cheapParse {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
	// A dynamic one that started in 1970 and keeps everything: shaka's
	// initialSegmentLimit.
	body = `<MPD type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z"><Period start="PT0S"><AdaptationSet mimeType="video/mp4">` + tmpl + `</AdaptationSet></Period></MPD>`
	p, alloc, err := parseCost(t, body, &Options{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Streams[0].Segments); n != shakaInitialSegmentLimit {
		t.Errorf("%d segments, want %d", n, shakaInitialSegmentLimit)
	}
	if alloc > cheapParse {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
}

func TestDASHRepeatToEndIsBounded(t *testing.T) {
	for _, c := range []struct {
		name, mpd string
		segments  int
	}{
		// r=-1 to a next S@t 2^62 s later, cut at the Period end.
		{"to next S@t", `<MPD type="static"><Period duration="PT10S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s"><SegmentTimeline><S t="0" d="1" r="-1"/><S t="4611686018427387904" d="1"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`, 10},
		// r=-1 to the end of a 100,000-day Period.
		{"to period end", `<MPD type="static" mediaPresentationDuration="P100000D"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s"><SegmentTimeline><S t="0" d="1" r="-1"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`, -1},
		// r=-1 in a live MPD without timeShiftBufferDepth, to a next
		// S@t far in the future: the window ends a minute past the edge,
		// but the edge is 56 years of one-second segments away.
		{"live to next S@t", `<MPD type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z"><Period start="PT0S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s"><SegmentTimeline><S t="0" d="1" r="-1"/><S t="4611686018427387904" d="1"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, alloc, err := parseCost(t, c.mpd, &Options{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
			if alloc > cheapParse {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			if c.segments < 0 {
				wantTooMany(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(p.Streams[0].Segments); n != c.segments {
				t.Errorf("%d segments, want %d", n, c.segments)
			}
		})
	}
}

// TestDASHSegmentBudgetIsPerMPD: the budget is shared by every
// Representation, so a timeline each Representation could afford alone is
// refused once they add up. The entries here lie before the Period start
// at magnitudes where they have to be stepped over one by one, which costs
// budget but no segments, so the test is cheap.
func TestDASHSegmentBudgetIsPerMPD(t *testing.T) {
	mpdWith := func(reps int) string {
		var b strings.Builder
		b.WriteString(`<MPD type="static"><Period duration="PT10S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$.m4s" presentationTimeOffset="1152921504606846976"><SegmentTimeline>`)
		fmt.Fprintf(&b, `<S t="0" d="1" r="%d"/>`, maxMPDSegments/3)
		b.WriteString(`</SegmentTimeline></SegmentTemplate>`)
		for i := range reps {
			fmt.Fprintf(&b, `<Representation id="v%d" bandwidth="%d"/>`, i, i+1)
		}
		b.WriteString(`</AdaptationSet></Period></MPD>`)
		return b.String()
	}
	p, err := ParseDASH(mpdURL, []byte(mpdWith(2)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 2 || len(p.Streams[0].Segments) != 0 {
		t.Fatalf("%d streams", len(p.Streams))
	}
	_, err = ParseDASH(mpdURL, []byte(mpdWith(3)), nil)
	wantTooMany(t, err)
	if !strings.Contains(err.Error(), "Representation[2] (id=v2)") {
		t.Errorf("error %q, want it on the third Representation", err)
	}
}

// TestDASHSegmentListTimelineStopsAtTheURLs: a SegmentList's timeline is
// expanded only as far as it has SegmentURLs.
func TestDASHSegmentListTimelineStopsAtTheURLs(t *testing.T) {
	body := `<MPD type="static"><Period duration="PT10S"><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="1"><SegmentList><SegmentTimeline><S t="0" d="2" r="2000000000"/></SegmentTimeline><SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/></SegmentList></Representation></AdaptationSet></Period></MPD>`
	p, alloc, err := parseCost(t, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if alloc > cheapParse {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
	wantIDs(t, "list", p.Streams[0].Segments, Shaka, []int64{0, 4})
}

// createTimelineFull is createTimeline as it was before the window was
// applied while expanding: shaka's MpdUtils.createTimeline creating every
// entry, then the window. It is the reference for the random comparison;
// ok is false for a timeline too long to expand in a test.
func createTimelineFull(ss []*mpd.SegmentTimelineSegment, timescale, pto, periodDuration float64, startNumber int64, lo, hi float64) (kept []timeRange, ok bool) {
	var tl []timeRange
	lastEnd := -pto
	for i, s := range ss {
		d := float64(s.Duration)
		if d == 0 {
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
			if i+1 < len(ss) {
				next := ss[i+1]
				if next.StartTime == nil {
					break
				}
				nextStart := float64(*next.StartTime)
				if start >= nextStart {
					break
				}
				repeat = int(math.Ceil((nextStart-start)/d)) - 1
			} else {
				if math.IsInf(periodDuration, 1) || start/timescale >= periodDuration {
					break
				}
				repeat = int(math.Ceil((periodDuration*timescale-start)/d)) - 1
			}
		}
		if repeat > 2000 {
			return nil, false
		}
		if len(tl) > 0 && start != lastEnd {
			tl[len(tl)-1].end = start / timescale
		}
		for j := 0; j <= repeat; j++ {
			end := start + d
			tl = append(tl, timeRange{start: start / timescale, end: end / timescale, unscaledStart: start, position: int64(len(tl)) + startNumber})
			start = end
			lastEnd = end
		}
	}
	for _, tr := range tl {
		if tr.end > lo && tr.start < hi {
			kept = append(kept, tr)
		}
	}
	return kept, true
}

// TestCreateTimelineMatchesFullExpansion compares createTimeline with the
// full expansion on random timelines: gaps, overlaps, r=-1, offsets, and
// magnitudes around 2^53 where float64 sums stop being exact, with windows
// whose edges fall exactly on entry boundaries.
func TestCreateTimelineMatchesFullExpansion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bases := []uint64{0, 7, 1 << 20, 1<<53 - 40, 1 << 53, 1<<53 + 1, 17_000_000_000_000_000, 1<<60 + 3}
	durations := []uint64{1, 2, 3, 7, 1000, 20_000_000}
	timescales := []float64{1, 3, 10, 90000, 10_000_000}
	for n := range 3000 {
		timescale := timescales[rng.IntN(len(timescales))]
		base := bases[rng.IntN(len(bases))]
		pto := 0.0
		if rng.IntN(3) == 0 {
			pto = float64(base + uint64(rng.IntN(50)))
		}
		var ss []*mpd.SegmentTimelineSegment
		at := base
		for range 1 + rng.IntN(4) {
			d := durations[rng.IntN(len(durations))]
			s := &mpd.SegmentTimelineSegment{Duration: d}
			if rng.IntN(2) == 0 || len(ss) == 0 {
				// Mostly forward, sometimes back (only where sums
				// are exact: see createTimeline's lastEnd).
				step := int64(rng.IntN(5)) * int64(d)
				if base < 1<<50 && rng.IntN(4) == 0 && uint64(step) <= at {
					step = -step
				}
				v := uint64(int64(at) + step)
				s.StartTime = &v
				at = v
			}
			r := rng.IntN(40)
			if rng.IntN(5) == 0 {
				r = -1
			}
			s.RepeatCount = &r
			at += d * uint64(max(r, 0)+1)
			ss = append(ss, s)
		}
		periodDuration := math.Inf(1)
		if rng.IntN(2) == 0 {
			periodDuration = float64(1 + rng.IntN(100))
		}
		startNumber := int64(rng.IntN(3))
		all, ok := createTimelineFull(ss, timescale, pto, periodDuration, startNumber, math.Inf(-1), math.Inf(1))
		if !ok {
			continue
		}
		// Windows with edges on entry boundaries, inside and outside.
		edge := func() float64 {
			if len(all) == 0 || rng.IntN(4) == 0 {
				return []float64{0, 5, -5, 1e12}[rng.IntN(4)]
			}
			tr := all[rng.IntN(len(all))]
			return []float64{tr.start, tr.end, math.Nextafter(tr.end, math.Inf(1))}[rng.IntN(3)]
		}
		lo, hi := math.Inf(-1), math.Inf(1)
		if rng.IntN(3) > 0 {
			lo = edge()
		}
		if rng.IntN(3) > 0 {
			hi = edge()
		}
		want, _ := createTimelineFull(ss, timescale, pto, periodDuration, startNumber, lo, hi)
		budget := maxMPDSegments
		got, ok := createTimeline(ss, timescale, pto, periodDuration, startNumber, timelineLimits{lo: lo, hi: hi, budget: &budget})
		if !ok {
			t.Fatalf("case %d: out of budget", n)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("case %d (timescale %v, pto %v, period %v, window %v…%v, timeline %s):\n got %v\nwant %v", n, timescale, pto, periodDuration, lo, hi, describeTimeline(ss), got, want)
		}
		// SegmentList's use: the first max entries, no window.
		if len(all) > 0 {
			limit := 1 + rng.IntN(len(all))
			got, _ := createTimeline(ss, timescale, pto, periodDuration, startNumber, timelineLimits{lo: math.Inf(-1), hi: math.Inf(1), max: limit})
			if fmt.Sprint(got) != fmt.Sprint(all[:limit]) {
				t.Fatalf("case %d, max %d:\n got %v\nwant %v", n, limit, got, all[:limit])
			}
		}
	}
}

func describeTimeline(ss []*mpd.SegmentTimelineSegment) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString("<S")
		if s.StartTime != nil {
			fmt.Fprintf(&b, " t=%d", *s.StartTime)
		}
		fmt.Fprintf(&b, " d=%d r=%d/>", s.Duration, *s.RepeatCount)
	}
	return b.String()
}

// TestURIPickerMatchesResolveList: pickURI's shortcut (one base parsed
// once, plain names joined to it) gives the URI of the full resolution.
func TestURIPickerMatchesResolveList(t *testing.T) {
	baseSets := [][]string{
		{"https://cdn.example.com/vod/manifest.mpd"},
		{"https://cdn.example.com/vod/"},
		{"https://a.example/x/", "https://b.example/y/z.mpd?tok=1"},
		{"https://a.example/x/", "https://b.example/y/", "https://c.example/"},
		{"https://cdn.example.com/a%2Fb/m.mpd"},
		{"https://cdn.example.com/./x/../m.mpd"},
		{"https://cdn.example.com"},
	}
	refs := []string{"", "seg-1.m4s", "v1/seg-00042.m4s", " padded.m4s ", "../up.m4s", "./here.m4s", "/root.m4s",
		"//other.example/p.m4s", "https://abs.example/q.m4s", "a b.m4s", "q.m4s?x=1", "f.m4s#frag", "$Number$.m4s",
		"a%20b.m4s", "dir//x.m4s", "x/./y.m4s", "ünï.m4s", "a:b.m4s", "@at.m4s", "~t.m4s", "bad%zz.m4s"}
	for _, bases := range baseSets {
		for _, ref := range refs {
			want, wantErr := resolveList(mpdURL, bases, []string{ref}, "E")
			got, gotErr := pickURI(mpdURL, "E", bases, ref)
			if (wantErr != nil) != (gotErr != nil) {
				t.Errorf("bases %v ref %q: error %v, want %v", bases, ref, gotErr, wantErr)
				continue
			}
			if wantErr == nil && got != want[min(1, len(want)-1)] {
				t.Errorf("bases %v ref %q: %q, want %q", bases, ref, got, want[min(1, len(want)-1)])
			}
		}
	}
}

// TestCompiledTemplateMatchesReplaceAll: splitting a template once gives
// what running shaka's pattern over it for every segment gives.
func TestCompiledTemplateMatchesReplaceAll(t *testing.T) {
	id, n, bw, tm := "v1", int64(42), int64(800000), int64(-7)
	full := templateValues{repID: &id, number: &n, bandwidth: &bw, time: &tm}
	parts := []string{"$", "$$", "Number", "Time", "Bandwidth", "RepresentationID", "SubNumber", "%0", "%05d", "%03x", "%2X", "%o", "5", "d", "x", "/", "seg-", ".m4s"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		tmpl := b.String()
		for _, v := range []templateValues{full, {}} {
			if got, want := compileTemplate(tmpl).fill(v), fillTemplateReplaceAll(tmpl, v); got != want {
				t.Fatalf("template %q: %q, want %q", tmpl, got, want)
			}
		}
	}
}

// fillTemplateReplaceAll is fillTemplate as it was, one regular expression
// pass per segment; the reference for TestCompiledTemplateMatchesReplaceAll.
func fillTemplateReplaceAll(tmpl string, v templateValues) string {
	return templateRE.ReplaceAllStringFunc(tmpl, func(match string) string {
		sm := templateRE.FindStringSubmatch(match)
		return templateID{match: match, name: sm[1], width: sm[2], format: sm[3]}.fill(v)
	})
}
