// Package seeder is the origin's own peer in P2P Media Loader swarms. It
// joins the swarm of every stream of the manifests it is given, for each
// client generation, through WebTorrent trackers, connects to browsers over
// pion WebRTC data channels and serves them segments with p2p.UploadSession:
// VOD segments on demand, live segments as soon as they appear in the
// playlist. Segments come from a manifest.Fetcher (local files or HTTP)
// through a byte-capped LRU cache with single-flight fetching.
//
// The package has no Caddy dependency; the caddymodule package wraps it in
// the "p2p" app.
package seeder
