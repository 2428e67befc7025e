// Package tracker implements a WebTorrent tracker: the WebSocket signalling
// server that P2P Media Loader and bittorrent-tracker clients use to find
// each other and exchange WebRTC offers and answers.
//
// It speaks the protocol of the npm bittorrent-tracker server as used by
// p2p-media-loader 2.x (see ../shared/spec/p2pml-v2-wire.md §2): JSON text
// frames whose info_hash, peer_id, to_peer_id and offer_id fields are
// "binary strings" of 20 code points in the range U+0000 to U+00FF.
//
// The package has no Caddy dependency. A Tracker is an http.Handler; swarm
// membership and message delivery sit behind the Swarms interface so that
// several tracker nodes can later share one swarm space.
package tracker
