package manifest

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zencoder/go-dash/v3/mpd"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// shakaSegmentIDResolution is SEGMENT_ID_RESOLUTION_IN_SECONDS of
// p2p-media-loader-shaka: a DASH segment's externalId is
// trunc(startTime / 0.5).
const shakaSegmentIDResolution = 0.5

// shakaInitialSegmentLimit is shaka-player's dash.initialSegmentLimit: at
// most this many segments of a @duration SegmentTemplate in a dynamic MPD.
const shakaInitialSegmentLimit = 1000

// ParseDASH parses the MPD body fetched from manifestURL (the URL after
// redirects). Only shaka plays DASH, so only Swarms[Shaka] and
// ExternalID[Shaka] are set.
//
// Streams and ordinals follow shaka-player 4.16 and
// p2p-media-loader-shaka 2.2.2 (spec §2.2): the video and the audio
// AdaptationSets of the first Period (by @contentType, else the type part
// of @mimeType; trick-mode sets excluded), their Representations in
// document order, with duplicates (same width, frame rate, codecs, MIME
// type, label, roles and bandwidth for video; language, channels, sampling
// rate, codecs, MIME type, label, roles and bandwidth for audio) collapsed
// as shaka's PeriodCombiner does. Video streams are main-0, main-1, …; audio
// streams are secondary-0, … when there is video, else main-0, ….
// Representations of later Periods are appended to the first Period's
// stream with the same Representation@id, else to the one at the same
// position; shaka matches them by codecs, resolution and bandwidth, which
// gives the same result for the usual repeated ladders. Representations a
// later Period adds become new streams after the others.
//
// Segment start times, and so the ids trunc(start/0.5), are computed in
// float64 in shaka's order of operations:
//
//   - SegmentTemplate with SegmentTimeline: periodStart + (S@t −
//     presentationTimeOffset)/timescale, repeats adding S@d to the unscaled
//     time; r=-1 runs to the next S@t or the Period end (an r=-1 on the last
//     S of a Period of unknown duration is dropped, as shaka does). The
//     segments are those inside the Period, and in a dynamic MPD with
//     @availabilityStartTime also inside the availability window at
//     Options.Now (@timeShiftBufferDepth behind the live edge) or at most
//     a minute past it; see createTimeline.
//   - SegmentTemplate with @duration: periodStart + (number −
//     startNumber)·(duration/timescale), for the segments inside the Period
//     (static) or inside the availability window at Options.Now (dynamic).
//   - SegmentList: periodStart + the running sum of segment durations,
//     starting at duration·(startNumber−1), or the SegmentTimeline.
//   - SegmentBase: segments come from the sidx box; see
//     Stream.ApplySegmentIndex.
//
// go-dash v3.0.3 gaps handled here (see scanMPD): AdaptationSet BaseURL,
// Period@start and @duration in the forms shaka accepts (go-dash rejects
// years and months, e.g. "P0Y0M0DT0H3M30.000S", and cannot tell an absent
// @duration from zero), and a root element other than MPD (go-dash decodes
// any root). Not supported: SegmentTemplate@index, $SubNumber$ chunks
// (@k), xlink, MPD patches, and SegmentBase in multi-Period MPDs.
//
// An MPD that lists more than 524,288 segments over all its
// Representations and Periods is refused with ErrTooManySegments (see
// maxMPDSegments), so that a few hundred hostile bytes cannot cost seconds
// of CPU and gigabytes of memory.
func ParseDASH(manifestURL string, body []byte, opts *Options) (*Presentation, error) {
	base, err := url.Parse(manifestURL)
	if err != nil {
		return nil, fmt.Errorf("manifest: parsing manifest URL %q: %w", manifestURL, err)
	}
	sc, err := scanMPD(manifestURL, body)
	if err != nil {
		return nil, err
	}
	text := body
	if sc.clean != nil {
		text = sc.clean
	}
	m, err := decodeGoDash(manifestURL, text)
	if err != nil {
		return nil, err
	}
	if len(m.Periods) == 0 {
		return nil, dashError(manifestURL, "MPD", "the MPD has no Period", nil)
	}
	if len(m.Periods) != len(sc.periods) {
		return nil, dashError(manifestURL, "MPD", fmt.Sprintf("go-dash found %d Periods, the XML scan %d", len(m.Periods), len(sc.periods)), nil)
	}
	for i, per := range m.Periods {
		if per == nil || len(per.AdaptationSets) != len(sc.periods[i].adaptationSets) {
			return nil, dashError(manifestURL, periodPath(i), "go-dash and the XML scan disagree on the AdaptationSets", nil)
		}
	}
	b := &dashBuilder{
		u:       manifestURL,
		m:       m,
		sc:      sc,
		dynamic: m.Type != nil && *m.Type == "dynamic",
		now:     time.Now(),
		budget:  maxMPDSegments,
	}
	if opts != nil && !opts.Now.IsZero() {
		b.now = opts.Now
	}
	if err := b.timing(); err != nil {
		return nil, err
	}
	mpdBases, err := resolveList(manifestURL, []string{base.String()}, m.BaseURL, "MPD/BaseURL")
	if err != nil {
		return nil, err
	}
	b.mpdBases = mpdBases

	p := &Presentation{URL: manifestURL, BaseSwarmID: opts.swarmID(manifestURL), Format: FormatDASH, Dynamic: b.dynamic}
	if err := b.build(p); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeGoDash runs go-dash's decoder, turning a panic into an error.
func decodeGoDash(u string, body []byte) (m *mpd.MPD, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, dashError(u, "MPD", fmt.Sprintf("go-dash failed on the MPD: %v", r), nil)
		}
	}()
	m, err = mpd.Read(bytes.NewReader(body))
	if err != nil {
		return nil, dashError(u, "MPD", "go-dash could not decode the MPD", err)
	}
	return m, nil
}

