// Package manifest parses HLS playlists and DASH MPDs into one model of
// streams and segments, and derives for every stream and segment what a
// P2P Media Loader peer announces: the swarm identity (stream index, stream
// swarm string, info_hash) and the segment externalId, for each client
// integration a Go seeder serves.
//
// Two integrations are modelled (see Client):
//
//   - HLSJS: hls.js with p2p-media-loader-hlsjs 2.3.1 (core 2.3). It plays
//     HLS only.
//   - Shaka: shaka-player 4.16 with p2p-media-loader-shaka 2.2.2 (core 2.2).
//     It plays HLS and DASH.
//
// The reference is the wire specification (shared/spec/p2pml-v2-wire.md,
// §2.2, §4 and §6) and, where it is silent or differs, the published
// sources of the clients themselves; every such place is documented on the
// function that implements it.
//
// Parsing uses github.com/grafov/m3u8 for HLS and
// github.com/zencoder/go-dash/v3 for DASH. Where they lose information the
// clients depend on (raw attribute strings, byte-range offsets that are
// absent rather than zero, renditions no variant references, duration
// formats, AdaptationSet BaseURL), a light scan of the manifest text fills
// the gap; see the notes on ParseHLS and ParseDASH.
//
// Errors in a manifest are reported as *SyntaxError values naming the line
// (HLS) or element (DASH). The package has no global mutable state and does
// not depend on Caddy.
package manifest
