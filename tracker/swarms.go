package tracker

import (
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Endpoint is where messages for a peer go: one client socket. A cluster
// implementation of Swarms can hand out Endpoints that forward to the node
// holding the socket.
type Endpoint interface {
	// Send sends msg, a complete JSON text message, to the socket, or
	// queues a copy: the caller may reuse msg once Send returns. It reports
	// false when the socket is gone or has been dropped.
	Send(msg []byte) bool
}

// TrustedEndpoint is an Endpoint that may report itself as the origin's
// own peer: only such a member can be picked as the seeder for
// Config.SeederFirst, because a peer id prefix is something any client can
// claim. The tracker's in-process peers (LocalPeer) are trusted and its
// sockets are not; a clustered Swarms can implement it on the endpoints
// that forward to another node's in-process peer.
type TrustedEndpoint interface {
	Endpoint
	// Trusted reports whether the endpoint is the origin's own peer.
	Trusted() bool
}

// isTrusted reports whether ep is a TrustedEndpoint that is trusted.
func isTrusted(ep Endpoint) bool {
	te, ok := ep.(TrustedEndpoint)
	return ok && te.Trusted()
}

// Counts are the seeders and leechers of one swarm.
type Counts struct {
	Complete   int
	Incomplete int
}

// ScrapeEntry is one swarm's counts as a scrape reports them.
type ScrapeEntry struct {
	InfoHash   string
	Complete   int
	Incomplete int
	Downloaded int64
}

// ErrPeerIDTaken is returned when a socket announces a peer_id that another
// socket already holds in the same swarm.
var ErrPeerIDTaken = errors.New("peer_id is in use by another connection")

// Swarms is swarm membership plus message delivery: everything the
// protocol code needs to know about other peers. MemorySwarms serves a
// single node; a clustered implementation (for example over NATS) can
// share membership between nodes and deliver to remote sockets through
// proxy Endpoints, without any change to the protocol code.
type Swarms interface {
	// Announce adds or refreshes peerID in the swarm infoHash, owned by ep.
	// seeding marks a peer that has everything; completed counts a
	// "completed" event. It fails with ErrPeerIDTaken if another endpoint
	// owns that peer id. added reports whether the peer is new to the swarm.
	Announce(infoHash, peerID string, ep Endpoint, seeding, completed bool, now time.Time) (c Counts, added bool, err error)
	// Leave removes peerID from the swarm if ep owns it.
	Leave(infoHash, peerID string, ep Endpoint) bool
	// PickPeers appends to dst up to n distinct random members of the swarm
	// whose endpoint is not exclude.
	PickPeers(dst []Endpoint, infoHash string, exclude Endpoint, n int) []Endpoint
	// PickSeeder returns a random seeding member (one that announced
	// left=0 or completed) whose peer id starts with prefix, whose
	// endpoint is trusted (see TrustedEndpoint) and is not exclude: the
	// origin's own seeding peer.
	PickSeeder(infoHash, prefix string, exclude Endpoint) (Endpoint, bool)
	// Lookup returns the endpoint of peerID in the swarm.
	Lookup(infoHash, peerID string) (Endpoint, bool)
	// Scrape returns the counts of one swarm.
	Scrape(infoHash string) (ScrapeEntry, bool)
	// ScrapeAll returns up to limit swarms, largest first.
	ScrapeAll(limit int) []ScrapeEntry
	// Expire removes peers last seen before deadline and returns how many.
	Expire(deadline time.Time) int
	// Totals returns the number of swarms and peers.
	Totals() (swarms, peers int)
}

// MemorySwarms is the in-process Swarms implementation. It is sharded by
// info_hash so that announces in different swarms rarely contend.
type MemorySwarms struct {
	seed   maphash.Seed
	shards [64]swarmShard
}

type swarmShard struct {
	mu     sync.Mutex
	swarms map[string]*swarm
}

// swarm keeps its members in a slice for O(1) random picks and an index map
// for O(1) lookup and removal.
type swarm struct {
	peers      []*member
	seeds      []*member // the complete members, a few at most
	index      map[string]int32
	complete   int
	downloaded int64
}

type member struct {
	peerID   string
	ep       Endpoint
	lastSeen int64 // unix seconds
	complete bool
}

// NewMemorySwarms returns an empty in-process swarm registry.
func NewMemorySwarms() *MemorySwarms {
	m := &MemorySwarms{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].swarms = make(map[string]*swarm)
	}
	return m
}

func (m *MemorySwarms) shard(infoHash string) *swarmShard {
	return &m.shards[maphash.String(m.seed, infoHash)%uint64(len(m.shards))]
}

// Announce implements Swarms.
func (m *MemorySwarms) Announce(infoHash, peerID string, ep Endpoint, seeding, completed bool, now time.Time) (Counts, bool, error) {
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil {
		s = &swarm{index: make(map[string]int32, 2)}
		sh.swarms[infoHash] = s
	}
	added := false
	if i, ok := s.index[peerID]; ok {
		p := s.peers[i]
		if p.ep != ep {
			return s.counts(), false, ErrPeerIDTaken
		}
		p.lastSeen = now.Unix()
		if seeding && !p.complete {
			p.complete = true
			s.complete++
			s.seeds = append(s.seeds, p)
		}
	} else {
		p := &member{peerID: peerID, ep: ep, lastSeen: now.Unix(), complete: seeding}
		s.index[peerID] = int32(len(s.peers))
		s.peers = append(s.peers, p)
		if seeding {
			s.complete++
			s.seeds = append(s.seeds, p)
		}
		added = true
	}
	if completed {
		s.downloaded++
	}
	return s.counts(), added, nil
}