// dashBuilder carries the state of one ParseDASH.
type dashBuilder struct {
	u        string
	m        *mpd.MPD
	sc       *mpdScan
	dynamic  bool
	now      time.Time
	mpdBases []string
	// budget is how many more segments the parse may list (see
	// maxMPDSegments).
	budget int

	periods []periodTiming
	// ast is availabilityStartTime; tsbd the time shift buffer depth in
	// seconds (+Inf when absent).
	ast     time.Time
	astOK   bool
	tsbd    float64
	presDur float64
	hasDur  bool
}

type periodTiming struct {
	start    float64
	duration float64 // 0: unknown
}

// end is the Period end as shaka computes it: start + duration, or +Inf
// when the duration is unknown (or zero).
func (t periodTiming) end() float64 {
	if t.duration != 0 {
		return t.start + t.duration
	}
	return math.Inf(1)
}

// timing computes Period starts and durations as shaka's
// DashParser.parsePeriods_ does and parses the MPD-level times.
func (b *dashBuilder) timing() error {
	m := b.m
	if m.MediaPresentationDuration != nil && *m.MediaPresentationDuration != "" {
		v, ok := shakaParseDuration(*m.MediaPresentationDuration)
		if !ok {
			return dashError(b.u, "MPD", "bad @mediaPresentationDuration "+strconv.Quote(*m.MediaPresentationDuration), nil)
		}
		b.presDur, b.hasDur = v, true
	}
	b.tsbd = math.Inf(1)
	if m.TimeShiftBufferDepth != nil && *m.TimeShiftBufferDepth != "" {
		v, ok := shakaParseDuration(*m.TimeShiftBufferDepth)
		if !ok {
			return dashError(b.u, "MPD", "bad @timeShiftBufferDepth "+strconv.Quote(*m.TimeShiftBufferDepth), nil)
		}
		b.tsbd = v
	}
	if m.AvailabilityStartTime != nil && *m.AvailabilityStartTime != "" {
		t, ok := parseMPDDate(*m.AvailabilityStartTime)
		if !ok {
			return dashError(b.u, "MPD", "bad @availabilityStartTime "+strconv.Quote(*m.AvailabilityStartTime), nil)
		}
		b.ast, b.astOK = t, true
	}
	prevEnd := 0.0
	for i, sp := range b.sc.periods {
		start := prevEnd
		if sp.hasStart {
			v, ok := shakaParseDuration(sp.start)
			if !ok {
				return dashError(b.u, periodPath(i), "bad @start "+strconv.Quote(sp.start), nil)
			}
			start = v
		}
		var given float64
		hasGiven := false
		if sp.hasDuration {
			v, ok := shakaParseDuration(sp.duration)
			if !ok {
				return dashError(b.u, periodPath(i), "bad @duration "+strconv.Quote(sp.duration), nil)
			}
			given, hasGiven = v, true
		}
		dur, hasDur := 0.0, false
		if i+1 < len(b.sc.periods) {
			if next := b.sc.periods[i+1]; next.hasStart {
				ns, ok := shakaParseDuration(next.start)
				if !ok {
					return dashError(b.u, periodPath(i+1), "bad @start "+strconv.Quote(next.start), nil)
				}
				dur, hasDur = ns-start+0, true
			}
		} else if b.hasDur {
			dur, hasDur = b.presDur-start+0, true
		}
		if !hasDur && hasGiven {
			dur, hasDur = given, true
		}
		b.periods = append(b.periods, periodTiming{start: start, duration: dur})
		if !hasDur {
			// shaka skips every later Period: without this one's
			// duration their starts are unknown.
			break
		}
		prevEnd = start + dur
	}
	return nil
}

