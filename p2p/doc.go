// Package p2p implements the parts of the P2P Media Loader 2.x protocol that a
// Go seeding peer needs: the binary data-channel command codec (framing,
// joining, field encoding) and the swarm identity derivation (stream index,
// stream swarm string, info_hash and peer_id) for the client generations that
// are deployed in browsers.
//
// The reference for every behaviour is the wire specification kept in
// shared/spec/p2pml-v2-wire.md (sections 2.2, 2.3, 3 and 7). Where the
// JavaScript client is lenient about malformed input, this package is strict:
// a malformed command is reported as an error and should be dropped, which is
// what the browser does with every command it cannot parse.
//
// The package has no global mutable state and does not depend on Caddy.
package p2p
