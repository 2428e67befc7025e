package manifest

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/grafov/m3u8"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// ParseHLS parses the HLS playlist body fetched from manifestURL (the URL
// after redirects). A multivariant playlist gives one Stream per distinct
// variant URL and per audio rendition with a URI, none loaded yet: load each
// with Presentation.LoadMediaPlaylist (video streams first, see there), or
// use Load. A media playlist gives a single loaded stream, as when a player
// is given a media playlist directly.
//
// Stream identities follow spec §2.2:
//
//   - hls.js: every EXT-X-STREAM-INF is a "main" stream whose index hashes
//     its attributes; every EXT-X-MEDIA TYPE=AUDIO with a URI is a
//     "secondary" stream whose index hashes its attributes and the audio
//     codecs of the first variant naming its GROUP-ID. Variants and
//     renditions that repeat a URL share the first one's stream (the
//     client keys streams by URL).
//   - shaka: ordinals from a walk of the variants shaka-player builds (see
//     shakaHLSOrdinals): video streams and audio streams are counted
//     separately in order of first appearance; audio is "secondary" when its
//     variant has video and "main" otherwise.
//
// grafov/m3u8 parses the playlist structure. It drops what the identities
// need, so a pre-scan of the text (scanMaster) supplies raw attribute values
// the way hls.js reads them: FRAME-RATE as written ("30.000", which p2p
// prints as "30"; grafov keeps a float64), VIDEO-RANGE and AVERAGE-BANDWIDTH
// strings, values with spaces (grafov trims NAME=" Surround ") or empty
// quotes (grafov skips them), BANDWIDTH beyond uint32, and renditions of
// groups no variant references (grafov only attaches renditions to the
// variants that reference their group). Blank lines are removed before
// grafov sees the text, because grafov takes a blank line after
// EXT-X-STREAM-INF for the variant URI. A leading UTF-8 byte order mark is
// ignored, as browsers drop it before the players see the text.
func ParseHLS(manifestURL string, body []byte, opts *Options) (*Presentation, error) {
	base, err := url.Parse(manifestURL)
	if err != nil {
		return nil, fmt.Errorf("manifest: parsing manifest URL %q: %w", manifestURL, err)
	}
	p := &Presentation{URL: manifestURL, BaseSwarmID: opts.swarmID(manifestURL), Format: FormatHLS}
	if isHLSMediaPlaylist(body) {
		s := &Stream{URL: manifestURL}
		p.Streams = []*Stream{s}
		// A media playlist loaded directly is one level with no
		// attributes (pre-image "0--------"); shaka guesses
		// video+audio for it, which makes it main-0.
		p.identify(s, true, p2p.StreamMain, 0)
		if err := p.LoadMediaPlaylist(s, manifestURL, body); err != nil {
			return nil, err
		}
		return p, nil
	}
	// The media playlist path above passes the body on untouched:
	// LoadMediaPlaylist removes the byte order mark itself.
	sc, err := scanMaster(manifestURL, trimBOM(body))
	if err != nil {
		return nil, err
	}
	mp, err := decodeGrafovMaster(manifestURL, sc.clean)
	if err != nil {
		return nil, err
	}
	// Cross-check grafov against the pre-scan: the same variants, in
	// order, with the same URIs.
	var gv []*m3u8.Variant
	for _, v := range mp.Variants {
		if v != nil && !v.Iframe {
			gv = append(gv, v)
		}
	}
	if len(gv) != len(sc.variants) {
		return nil, hlsError(manifestURL, 0, fmt.Sprintf("grafov/m3u8 found %d variants, the line scan %d", len(gv), len(sc.variants)), nil)
	}
	for i, v := range sc.variants {
		if gv[i].URI != v.uri {
			return nil, hlsError(manifestURL, v.uriLine, fmt.Sprintf("grafov/m3u8 read variant URI %q, the line scan %q", gv[i].URI, v.uri), nil)
		}
	}

	variants := make([]hlsVariant, len(sc.variants))
	for i, v := range sc.variants {
		abs, err := resolveRef(base, v.uri)
		if err != nil {
			return nil, hlsError(manifestURL, v.uriLine, "bad variant URI", err)
		}
		variants[i] = hlsVariant{scan: v, url: abs}
	}
	var renditions []hlsRendition
	for _, m := range sc.media {
		if m.attrs["TYPE"] != "AUDIO" {
			continue
		}
		r := hlsRendition{scan: m, group: m.attrs["GROUP-ID"]}
		if uri := m.attrs["URI"]; uri != "" {
			abs, err := resolveRef(base, uri)
			if err != nil {
				return nil, hlsError(manifestURL, m.line, "bad EXT-X-MEDIA URI", err)
			}
			r.url = abs
		}
		renditions = append(renditions, r)
	}

	// hls.js streams: one per distinct variant URL, then one per distinct
	// rendition URL.
	byURL := map[string]*Stream{}
	for i := range variants {
		v := &variants[i]
		if s, ok := byURL[v.url]; ok {
			v.stream = s
			continue
		}
		a := v.scan.attrs
		attrs := p2p.StreamAttributes{
			Kind:       p2p.KindVariant,
			Codecs:     a["CODECS"],
			Resolution: a["RESOLUTION"],
			FrameRate:  a["FRAME-RATE"],
			VideoRange: a["VIDEO-RANGE"],
		}
		attrs.Bandwidth, _ = jsParseInt(a["BANDWIDTH"])
		attrs.AverageBandwidth, _ = jsParseInt(a["AVERAGE-BANDWIDTH"])
		if attrs.Bandwidth < 0 {
			attrs.Bandwidth = 0
		}
		if attrs.AverageBandwidth < 0 {
			attrs.AverageBandwidth = 0
		}
		s := &Stream{Attributes: attrs, URL: v.url}
		v.stream = s
		byURL[v.url] = s
		p.Streams = append(p.Streams, s)
	}
	for i := range renditions {
		r := &renditions[i]
		if r.url == "" {
			continue
		}
		if s, ok := byURL[r.url]; ok {
			r.stream = s
			continue
		}
		a := r.scan.attrs
		attrs := p2p.StreamAttributes{
			Kind:     p2p.KindAudioRendition,
			Language: a["LANGUAGE"],
			Channels: a["CHANNELS"],
			Name:     a["NAME"],
		}
		// hls.js: the audioCodec of the first level whose AUDIO is the
		// rendition's group, else of the first level.
		if len(variants) > 0 {
			attrs.GroupCodecs = variants[0].scan.attrs["CODECS"]
			for _, v := range variants {
				if g, ok := v.scan.attrs["AUDIO"]; ok && g == r.group {
					attrs.GroupCodecs = v.scan.attrs["CODECS"]
					break
				}
			}
		}
		s := &Stream{Attributes: attrs, URL: r.url}
		r.stream = s
		byURL[r.url] = s
		p.Streams = append(p.Streams, s)
	}

	ords := shakaHLSOrdinals(variants, renditions)
	for _, s := range p.Streams {
		o, ok := ords[s]
		if !ok {
			o = shakaOrdinal{ordinal: -1}
		}
		p.identify(s, true, o.typ, o.ordinal)
		s.shakaAudio = o.audio
	}
	return p, nil
}