// parseMPDDate parses an xs:dateTime, taking a time without zone as UTC.
func parseMPDDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// dashRep is one Representation of one Period, as shaka sees it.
type dashRep struct {
	period  int
	as      *mpd.AdaptationSet
	asIdx   int
	rep     *mpd.Representation
	repIdx  int
	typ     string // "video" or "audio"
	id      string
	key     string
	element string
	bases   []string
}

// dashOutput is one combined stream: a Representation per Period.
type dashOutput struct {
	reps []*dashRep
}

// build creates the streams and their segments.
func (b *dashBuilder) build(p *Presentation) error {
	perPeriod := make([][2][]*dashRep, len(b.periods)) // [video, audio]
	for pi := range b.periods {
		reps, err := b.periodReps(pi)
		if err != nil {
			return err
		}
		perPeriod[pi] = reps
	}
	var outs [2][]*dashOutput
	for t := 0; t < 2; t++ {
		for _, r := range perPeriod[0][t] {
			outs[t] = append(outs[t], &dashOutput{reps: []*dashRep{r}})
		}
		for pi := 1; pi < len(perPeriod); pi++ {
			cands := perPeriod[pi][t]
			used := make([]bool, len(cands))
			nOld := len(outs[t])
			for oi := 0; oi < nOld; oi++ {
				o := outs[t][oi]
				first := o.reps[0]
				match := -1
				if first.id != "" {
					for ci, c := range cands {
						if c.id == first.id {
							match = ci
							break
						}
					}
				}
				if match < 0 && len(cands) > 0 && first.period == 0 {
					match = min(oi, len(cands)-1)
				}
				if match >= 0 {
					o.reps = append(o.reps, cands[match])
					used[match] = true
				}
			}
			for ci, c := range cands {
				if !used[ci] {
					outs[t] = append(outs[t], &dashOutput{reps: []*dashRep{c}})
				}
			}
		}
	}
	hasVideo := len(outs[0]) > 0
	for t := 0; t < 2; t++ {
		for ord, o := range outs[t] {
			s, err := b.stream(o, t == 1)
			if err != nil {
				return err
			}
			typ := p2p.StreamMain
			if t == 1 && hasVideo {
				typ = p2p.StreamSecondary
			}
			p.identify(s, false, typ, ord)
			s.shakaAudio = t == 1
			p.Streams = append(p.Streams, s)
		}
	}
	return nil
}

var trickModeScheme = "http://dashif.org/guidelines/trickmode"

