package p2p

import (
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// StreamPreimage returns the string core 2.3 hashes into a stream index
// (generateStreamShortId fed by the hls.js 2.3.1 SegmentManager, spec
// §2.2): nine fields joined by '-':
//
//	bitrate-codecs-width-height-lang-channels-name-fps-videoRange
//
// For a variant: bitrate is Bandwidth, or AverageBandwidth when Bandwidth is
// 0; when that bitrate is 0 every other field is empty. Otherwise codecs are
// the video entries of CODECS (see HLSVideoCodecs) normalised by
// NormalizeCodecs; width and height come from RESOLUTION; fps is FRAME-RATE
// printed as JavaScript prints the number; videoRange is VIDEO-RANGE
// uppercased and trimmed; lang, channels and name are empty.
//
// For an audio rendition: bitrate is 0; codecs are the audio entries of
// GroupCodecs (see HLSAudioCodecs), normalised; lang is LANGUAGE ("und"
// gives empty, otherwise its first 2 characters lowercased); channels is
// CHANNELS up to the first '/'; name is NAME (or LANGUAGE when NAME is
// empty) lowercased and trimmed; the other fields are empty.
func StreamPreimage(attrs StreamAttributes) string {
	var bitrate, codecs, width, height, lang, channels, name, fps, videoRange string
	switch attrs.Kind {
	case KindAudioRendition:
		bitrate = "0"
		codecs = NormalizeCodecs(HLSAudioCodecs(attrs.GroupCodecs))
		if attrs.Language != "" && attrs.Language != "und" {
			lang = jsToLower(jsSliceUTF16(attrs.Language, 2))
		}
		if attrs.Channels != "" {
			channels, _, _ = strings.Cut(attrs.Channels, "/")
		}
		n := attrs.Name
		if n == "" {
			n = attrs.Language
		}
		name = jsTrim(jsToLower(n))
	default:
		b := attrs.Bandwidth
		if b == 0 {
			b = attrs.AverageBandwidth
		}
		bitrate = jsBitrate(b)
		if b != 0 {
			codecs = NormalizeCodecs(HLSVideoCodecs(attrs.Codecs))
			width, height = hlsResolution(attrs.Resolution)
			if attrs.FrameRate != "" {
				if v, ok := jsToNumber(attrs.FrameRate); ok {
					fps = jsNumberToString(v)
				}
			}
			if attrs.VideoRange != "" {
				videoRange = jsTrim(strings.ToUpper(attrs.VideoRange))
			}
		}
	}
	return strings.Join([]string{bitrate, codecs, width, height, lang, channels, name, fps, videoRange}, "-")
}

// jsBitrate prints a bitrate as the client does. hls.js turns values above
// Number.MAX_SAFE_INTEGER into Infinity.
func jsBitrate(b int64) string {
	if b > MaxSafeInteger {
		return "Infinity"
	}
	return jsNumberToString(float64(b))
}

// hlsVideoFourCCs and hlsAudioFourCCs are the sample-entry codes hls.js uses
// to sort CODECS entries by type (hls.js src/utils/codecs.ts,
// sampleEntryCodesISO, from mp4ra.org). The match is on the first four
// characters of an entry, case-sensitively.
var (
	hlsVideoFourCCs = [...]string{
		"avc1", "avc2", "avc3", "avc4", "avcp", "av01", "dav1", "drac",
		"dva1", "dvav", "dvh1", "dvhe", "encv", "hev1", "hvc1", "mjp2",
		"mp4v", "mvc1", "mvc2", "mvc3", "mvc4", "resv", "rv60", "s263",
		"svc1", "svc2", "vc-1", "vp08", "vp09",
	}
	hlsAudioFourCCs = [...]string{
		"a3ds", "ac-3", "ac-4", "alac", "alaw", "dra1", "dts+", "dts-",
		"dtsc", "dtse", "dtsh", "ec-3", "enca", "fLaC", "flac", "FLAC",
		"g719", "g726", "m4ae", "mha1", "mha2", "mhm1", "mhm2", "mlpa",
		"mp4a", "raw ", "Opus", "opus", "samr", "sawb", "sawp", "sevc",
		"sqcp", "ssmv", "twos", "ulaw",
	}
)

// HLSVideoCodecs returns what hls.js's playlist parser stores as a level's
// videoCodec for a CODECS attribute value: the entries (separated by commas
// and/or spaces) whose first four characters are a video sample-entry code,
// each cut at its first '/', joined with ','. It returns "" when there are
// none.
func HLSVideoCodecs(codecs string) string { return hlsCodecsOfType(codecs, hlsVideoFourCCs[:]) }

// HLSAudioCodecs is HLSVideoCodecs for audio sample-entry codes: the
// audioCodec hls.js assigns to a level and, through the level, to the audio
// renditions of its group.
func HLSAudioCodecs(codecs string) string { return hlsCodecsOfType(codecs, hlsAudioFourCCs[:]) }

func hlsCodecsOfType(codecs string, fourCCs []string) string {
	var out []string
	for _, c := range strings.FieldsFunc(codecs, func(r rune) bool { return r == ' ' || r == ',' }) {
		if len(c) < 4 || !slices.Contains(fourCCs, c[:4]) {
			continue
		}
		c, _, _ = strings.Cut(c, "/")
		out = append(out, c)
	}
	return strings.Join(out, ",")
}

// NormalizeCodecs applies core 2.3's codec normalisation: split on ',',
// trim and lowercase each entry, rewrite decimal "avc1.P.L" / "avc.P.L"
// (RFC 4281) as "avc1.PP00LL" / "avc.PP00LL" in hex, sort ascending and
// join with ','. For example "avc1.66.30" becomes "avc1.42001e".
func NormalizeCodecs(codecs string) string {
	if codecs == "" {
		return ""
	}
	parts := strings.Split(codecs, ",")
	for i, c := range parts {
		parts[i] = normalizeAVC(jsToLower(jsTrim(c)))
	}
	slices.SortFunc(parts, compareUTF16)
	return strings.Join(parts, ",")
}

// normalizeAVC rewrites a decimal avc codec string as generateStreamShortId
// does: exactly three dot-separated parts, the first "avc1" or "avc", the
// other two canonical decimal numbers (parseInt(x).toString() === x).
func normalizeAVC(c string) string {
	parts := strings.Split(c, ".")
	if len(parts) != 3 || (parts[0] != "avc1" && parts[0] != "avc") {
		return c
	}
	profile, ok1 := canonicalJSInt(parts[1])
	level, ok2 := canonicalJSInt(parts[2])
	if !ok1 || !ok2 {
		return c
	}
	return parts[0] + "." + jsHexPad2(profile) + "00" + jsHexPad2(level)
}

// canonicalJSInt reports whether String(parseInt(s, 10)) === s and returns
// the number.
func canonicalJSInt(s string) (float64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v, jsNumberToString(v) == s
}

// jsHexPad2 returns v.toString(16).padStart(2, "0") for an integral v.
func jsHexPad2(v float64) string {
	var h string
	if math.Abs(v) < 1<<62 {
		h = strconv.FormatInt(int64(v), 16)
	} else {
		bi, _ := big.NewFloat(v).Int(nil)
		h = bi.Text(16)
	}
	for len(h) < 2 {
		h = "0" + h
	}
	return h
}

// hlsResolution parses RESOLUTION as hls.js does (/^(\d+)x(\d+)$/ and
// parseInt), returning empty strings when it does not match.
func hlsResolution(res string) (width, height string) {
	w, h, ok := strings.Cut(res, "x")
	if !ok || !allASCIIDigits(w) || !allASCIIDigits(h) {
		return "", ""
	}
	wv, _ := strconv.ParseFloat(w, 64)
	hv, _ := strconv.ParseFloat(h, 64)
	return jsNumberToString(wv), jsNumberToString(hv)
}

func allASCIIDigits(s string) bool {
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

// isJSSpace reports whether r is removed by String.prototype.trim and
// ignored around numbers by Number(): WhiteSpace (TAB, VT, FF, ZWNBSP and
// every Zs character) and LineTerminator (LF, CR, LS, PS).
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', ' ', '\n', '\r', 0xFEFF, 0x2028, 0x2029:
		return true
	}
	return r > 0x7f && unicode.Is(unicode.Zs, r)
}

