package p2p

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// InfoHashLen is the length of an info_hash: 15 hash bytes in base64.
const InfoHashLen = 20

// InfoHash is the 20-character swarm identifier P2P Media Loader announces
// to trackers (spec §2.2): the standard base64 encoding of 15 bytes of a
// hash of the stream swarm string. The 20 ASCII bytes of the string are the
// info_hash on the wire; it is neither hex nor a raw SHA-1.
type InfoHash string

// Bytes returns the 20 bytes sent on the wire, which are the ASCII bytes of
// the string. A malformed InfoHash is truncated or zero-padded.
func (h InfoHash) Bytes() [InfoHashLen]byte {
	var b [InfoHashLen]byte
	copy(b[:], h)
	return b
}

// Hex returns the wire bytes in lowercase hex (40 characters), as used in
// logs and in the spec's tables.
func (h InfoHash) Hex() string {
	b := h.Bytes()
	return hex.EncodeToString(b[:])
}

// String returns the info_hash as its 20 ASCII characters.
func (h InfoHash) String() string { return string(h) }

// StreamType is the loader a stream belongs to: "main" for video variants
// (and for audio when the content has no video) and "secondary" for audio
// renditions that accompany video.
type StreamType string

// Stream types used in stream swarm strings.
const (
	StreamMain      StreamType = "main"
	StreamSecondary StreamType = "secondary"
)

// StreamKind tells which playlist entry a stream comes from; it selects the
// fields used by the 2.3 stream index.
type StreamKind int

const (
	// KindVariant is an hls.js level: an EXT-X-STREAM-INF variant, or the
	// implicit single variant of a media playlist loaded directly (in
	// which case all attributes are left empty). DASH representations
	// also use this kind; only their Ordinal matters (core 2.2).
	KindVariant StreamKind = iota
	// KindAudioRendition is an EXT-X-MEDIA TYPE=AUDIO rendition with a
	// URI (renditions without a URI are muxed and never get a swarm).
	KindAudioRendition
)

// StreamAttributes is what a manifest parser knows about one stream. String
// fields hold attribute values as written in the playlist, with surrounding
// quotes removed and nothing else changed; the normalisation of spec §2.2 is
// applied here.
type StreamAttributes struct {
	// Kind selects between a variant and an audio rendition.
	Kind StreamKind
	// Type is the stream type used in the swarm string. When empty it
	// defaults to StreamMain for variants and StreamSecondary for audio
	// renditions, which is what hls.js does; shaka uses StreamMain for
	// audio in audio-only content, so set it explicitly there.
	Type StreamType
	// Ordinal is the 0-based position of the stream among the streams of
	// its kind (video streams and audio streams are counted separately,
	// in manifest order). It is the whole index for core 2.2 (shaka).
	Ordinal int

	// Bandwidth is BANDWIDTH, 0 when absent.
	Bandwidth int64
	// AverageBandwidth is AVERAGE-BANDWIDTH, 0 when absent; it is used
	// only when Bandwidth is 0.
	AverageBandwidth int64
	// Codecs is the variant's CODECS attribute.
	Codecs string
	// Resolution is the variant's RESOLUTION attribute, e.g. "1280x720".
	Resolution string
	// FrameRate is the variant's FRAME-RATE attribute as written, e.g.
	// "29.970".
	FrameRate string
	// VideoRange is the variant's VIDEO-RANGE attribute.
	VideoRange string

	// GroupCodecs is, for an audio rendition, the CODECS attribute of the
	// first variant whose AUDIO attribute names the rendition's GROUP-ID
	// (hls.js falls back to the first variant when none does). Only its
	// audio entries are used.
	GroupCodecs string
	// Language is the rendition's LANGUAGE attribute.
	Language string
	// Channels is the rendition's CHANNELS attribute, e.g. "6/JOC".
	Channels string
	// Name is the rendition's NAME attribute.
	Name string
}

// StreamType returns a.Type, or the hls.js default for a.Kind when a.Type is
// empty.
func (a StreamAttributes) StreamType() StreamType {
	switch {
	case a.Type != "":
		return a.Type
	case a.Kind == KindAudioRendition:
		return StreamSecondary
	default:
		return StreamMain
	}
}