// periodReps lists the video and audio Representations of Period pi in
// document order, with shaka's duplicates collapsed (first position, last
// value).
func (b *dashBuilder) periodReps(pi int) ([2][]*dashRep, error) {
	var out [2][]*dashRep
	per := b.m.Periods[pi]
	pbases, err := resolveList(b.u, b.mpdBases, per.BaseURL, periodPath(pi)+"/BaseURL")
	if err != nil {
		return out, err
	}
	var index [2]map[string]int
	index[0], index[1] = map[string]int{}, map[string]int{}
	for ai, as := range per.AdaptationSets {
		if as == nil {
			continue
		}
		asPath := fmt.Sprintf("%s/AdaptationSet[%d]", periodPath(pi), ai)
		trick := false
		for _, ep := range as.EssentialProperty {
			if ep.SchemeIDURI != nil && *ep.SchemeIDURI == trickModeScheme {
				trick = true
			}
		}
		if trick {
			continue
		}
		asBases, err := resolveList(b.u, pbases, b.sc.periods[pi].adaptationSets[ai].baseURLs, asPath+"/BaseURL")
		if err != nil {
			return out, err
		}
		typ := ""
		if as.ContentType != nil && *as.ContentType != "" && *as.ContentType != "application" {
			typ = *as.ContentType
		} else {
			mime := strOr(as.MimeType, "")
			if mime == "" && len(as.Representations) > 0 && as.Representations[0] != nil {
				mime = strOr(as.Representations[0].MimeType, "")
			}
			typ, _, _ = strings.Cut(mime, "/")
		}
		t := -1
		switch typ {
		case "video":
			t = 0
		case "audio":
			t = 1
		}
		if t < 0 {
			continue
		}
		roles := ""
		for _, r := range as.Roles {
			if r != nil {
				roles += strOr(r.Value, "") + ","
			}
		}
		for ri, rep := range as.Representations {
			if rep == nil {
				continue
			}
			r := &dashRep{period: pi, as: as, asIdx: ai, rep: rep, repIdx: ri, typ: typ, id: strOr(rep.ID, "")}
			r.element = fmt.Sprintf("%s/Representation[%d]", asPath, ri)
			if r.id != "" {
				r.element += " (id=" + r.id + ")"
			}
			r.bases, err = resolveList(b.u, asBases, rep.BaseURL, r.element+"/BaseURL")
			if err != nil {
				return out, err
			}
			codecs := strOr(rep.Codecs, strOr(as.Codecs, ""))
			mime := strOr(rep.MimeType, strOr(as.MimeType, ""))
			bw := ""
			if rep.Bandwidth != nil {
				bw = strconv.FormatInt(*rep.Bandwidth, 10)
			}
			if t == 0 {
				w := ""
				if rep.Width != nil {
					w = strconv.FormatInt(*rep.Width, 10)
				} else if as.Width != nil {
					w = *as.Width
				}
				fr := strOr(rep.FrameRate, strOr(as.FrameRate, ""))
				r.key = strings.Join([]string{w, fr, codecs, mime, strOr(as.Label, ""), roles, bw}, "\x00")
			} else {
				ch := ""
				if rep.AudioChannelConfiguration != nil {
					ch = strOr(rep.AudioChannelConfiguration.Value, "")
				} else if len(as.AudioChannelConfiguration) > 0 {
					ch = strOr(as.AudioChannelConfiguration[0].Value, "")
				}
				sr := ""
				if rep.AudioSamplingRate != nil {
					sr = strconv.FormatInt(*rep.AudioSamplingRate, 10)
				} else {
					sr = strOr(as.AudioSamplingRate, "")
				}
				r.key = strings.Join([]string{ch, strOr(as.Lang, ""), bw, strOr(as.Label, ""), codecs, mime, roles, sr}, "\x00")
			}
			if at, dup := index[t][r.key]; dup {
				out[t][at] = r
				continue
			}
			index[t][r.key] = len(out[t])
			out[t] = append(out[t], r)
		}
	}
	return out, nil
}

// stream builds the Stream of a combined output.
func (b *dashBuilder) stream(o *dashOutput, audio bool) (*Stream, error) {
	first := o.reps[0]
	rep, as := first.rep, first.as
	attrs := p2p.StreamAttributes{Kind: p2p.KindVariant}
	if audio {
		attrs.Kind = p2p.KindAudioRendition
		attrs.Language = strOr(as.Lang, "")
		attrs.Name = strOr(as.Label, "")
		if rep.AudioChannelConfiguration != nil {
			attrs.Channels = strOr(rep.AudioChannelConfiguration.Value, "")
		}
	}
	if rep.Bandwidth != nil {
		attrs.Bandwidth = *rep.Bandwidth
	}
	attrs.Codecs = strOr(rep.Codecs, strOr(as.Codecs, ""))
	if rep.Width != nil && rep.Height != nil {
		attrs.Resolution = strconv.FormatInt(*rep.Width, 10) + "x" + strconv.FormatInt(*rep.Height, 10)
	}
	attrs.FrameRate = strOr(rep.FrameRate, strOr(as.FrameRate, ""))
	s := &Stream{Attributes: attrs, RepresentationID: first.id, Live: b.dynamic, ShakaLive: b.dynamic, Loaded: true}
	for i, r := range o.reps {
		segs, init, sb, err := b.repSegments(r)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			s.Init = init
		}
		if sb != nil {
			if len(o.reps) > 1 || len(b.periods) > 1 {
				return nil, dashError(b.u, r.element, "SegmentBase is only supported in single-Period MPDs", nil)
			}
			s.segmentBase = sb
			s.Index = &InitSegment{URL: sb.url, ByteRange: sb.indexRange}
			s.Loaded = false
		}
		s.Segments = append(s.Segments, segs...)
	}
	return s, nil
}