type hlsVariant struct {
	scan   scannedVariant
	url    string
	stream *Stream
}

type hlsRendition struct {
	scan   scannedMedia
	group  string
	url    string // empty for a rendition without URI (muxed)
	stream *Stream
}

type shakaOrdinal struct {
	ordinal int
	typ     p2p.StreamType
	audio   bool
}

// shakaVideoCodecPrefixes, shakaAudioCodecExact and shakaAudioCodecPrefixes
// are shaka-player's
// ManifestParserUtils.VIDEO_CODEC_REGEXPS and AUDIO_CODEC_REGEXPS, which
// decide whether a variant is audio-only.
var (
	shakaVideoCodecPrefixes = []string{"avc", "hev", "hvc", "vvc", "vvi", "vp8", "vp9", "vp08", "vp09", "av01", "mp2v", "dvh", "dva", "dav"}
	shakaAudioCodecExact    = []string{"vorbis", "Opus", "opus", "fLaC", "flac", "ac-3", "ec-3", "dts", "dtsc", "dtse", "dtsh", "dtsx", "ac3", "eac3", "apac"}
	shakaAudioCodecPrefixes = []string{"mp4a", "ac-4", "iamf", "mhm1", "mhm2"}
)

func shakaIsVideoCodec(c string) bool {
	for _, p := range shakaVideoCodecPrefixes {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

func shakaIsAudioCodec(c string) bool {
	return slices.Contains(shakaAudioCodecExact, c) || slices.ContainsFunc(shakaAudioCodecPrefixes, func(p string) bool { return strings.HasPrefix(c, p) })
}

// shakaCodecs splits CODECS as shaka's getCodecsForVariantTag_ does
// (split on commas with surrounding white space), substituting its defaults
// "avc1.42E01E,mp4a.40.2" when CODECS is absent or empty.
func shakaCodecs(codecs string) []string {
	if codecs == "" {
		return []string{"avc1.42E01E", "mp4a.40.2"}
	}
	parts := strings.Split(codecs, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// shakaHLSOrdinals reproduces the stream order p2p-media-loader-shaka 2.2.2
// sees in an HLS multivariant playlist parsed by shaka-player 4.16
// (HlsParser.createVariantsForTags_, createStreamInfosForVariantTags_ and
// createVariants_, then ManifestParserDecorator.processStreams):
//
//   - For each EXT-X-STREAM-INF in order, the audio streams are the
//     EXT-X-MEDIA TYPE=AUDIO renditions of its AUDIO group in playlist
//     order, one stream per (URI, GROUP-ID); renditions without a URI are
//     muxed audio streams that still take an audio ordinal.
//   - The variant's own stream is audio when its codecs are audio-only (and
//     then ignored if the group has renditions with a URI, otherwise it
//     replaces the group's streams) or when a rendition has the variant's
//     URI; otherwise it is video. Video streams are keyed by (URI, codecs).
//   - Variants are built "for each audio, for each video"; walking them,
//     each new video stream takes the next video ordinal and each new
//     audio stream the next audio ordinal, with type "secondary" when its
//     variant has video and "main" otherwise.
//
// Renditions in groups no variant references get no ordinal. Groups of
// type VIDEO are not modelled.
func shakaHLSOrdinals(variants []hlsVariant, renditions []hlsRendition) map[*Stream]shakaOrdinal {
	out := map[*Stream]shakaOrdinal{}
	type audioKey struct{ url, group string }
	type audioStream struct {
		stream *Stream // nil for muxed audio
		key    audioKey
		muxed  bool
	}
	created := map[audioKey]bool{}
	groups := map[string][]audioStream{}
	seenVideo := map[string]bool{}
	seenAudio := map[audioKey]bool{}
	videoCount, audioCount := 0, 0
	muxed := 0
	for _, v := range variants {
		group, hasGroup := v.scan.attrs["AUDIO"]
		var resAudio []audioStream
		if hasGroup && group != "" {
			for i := range renditions {
				r := &renditions[i]
				if r.group != group {
					continue
				}
				k := audioKey{url: r.url, group: r.group}
				if r.url == "" {
					// shaka gives a rendition without URI a new
					// fake URI each time a variant references its
					// group, so each reference adds a new muxed
					// audio stream to the group.
					muxed++
					k.url = fmt.Sprintf("\x00muxed-%d", muxed)
				}
				if !created[k] {
					created[k] = true
					groups[group] = append(groups[group], audioStream{stream: r.stream, key: k, muxed: r.url == ""})
				}
			}
			resAudio = append(resAudio, groups[group]...)
		}
		codecs := shakaCodecs(v.scan.attrs["CODECS"])
		hasV := slices.ContainsFunc(codecs, shakaIsVideoCodec)
		hasA := slices.ContainsFunc(codecs, shakaIsAudioCodec)
		hasSameURI := false
		for _, a := range resAudio {
			if !a.muxed && a.key.url == v.scan.uri {
				hasSameURI = true
			}
		}
		anyMuxed := slices.ContainsFunc(resAudio, func(a audioStream) bool { return a.muxed })
		var video *Stream
		videoKey := ""
		switch {
		case hasA && !hasV:
			if !(len(resAudio) > 0 && !anyMuxed) {
				resAudio = []audioStream{{stream: v.stream, key: audioKey{url: "\x00variant:" + v.url + "|" + strings.Join(sortedCopy(codecs), ",")}}}
			}
		case len(resAudio) == 0 && hasA && hasV:
			video, videoKey = v.stream, v.url+"|"+strings.Join(sortedCopy(codecs), ",")
		case len(resAudio) > 0 && hasSameURI:
			// Audio-only variant duplicating a rendition: ignored.
		default:
			video, videoKey = v.stream, v.url+"|"+strings.Join(sortedCopy(codecs), ",")
		}
		audios := resAudio
		if len(audios) == 0 {
			audios = []audioStream{{}}
		}
		for _, a := range audios {
			if video != nil && !seenVideo[videoKey] {
				seenVideo[videoKey] = true
				if _, ok := out[video]; !ok {
					out[video] = shakaOrdinal{ordinal: videoCount, typ: p2p.StreamMain}
				}
				videoCount++
			}
			if a.key.url != "" && !seenAudio[a.key] {
				seenAudio[a.key] = true
				typ := p2p.StreamSecondary
				if video == nil {
					typ = p2p.StreamMain
				}
				if a.stream != nil {
					if _, ok := out[a.stream]; !ok {
						out[a.stream] = shakaOrdinal{ordinal: audioCount, typ: typ, audio: true}
					}
				}
				audioCount++
			}
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// decodeGrafovMaster runs grafov/m3u8's multivariant decoder. Its errors in
// non-strict mode are ignored by grafov itself; a panic (grafov indexes its
// segment ring without checks) is turned into an error.
func decodeGrafovMaster(u string, body []byte) (mp *m3u8.MasterPlaylist, err error) {
	defer func() {
		if r := recover(); r != nil {
			mp, err = nil, hlsError(u, 0, fmt.Sprintf("grafov/m3u8 failed on the playlist: %v", r), nil)
		}
	}()
	mp = m3u8.NewMasterPlaylist()
	if err := mp.DecodeFrom(bytes.NewReader(body), false); err != nil {
		return nil, hlsError(u, 0, "grafov/m3u8 could not decode the multivariant playlist", err)
	}
	return mp, nil
}

// decodeGrafovMedia runs grafov/m3u8's media playlist decoder with room for
// n segments.
func decodeGrafovMedia(u string, body []byte, n int) (pl *m3u8.MediaPlaylist, err error) {
	defer func() {
		if r := recover(); r != nil {
			pl, err = nil, hlsError(u, 0, fmt.Sprintf("grafov/m3u8 failed on the playlist: %v", r), nil)
		}
	}()
	if n < 1 {
		n = 1
	}
	pl, err = m3u8.NewMediaPlaylist(0, uint(n))
	if err != nil {
		return nil, fmt.Errorf("manifest: allocating a media playlist: %w", err)
	}
	if err := pl.DecodeFrom(bytes.NewReader(body), false); err != nil {
		return nil, hlsError(u, 0, "grafov/m3u8 could not decode the media playlist", err)
	}
	return pl, nil
}

// resolveRef resolves ref against base as a player does (RFC 3986, with dot
// segments removed).
func resolveRef(base *url.URL, ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("parsing URI %q: %w", ref, err)
	}
	return base.ResolveReference(r).String(), nil
}