// ClientGeneration derives swarm identities the way one generation of
// p2p-media-loader-core does. Peers of different generations never share a
// swarm (spec §0).
type ClientGeneration interface {
	// Name identifies the generation, e.g. "core-2.3".
	Name() string
	// PeerIDPrefix is the client's default peer_id prefix, e.g.
	// "-PM0203-". The prefix is configurable in the client, so do not
	// rely on it to recognise peers.
	PeerIDPrefix() string
	// StreamIndex returns the stream's index, the last part of the
	// stream swarm string.
	StreamIndex(attrs StreamAttributes) string
	// InfoHash hashes a stream swarm string into the info_hash.
	InfoHash(streamSwarm string) InfoHash
}

// Core23 is p2p-media-loader-core 2.3.x, used by p2p-media-loader-hlsjs
// 2.3.1: the index is StreamShortID of the stream's attributes and the
// info_hash is built from SHA-1 bytes [0:15].
type Core23 struct{}

// Name returns "core-2.3".
func (Core23) Name() string { return "core-2.3" }

// PeerIDPrefix returns "-PM0203-".
func (Core23) PeerIDPrefix() string { return "-PM0203-" }

// StreamIndex returns StreamShortID(StreamPreimage(attrs)).
func (Core23) StreamIndex(attrs StreamAttributes) string {
	return StreamShortID(StreamPreimage(attrs))
}

// InfoHash returns base64std(SHA1(streamSwarm)[0:15]).
func (Core23) InfoHash(streamSwarm string) InfoHash {
	sum := sha1.Sum([]byte(streamSwarm))
	return InfoHash(base64.StdEncoding.EncodeToString(sum[0:15]))
}

// Core22 is p2p-media-loader-core 2.2.x, bundled with
// p2p-media-loader-shaka 2.2.2: the index is the stream's ordinal and the
// info_hash is built from MD5 bytes [1:16].
type Core22 struct{}

// Name returns "core-2.2".
func (Core22) Name() string { return "core-2.2" }

// PeerIDPrefix returns "-PM0202-".
func (Core22) PeerIDPrefix() string { return "-PM0202-" }

// StreamIndex returns the decimal ordinal of the stream.
func (Core22) StreamIndex(attrs StreamAttributes) string {
	return strconv.Itoa(attrs.Ordinal)
}

// InfoHash returns base64std(MD5(streamSwarm)[1:16]).
func (Core22) InfoHash(streamSwarm string) InfoHash {
	sum := md5.Sum([]byte(streamSwarm))
	return InfoHash(base64.StdEncoding.EncodeToString(sum[1:16]))
}

// Generations returns every client generation this package knows, newest
// first.
func Generations() []ClientGeneration {
	return []ClientGeneration{Core23{}, Core22{}}
}

// SwarmIdentity is everything that identifies one stream's swarm for one
// client generation.
type SwarmIdentity struct {
	// Generation is the ClientGeneration's Name.
	Generation string
	// Type is the stream type.
	Type StreamType
	// Index is the stream index.
	Index string
	// Swarm is the stream swarm string that is hashed.
	Swarm string
	// InfoHash is announced to the tracker.
	InfoHash InfoHash
}

// Identify derives the swarm identity of the stream described by attrs for
// one client generation. baseSwarmID is the application's swarmId or,
// by default, BaseSwarmID of the manifest URL.
func Identify(gen ClientGeneration, baseSwarmID string, attrs StreamAttributes) SwarmIdentity {
	typ := attrs.StreamType()
	index := gen.StreamIndex(attrs)
	swarm := StreamSwarm(baseSwarmID, typ, index)
	return SwarmIdentity{
		Generation: gen.Name(),
		Type:       typ,
		Index:      index,
		Swarm:      swarm,
		InfoHash:   gen.InfoHash(swarm),
	}
}

// StreamSwarm returns the stream swarm string
// "v2-" + baseSwarmID + "-" + streamType + "-" + index (spec §2.2).
func StreamSwarm(baseSwarmID string, streamType StreamType, index string) string {
	return "v2-" + baseSwarmID + "-" + string(streamType) + "-" + index
}

// BaseSwarmID returns the default base swarm id for a manifest URL: the URL
// up to its first '?'. A fragment ('#…') is kept, as the client keeps it.
// Pass the URL after redirects (the manifest's response URL).
func BaseSwarmID(manifestURL string) string {
	before, _, _ := strings.Cut(manifestURL, "?")
	return before
}

// StreamShortID returns base64std(SHA1(preimage)), the 28-character stream
// index of core 2.3 (generateStreamShortId).
func StreamShortID(preimage string) string {
	sum := sha1.Sum([]byte(preimage))
	return base64.StdEncoding.EncodeToString(sum[:])
}
