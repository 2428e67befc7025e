package manifest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/zencoder/go-dash/v3/mpd"
)

// mpdScan is what a token-level pass over an MPD finds that go-dash v3.0.3
// does not keep: Period@start and Period@duration as written (go-dash's
// Duration type rejects years and months, rounds to nanoseconds and cannot
// tell an absent @duration from PT0S) and AdaptationSet BaseURL elements
// (go-dash's AdaptationSet has no BaseURL field).
type mpdScan struct {
	periods []scannedPeriod
	// clean is the document with the duration attributes go-dash cannot
	// parse replaced by "PT0S", or nil when none needed replacing. The
	// real values come from periods.
	clean []byte
}

type scannedPeriod struct {
	start, duration       string
	hasStart, hasDuration bool
	adaptationSets        []scannedAdaptationSet
}

type scannedAdaptationSet struct {
	baseURLs []string
}

// durationAttrRE finds a duration-valued attribute inside a start tag.
var durationAttrRE = regexp.MustCompile(`(\s)(start|duration|suggestedPresentationDelay)(\s*=\s*)("[^"]*"|'[^']*')`)

// scanMPD checks that the document is well-formed XML with an MPD root and
// collects mpdScan.
func scanMPD(u string, body []byte) (*mpdScan, error) {
	sc := &mpdScan{}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	type span struct{ start, end int64 }
	var (
		depth   int
		path    []string // local names of open elements
		inAS    *scannedAdaptationSet
		baseBuf *strings.Builder
		fix     []span // start tags whose duration attributes need fixing
		done    bool   // the root element has ended
	)
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, dashError(u, "", "the MPD is not well-formed XML", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if done {
				return nil, dashError(u, name, "element after the end of the MPD element", nil)
			}
			if depth == 0 && name != "MPD" {
				return nil, dashError(u, name, "the root element is not MPD", nil)
			}
			parent := ""
			if len(path) > 0 {
				parent = path[len(path)-1]
			}
			switch {
			case name == "Period" && depth == 1:
				p := scannedPeriod{}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "start":
						p.start, p.hasStart = a.Value, true
					case "duration":
						p.duration, p.hasDuration = a.Value, true
					}
				}
				sc.periods = append(sc.periods, p)
			case name == "AdaptationSet" && depth == 2 && parent == "Period":
				per := &sc.periods[len(sc.periods)-1]
				per.adaptationSets = append(per.adaptationSets, scannedAdaptationSet{})
				inAS = &per.adaptationSets[len(per.adaptationSets)-1]
			case name == "BaseURL" && depth == 3 && parent == "AdaptationSet" && inAS != nil:
				baseBuf = &strings.Builder{}
			}
			if (name == "Period" && depth == 1) || (name == "MPD" && depth == 0) {
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "start", "duration", "suggestedPresentationDelay":
						if name == "MPD" && a.Name.Local != "suggestedPresentationDelay" {
							continue
						}
						if _, err := mpd.ParseDuration(a.Value); err != nil {
							fix = append(fix, span{before, d.InputOffset()})
						}
					}
				}
			}
			path = append(path, name)
			depth++
		case xml.EndElement:
			depth--
			path = path[:len(path)-1]
			switch {
			case t.Name.Local == "BaseURL" && baseBuf != nil:
				inAS.baseURLs = append(inAS.baseURLs, strings.TrimSpace(baseBuf.String()))
				baseBuf = nil
			case t.Name.Local == "AdaptationSet" && depth == 2:
				inAS = nil
			}
			if depth == 0 {
				done = true
			}
		case xml.CharData:
			if baseBuf != nil {
				baseBuf.Write(t)
			}
		}
	}
	if depth != 0 || len(path) != 0 {
		return nil, dashError(u, "", "the MPD is not well-formed XML", errors.New("unexpected end of document"))
	}
	if len(fix) > 0 {
		var out bytes.Buffer
		out.Grow(len(body))
		last := int64(0)
		for _, s := range fix {
			if s.start < last || s.end > int64(len(body)) {
				continue
			}
			out.Write(body[last:s.start])
			tag := body[s.start:s.end]
			out.Write(durationAttrRE.ReplaceAllFunc(tag, func(m []byte) []byte {
				sub := durationAttrRE.FindSubmatch(m)
				val := string(sub[4][1 : len(sub[4])-1])
				if _, err := mpd.ParseDuration(val); err == nil {
					return m
				}
				q := sub[4][0]
				return []byte(string(sub[1]) + string(sub[2]) + string(sub[3]) + string(q) + "PT0S" + string(q))
			}))
			last = s.end
		}
		out.Write(body[last:])
		sc.clean = out.Bytes()
	}
	return sc, nil
}

// shakaParseDuration is shaka-player's TXml.parseDuration: an ISO 8601
// duration with years of 365 days and months of 30 days, summed in float64
// in the same order. ok is false for an invalid string.
func shakaParseDuration(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	m := shakaDurationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	num := func(x string) (float64, bool) {
		if x == "" {
			return 0, true
		}
		v, ok := jsNumber(x)
		return v, ok
	}
	var parts [6]float64
	for i := range parts {
		v, ok := num(m[i+1])
		if !ok {
			return 0, false
		}
		parts[i] = v
	}
	d := (60*60*24*365)*parts[0] +
		(60*60*24*30)*parts[1] +
		(60*60*24)*parts[2] +
		(60*60)*parts[3] +
		60*parts[4] +
		parts[5]
	if math.IsInf(d, 0) || math.IsNaN(d) {
		return 0, false
	}
	return d, true
}

var shakaDurationRE = regexp.MustCompile(`(?i)^P(?:([0-9]*)Y)?(?:([0-9]*)M)?(?:([0-9]*)D)?(?:T(?:([0-9]*)H)?(?:([0-9]*)M)?(?:([0-9.]*)S)?)?$`)

// jsNumber is Number(s) for strings of digits and dots: a decimal literal,
// or false for NaN (e.g. "1.2.3").
func jsNumber(s string) (float64, bool) {
	if strings.Count(s, ".") > 1 || s == "." {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return v, true
		}
		return 0, false
	}
	return v, true
}

func dashError(u, element, msg string, err error) *SyntaxError {
	return &SyntaxError{Format: FormatDASH, URL: u, Element: element, Msg: msg, Err: err}
}