// jsTrim is String.prototype.trim.
func jsTrim(s string) string { return strings.TrimFunc(s, isJSSpace) }

// jsToLower approximates String.prototype.toLowerCase: Go's case mapping
// plus the two context rules JavaScript applies (U+0130 becomes "i̇", and a
// capital sigma at the end of a word becomes the final sigma ς). It is
// exact for ASCII, which is what playlists contain in practice.
func jsToLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	for i, r := range runes {
		switch {
		case r == 0x130:
			b.WriteString("i\u0307")
		case r == 0x3A3 && i > 0 && unicode.IsLetter(runes[i-1]) && (i+1 == len(runes) || !unicode.IsLetter(runes[i+1])):
			b.WriteRune(0x3C2)
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// jsSliceUTF16 is String.prototype.slice(0, n): the first n UTF-16 code
// units. A surrogate pair cut in half becomes U+FFFD, which is what encoding
// the lone surrogate as UTF-8 for hashing produces.
func jsSliceUTF16(s string, n int) string {
	units := utf16.Encode([]rune(s))
	if len(units) <= n {
		return s
	}
	return string(utf16.Decode(units[:n]))
}

// compareUTF16 orders strings as JavaScript's default sort does, by UTF-16
// code units.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUTF16Unit(ra), firstUTF16Unit(rb)
			if ua != ub {
				if ua < ub {
					return -1
				}
				return 1
			}
			// Same high surrogate: the low surrogates order like the
			// code points.
			if ra < rb {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	default:
		return 1
	}
}

func firstUTF16Unit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

// jsToNumber is Number(string): it returns the value and false when the
// result is NaN.
func jsToNumber(s string) (float64, bool) {
	s = jsTrim(s)
	if s == "" {
		return 0, true
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			bi, ok := new(big.Int).SetString(s[2:], base)
			if !ok || strings.ContainsAny(s[2:], "_+-") {
				return 0, false
			}
			f, _ := new(big.Float).SetInt(bi).Float64()
			return f, true
		}
	}
	if !isJSDecimalLiteral(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Out of range: ParseFloat returns ±Inf or ±0 as JavaScript does.
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return 0, false
		}
	}
	return v, true
}

// isJSDecimalLiteral matches StrDecimalLiteral without Infinity:
// [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?.
func isJSDecimalLiteral(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	intDigits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		intDigits++
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			fracDigits++
		}
	}
	if intDigits+fracDigits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expDigits := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			expDigits++
		}
		if expDigits == 0 {
			return false
		}
	}
	return i == len(s)
}

// jsNumberToString is Number.prototype.toString() for radix 10.
func jsNumberToString(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	case v == 0:
		return "0" // also for -0
	}
	if a := math.Abs(v); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	// Exponential form: shortest digits, exponent without padding and
	// with an explicit sign, e.g. "1e+21", "1.5e-7".
	s := strconv.FormatFloat(v, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	if exp == "" {
		exp = "0"
	}
	return mant + "e" + string(sign) + exp
}