// segmentBaseInfo is what ApplySegmentIndex needs to turn a sidx box into
// segments.
type segmentBaseInfo struct {
	url             string
	indexRange      *ByteRange
	timestampOffset float64 // periodStart − presentationTimeOffset/timescale
	periodStart     float64
}

// repSegments generates the segments of one Representation of one Period.
// The segment information element is inherited from the Representation,
// AdaptationSet or Period, SegmentBase first, then SegmentList, then
// SegmentTemplate, as in shaka's DashParser.parseRepresentation_.
func (b *dashBuilder) repSegments(r *dashRep) ([]*Segment, *InitSegment, *segmentBaseInfo, error) {
	per := b.m.Periods[r.period]
	switch {
	case r.rep.SegmentBase != nil || r.as.SegmentBase != nil || per.SegmentBase != nil:
		return b.segmentBase(r)
	case r.rep.SegmentList != nil || r.as.SegmentList != nil || per.SegmentList != nil:
		segs, init, err := b.segmentList(r)
		return segs, init, nil, err
	case r.rep.SegmentTemplate != nil || r.as.SegmentTemplate != nil || per.SegmentTemplate != nil:
		segs, init, err := b.segmentTemplate(r)
		return segs, init, nil, err
	}
	return nil, nil, nil, dashError(b.u, r.element, "the Representation has no SegmentBase, SegmentList or SegmentTemplate", nil)
}

// pickURI returns the URI p2p-media-loader-shaka uses for a segment:
// getUris()[1] ?? getUris()[0], where getUris is every base URL combination
// resolved against ref.
func pickURI(u, element string, bases []string, ref string) (string, error) {
	return newURIPicker(u, bases).pick(element, ref)
}

// uriPicker is pickURI for the many references of one Representation. With a
// single reference, getUris()[i] is the reference resolved against base i,
// so the choice always lands on the same base: it is parsed once here
// rather than once per segment, and plain relative references are joined
// to it without parsing (see resolver).
type uriPicker struct {
	u   string
	res *resolver
	// failure, when not empty, is why every pick fails (no base, or a
	// base that does not parse, with err).
	failure string
	err     error
}

func newURIPicker(u string, bases []string) *uriPicker {
	p := &uriPicker{u: u}
	if len(bases) == 0 {
		p.failure = "no base URL"
		return p
	}
	// resolveList parses every base, so a bad one fails whichever is
	// picked.
	var picked *url.URL
	for i, bs := range bases {
		bu, err := url.Parse(bs)
		if err != nil {
			p.failure, p.err = "bad base URL", err
			return p
		}
		if i == min(1, len(bases)-1) {
			picked = bu
		}
	}
	p.res = newResolver(picked)
	return p
}

// pick resolves ref; element names the MPD element in an error.
func (p *uriPicker) pick(element, ref string) (string, error) {
	if p.failure != "" {
		return "", dashError(p.u, element, p.failure, p.err)
	}
	abs, err := p.res.resolve(strings.TrimSpace(ref))
	if err != nil {
		return "", dashError(p.u, element, "bad URL", err)
	}
	return abs, nil
}

// resolveList is shaka's ManifestParserUtils.resolveUris: every relative URI
// resolved against every base, bases outermost; no relative URIs keeps the
// bases.
func resolveList(u string, bases, rels []string, element string) ([]string, error) {
	if len(rels) == 0 {
		return bases, nil
	}
	out := make([]string, 0, len(bases)*len(rels))
	for _, bs := range bases {
		bu, err := url.Parse(bs)
		if err != nil {
			return nil, dashError(u, element, "bad base URL", err)
		}
		for _, r := range rels {
			abs, err := resolveRef(bu, strings.TrimSpace(r))
			if err != nil {
				return nil, dashError(u, element, "bad URL", err)
			}
			out = append(out, abs)
		}
	}
	return out, nil
}