func (s *swarm) counts() Counts {
	return Counts{Complete: s.complete, Incomplete: len(s.peers) - s.complete}
}

// remove deletes member i by swapping the last member into its place.
func (s *swarm) remove(i int32) {
	p := s.peers[i]
	if p.complete {
		s.complete--
		for j, q := range s.seeds {
			if q == p {
				last := len(s.seeds) - 1
				s.seeds[j] = s.seeds[last]
				s.seeds[last] = nil
				s.seeds = s.seeds[:last]
				break
			}
		}
	}
	last := int32(len(s.peers) - 1)
	if i != last {
		s.peers[i] = s.peers[last]
		s.index[s.peers[i].peerID] = i
	}
	s.peers[last] = nil
	s.peers = s.peers[:last]
	delete(s.index, p.peerID)
	// Give memory back after a swarm shrinks a lot.
	if cap(s.peers) > 64 && len(s.peers) < cap(s.peers)/4 {
		s.peers = append(make([]*member, 0, cap(s.peers)/2), s.peers...)
	}
}

// Leave implements Swarms.
func (m *MemorySwarms) Leave(infoHash, peerID string, ep Endpoint) bool {
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil {
		return false
	}
	i, ok := s.index[peerID]
	if !ok || s.peers[i].ep != ep {
		return false
	}
	s.remove(i)
	if len(s.peers) == 0 {
		delete(sh.swarms, infoHash)
	}
	return true
}

// PickPeers implements Swarms.
func (m *MemorySwarms) PickPeers(dst []Endpoint, infoHash string, exclude Endpoint, n int) []Endpoint {
	if n <= 0 {
		return dst
	}
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil {
		return dst
	}
	size := len(s.peers)
	// Small swarm: take everyone else, then shuffle the picks.
	if size <= 2*n+1 {
		start := len(dst)
		for _, p := range s.peers {
			if p.ep != exclude {
				dst = append(dst, p.ep)
			}
		}
		picked := dst[start:]
		rand.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
		if len(picked) > n {
			dst = dst[:start+n]
		}
		return dst
	}
	// Large swarm: sample random positions, skipping repeats. The swarm has
	// more than twice n other members, so this ends after a few tries.
	start := len(dst)
	var seen [64]int32
	tried := seen[:0]
	for attempts := 0; len(dst)-start < n && attempts < 8*n; attempts++ {
		i := int32(rand.IntN(size))
		dup := false
		for _, j := range tried {
			if j == i {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		tried = append(tried, i)
		if ep := s.peers[i].ep; ep != exclude {
			dst = append(dst, ep)
		}
	}
	return dst
}

// PickSeeder implements Swarms.
func (m *MemorySwarms) PickSeeder(infoHash, prefix string, exclude Endpoint) (Endpoint, bool) {
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil || len(s.seeds) == 0 {
		return nil, false
	}
	// Start at a random seed so that several seeders share new peers.
	n := len(s.seeds)
	off := rand.IntN(n)
	for k := range n {
		p := s.seeds[(off+k)%n]
		if p.ep != exclude && strings.HasPrefix(p.peerID, prefix) && isTrusted(p.ep) {
			return p.ep, true
		}
	}
	return nil, false
}

// Lookup implements Swarms.
func (m *MemorySwarms) Lookup(infoHash, peerID string) (Endpoint, bool) {
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil {
		return nil, false
	}
	i, ok := s.index[peerID]
	if !ok {
		return nil, false
	}
	return s.peers[i].ep, true
}

// Scrape implements Swarms.
func (m *MemorySwarms) Scrape(infoHash string) (ScrapeEntry, bool) {
	sh := m.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.swarms[infoHash]
	if s == nil {
		return ScrapeEntry{InfoHash: infoHash}, false
	}
	c := s.counts()
	return ScrapeEntry{InfoHash: infoHash, Complete: c.Complete, Incomplete: c.Incomplete, Downloaded: s.downloaded}, true
}

// ScrapeAll implements Swarms.
func (m *MemorySwarms) ScrapeAll(limit int) []ScrapeEntry {
	var out []ScrapeEntry
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for ih, s := range sh.swarms {
			c := s.counts()
			out = append(out, ScrapeEntry{InfoHash: ih, Complete: c.Complete, Incomplete: c.Incomplete, Downloaded: s.downloaded})
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Complete+out[i].Incomplete, out[j].Complete+out[j].Incomplete
		if a != b {
			return a > b
		}
		return out[i].InfoHash < out[j].InfoHash
	})
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Expire implements Swarms.
func (m *MemorySwarms) Expire(deadline time.Time) int {
	cut := deadline.Unix()
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for ih, s := range sh.swarms {
			for j := int32(len(s.peers)) - 1; j >= 0; j-- {
				if s.peers[j].lastSeen < cut {
					s.remove(j)
					n++
				}
			}
			if len(s.peers) == 0 {
				delete(sh.swarms, ih)
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// Totals implements Swarms.
func (m *MemorySwarms) Totals() (swarms, peers int) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		swarms += len(sh.swarms)
		for _, s := range sh.swarms {
			peers += len(s.peers)
		}
		sh.mu.Unlock()
	}
	return swarms, peers
}

var _ Swarms = (*MemorySwarms)(nil)
