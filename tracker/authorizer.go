package tracker

import "context"

// AuthRequest describes what a client asks for, for an Authorizer to judge.
type AuthRequest struct {
	// Action is "announce" or "scrape".
	Action string
	// InfoHash is the swarm, as the 20-character binary string of the wire.
	InfoHash string
	// PeerID is the announcing peer; empty for scrapes.
	PeerID string
	// RemoteIP is the client address as the tracker sees it.
	RemoteIP string
	// Origin is the Origin header of the WebSocket upgrade.
	Origin string
}

// Authorizer decides whether a client may use a swarm. An error denies the
// request; its text becomes the failure reason sent to the client, so it
// should be short and must not leak secrets. Authorize is called for every
// announce and for every swarm a scrape names, on the event loop that
// serves the socket, so it must be fast and must not block (no network or
// disk I/O: keep what it needs in memory). In-process peers (LocalPeer)
// are not judged: they are the origin's own.
type Authorizer interface {
	Authorize(ctx context.Context, req AuthRequest) error
}

// AuthorizerFunc adapts a function to the Authorizer interface.
type AuthorizerFunc func(ctx context.Context, req AuthRequest) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, req AuthRequest) error { return f(ctx, req) }
