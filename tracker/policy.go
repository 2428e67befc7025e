package tracker

import "sync/atomic"

// Policy is the limits and the authorizer a socket follows. Every Tracker
// has a default policy, built from New's Config and changed by SetConfig
// and SetAuthorizer, which ServeHTTP and in-process peers use. ServePolicy
// accepts a socket under another policy, so that several entry points (the
// routes of a web server, say) share one tracker's swarms with limits and
// authorizers of their own; MoveSockets hands the sockets of one policy to
// another, for example when a new configuration replaces the entry point
// they came through. A socket reads its policy afresh for every message.
//
// Two settings act on the whole tracker rather than per socket: silent
// peers expire after the longest PeerTimeout of the policies in use, and
// the per-IP count that MaxConnsPerIP limits covers the sockets of every
// policy.
type Policy struct {
	state atomic.Pointer[policyState]
	// movedTo and closed record what MoveSockets and CloseSockets did to
	// this policy's sockets, for a socket whose upgrade completes after
	// they ran: it follows the same way.
	movedTo atomic.Pointer[Policy]
	closed  atomic.Bool
}

// maxPolicyHops bounds how many moves a new socket follows (one per
// reload that moved sockets while its upgrade was in flight).
const maxPolicyHops = 16

// current follows p's moves: the policy a socket accepted under p follows
// now, and whether its sockets were closed instead.
func (p *Policy) current() (_ *Policy, closed bool) {
	for range maxPolicyHops {
		next := p.movedTo.Load()
		if next == nil || next == p {
			break
		}
		p = next
	}
	return p, p.closed.Load()
}

// policyState is one immutable version of a Policy.
type policyState struct {
	cfg  Config // defaults filled in
	auth Authorizer
}

// NewPolicy returns a policy with cfg's limits (zero fields get their
// defaults) and auth, which may be nil to allow every swarm.
func NewPolicy(cfg Config, auth Authorizer) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := new(Policy)
	p.state.Store(&policyState{cfg: cfg.withDefaults(), auth: auth})
	return p, nil
}

func (p *Policy) load() *policyState { return p.state.Load() }

// Config returns the policy's limits, defaults filled in.
func (p *Policy) Config() Config { return p.load().cfg }

// Authorizer returns the policy's authorizer, nil if there is none.
func (p *Policy) Authorizer() Authorizer { return p.load().auth }

// SetConfig changes the policy's limits; its sockets pick up the new
// values with their next message.
func (p *Policy) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := cfg.withDefaults()
	for {
		old := p.state.Load()
		if p.state.CompareAndSwap(old, &policyState{cfg: c, auth: old.auth}) {
			return nil
		}
	}
}

// SetAuthorizer sets or, with nil, removes the policy's authorizer.
func (p *Policy) SetAuthorizer(a Authorizer) {
	for {
		old := p.state.Load()
		if p.state.CompareAndSwap(old, &policyState{cfg: old.cfg, auth: a}) {
			return
		}
	}
}