// makeSegment creates a segment with the shaka id of its start time.
func makeSegment(uri string, start, end float64, number int64, br *ByteRange) *Segment {
	s := &Segment{URL: uri, ByteRange: br, Start: start, Duration: end - start, Sequence: number}
	s.ExternalID[HLSJS] = NoExternalID
	s.ExternalID[Shaka] = shakaDASHID(start)
	return s
}

// shakaDASHID is Math.trunc(start / 0.5).
func shakaDASHID(start float64) int64 {
	v := math.Trunc(start / shakaSegmentIDResolution)
	if math.IsNaN(v) || v >= 1<<63 || v < -(1<<63) {
		return NoExternalID
	}
	return int64(v)
}

func strOr(p *string, def string) string {
	if p != nil && *p != "" {
		return *p
	}
	return def
}

func periodPath(i int) string { return "Period[" + strconv.Itoa(i) + "]" }

// templateRE is shaka's MpdUtils.fillUriTemplate pattern.
var templateRE = regexp.MustCompile(`\$(RepresentationID|Number|SubNumber|Bandwidth|Time)?(?:%0([0-9]+)([diouxX]))?\$`)

// templateValues are the substitutions of one segment URL; a nil pointer
// leaves its identifier in place, as shaka does.
type templateValues struct {
	repID     *string
	number    *int64
	bandwidth *int64
	time      *int64
}

// fillTemplate is shaka's MpdUtils.fillUriTemplate.
func fillTemplate(tmpl string, v templateValues) string {
	return compileTemplate(tmpl).fill(v)
}

// uriTemplate is a SegmentTemplate URI split at its identifiers. Which
// parts of a template are identifiers depends only on the template, so
// splitting it once per Representation spares each segment a run of the
// regular expression.
type uriTemplate struct {
	// lits[i] precedes ids[i]; the last literal follows the last
	// identifier, so len(lits) == len(ids)+1.
	lits []string
	ids  []templateID
}

// templateID is one match of templateRE.
type templateID struct {
	match, name, width, format string
}

// compileTemplate splits tmpl at the matches of templateRE, the ones
// shaka's fillUriTemplate replaces.
func compileTemplate(tmpl string) *uriTemplate {
	t := &uriTemplate{}
	last := 0
	if strings.Contains(tmpl, "$") {
		for _, m := range templateRE.FindAllStringSubmatchIndex(tmpl, -1) {
			group := func(i int) string {
				if m[2*i] < 0 {
					return ""
				}
				return tmpl[m[2*i]:m[2*i+1]]
			}
			t.lits = append(t.lits, tmpl[last:m[0]])
			t.ids = append(t.ids, templateID{match: tmpl[m[0]:m[1]], name: group(1), width: group(2), format: group(3)})
			last = m[1]
		}
	}
	t.lits = append(t.lits, tmpl[last:])
	return t
}

// fill substitutes v.
func (t *uriTemplate) fill(v templateValues) string {
	if len(t.ids) == 0 {
		return t.lits[0]
	}
	var b strings.Builder
	for i, id := range t.ids {
		b.WriteString(t.lits[i])
		b.WriteString(id.fill(v))
	}
	b.WriteString(t.lits[len(t.ids)])
	return b.String()
}

// fill returns the replacement of one identifier, or its text when v has
// no value for it, as shaka leaves it in place.
func (id templateID) fill(v templateValues) string {
	if id.match == "$$" {
		return "$"
	}
	var s string
	switch id.name {
	case "RepresentationID":
		if v.repID == nil {
			return id.match
		}
		return *v.repID
	case "Number", "Bandwidth", "Time":
		var n *int64
		switch id.name {
		case "Number":
			n = v.number
		case "Bandwidth":
			n = v.bandwidth
		default:
			n = v.time
		}
		if n == nil {
			return id.match
		}
		switch id.format {
		case "o":
			s = strconv.FormatInt(*n, 8)
		case "x":
			s = strconv.FormatInt(*n, 16)
		case "X":
			s = strings.ToUpper(strconv.FormatInt(*n, 16))
		default:
			s = strconv.FormatInt(*n, 10)
		}
	default:
		return id.match
	}
	width, err := strconv.Atoi(id.width)
	if err != nil || width < 1 {
		width = 1
	}
	if width > 64 {
		width = 64
	}
	if pad := width - len(s); pad > 0 {
		s = strings.Repeat("0", pad) + s
	}
	return s
}
