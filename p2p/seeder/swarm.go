package seeder

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// swarm is the seeder's membership in one swarm: one media stream as one
// client generation sees it.
type swarm struct {
	s        *Seeder
	st       *stream
	ms       *manifest.Stream
	client   manifest.Client
	infoHash p2p.InfoHash
	// live is fixed at load; ms's own fields change under a follower.
	live bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // asynchronous peer closes

	mu         sync.Mutex
	closed     bool
	segs       map[int64]*manifest.Segment // servable, by external id
	avail      map[int64]bool              // announceable
	members    map[*peer]struct{}          // every PeerConnection, offers included
	peers      map[string]*peer            // connected or connecting, by remote peer id
	holders    map[int64]int               // how many peers announce each id as loaded
	announced  []int64                     // the ids last announced
	timer      *time.Timer                 // pending announcement
	incomplete int                         // browsers in the swarm, as the tracker last said
	finished   p2p.UploadStats             // totals of closed sessions
}

func newSwarm(s *Seeder, st *stream, ms *manifest.Stream, c manifest.Client) *swarm {
	ctx, cancel := context.WithCancel(st.ctx)
	return &swarm{
		s: s, st: st, ms: ms, client: c, infoHash: ms.Swarms[c].InfoHash, live: ms.Live,
		ctx: ctx, cancel: cancel,
		segs:    make(map[int64]*manifest.Segment),
		avail:   make(map[int64]bool),
		members: make(map[*peer]struct{}),
		peers:   make(map[string]*peer),
		holders: make(map[int64]int),
	}
}

// setSegments replaces the servable segments with current plus removed
// (kept servable for viewers a refresh behind). If all is set every
// segment is announceable at once (VOD); otherwise only those already
// announceable stay so, until markAvailable (live).
func (sw *swarm) setSegments(current, removed []*manifest.Segment, all bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	segs := make(map[int64]*manifest.Segment, len(current)+len(removed))
	avail := make(map[int64]bool, len(current))
	for _, list := range [][]*manifest.Segment{removed, current} {
		for _, seg := range list {
			if id := seg.ExternalID[sw.client]; id != manifest.NoExternalID {
				segs[id] = seg
			}
		}
	}
	for _, seg := range current {
		id := seg.ExternalID[sw.client]
		if id != manifest.NoExternalID && (all || sw.avail[id]) {
			avail[id] = true
		}
	}
	sw.segs, sw.avail = segs, avail
	sw.scheduleAnnounceLocked()
}

// markAvailable makes a fetched segment announceable.
func (sw *swarm) markAvailable(seg *manifest.Segment) {
	id := seg.ExternalID[sw.client]
	if id == manifest.NoExternalID {
		return
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if _, ok := sw.segs[id]; !ok || sw.avail[id] {
		return
	}
	sw.avail[id] = true
	sw.scheduleAnnounceLocked()
}

// Segment implements p2p.SegmentSource for the swarm's upload sessions.
func (sw *swarm) Segment(ctx context.Context, id int64) ([]byte, bool, error) {
	sw.mu.Lock()
	seg := sw.segs[id]
	sw.mu.Unlock()
	if seg == nil {
		return nil, false, nil
	}
	data, err := sw.s.fetchSegment(ctx, seg)
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// announcementLocked returns the ids to announce: every announceable id,
// or with the rare-only policy those fewer than RareThreshold peers hold.
func (sw *swarm) announcementLocked() []int64 {
	ids := make([]int64, 0, len(sw.avail))
	for id := range sw.avail {
		if sw.s.cfg.RareOnly && sw.holders[id] >= sw.s.cfg.RareThreshold {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// scheduleAnnounceLocked sends the announcement to every peer shortly, so
// that a burst of changes makes one announcement.
func (sw *swarm) scheduleAnnounceLocked() {
	if sw.closed || sw.timer != nil || len(sw.peers) == 0 {
		return
	}
	sw.timer = time.AfterFunc(announceDelay, sw.announceAll)
}

// announceAll sends the current announcement to every connected peer if
// it changed since the last one.
func (sw *swarm) announceAll() {
	sw.mu.Lock()
	sw.timer = nil
	if sw.closed {
		sw.mu.Unlock()
		return
	}
	ids := sw.announcementLocked()
	if slices.Equal(ids, sw.announced) {
		sw.mu.Unlock()
		return
	}
	sw.announced = ids
	var sessions []*p2p.UploadSession
	for _, p := range sw.peers {
		if sess := p.uploadSession(); sess != nil {
			sessions = append(sessions, sess)
		}
	}
	sw.mu.Unlock()
	for _, sess := range sessions {
		// A failed send means the channel is closing; the peer goes
		// away on its own.
		_, _ = sess.Announce(ids)
	}
}

// currentAnnouncement returns the ids a newly opened channel announces.
func (sw *swarm) currentAnnouncement() []int64 {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	// The next broadcast must not be skipped as unchanged: this peer
	// may get a list the others never had.
	sw.announced = nil
	return sw.announcementLocked()
}

// peerAnnounced records what a peer holds, for the rare-only policy.
func (sw *swarm) peerAnnounced(p *peer, a p2p.SegmentsAnnouncement) {
	if !sw.s.cfg.RareOnly {
		return
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.peers[p.remoteID] != p {
		return
	}
	for id := range p.loaded {
		sw.holders[id]--
		if sw.holders[id] <= 0 {
			delete(sw.holders, id)
		}
	}
	p.loaded = make(map[int64]struct{}, len(a.Loaded))
	for _, id := range a.Loaded {
		// Only our own ids count, which bounds the map by the playlist.
		if _, ok := sw.segs[id]; !ok {
			continue
		}
		if _, dup := p.loaded[id]; dup {
			continue
		}
		p.loaded[id] = struct{}{}
		sw.holders[id]++
	}
	sw.scheduleAnnounceLocked()
}

// addMember registers a PeerConnection of the swarm; it fails once the
// swarm is closed.
func (sw *swarm) addMember(p *peer) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		return false
	}
	sw.members[p] = struct{}{}
	return true
}

// claimPeer binds p to a remote peer id, unless that peer is already
// connected (browsers offer again on every re-announce).
func (sw *swarm) claimPeer(p *peer, remoteID string) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		return false
	}
	select {
	case <-p.closed:
		// An answer that comes after the connect timer gave the offer
		// up: a closed peer registered here would never be removed,
		// and the browser's later offers would all be refused.
		return false
	default:
	}
	if _, dup := sw.peers[remoteID]; dup {
		return false
	}
	p.remoteID = remoteID
	sw.peers[remoteID] = p
	return true
}

// hasPeer reports whether a remote peer is connected or connecting.
func (sw *swarm) hasPeer(remoteID string) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	_, ok := sw.peers[remoteID]
	return ok
}

// removeMember forgets a closed PeerConnection.
func (sw *swarm) removeMember(p *peer, stats p2p.UploadStats) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	delete(sw.members, p)
	if p.remoteID != "" && sw.peers[p.remoteID] == p {
		delete(sw.peers, p.remoteID)
		for id := range p.loaded {
			sw.holders[id]--
			if sw.holders[id] <= 0 {
				delete(sw.holders, id)
			}
		}
		sw.scheduleAnnounceLocked()
	}
	addStats(&sw.finished, stats)
}

// setIncomplete records the tracker's count of browsers in the swarm.
func (sw *swarm) setIncomplete(n int) {
	sw.mu.Lock()
	sw.incomplete = n
	sw.mu.Unlock()
}

// wantsOffers reports whether the swarm has browsers the seeder is not
// connected to, going by the tracker's last count.
func (sw *swarm) wantsOffers() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return !sw.closed && sw.incomplete > len(sw.peers)
}

// close closes every PeerConnection of the swarm and waits for them.
func (sw *swarm) close() {
	sw.mu.Lock()
	if sw.closed {
		sw.mu.Unlock()
		sw.wg.Wait()
		return
	}
	sw.closed = true
	if sw.timer != nil {
		sw.timer.Stop()
		sw.timer = nil
	}
	members := make([]*peer, 0, len(sw.members))
	for p := range sw.members {
		members = append(members, p)
	}
	sw.mu.Unlock()
	sw.cancel()
	for _, p := range members {
		p.close()
	}
	sw.wg.Wait()
}

// spawn runs fn on a goroutine that close waits for, unless the swarm is
// already closed; it reports whether fn was started. Taking sw.mu orders
// every wg.Add before close's wg.Wait.
func (sw *swarm) spawn(fn func()) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		return false
	}
	sw.wg.Add(1)
	go func() {
		defer sw.wg.Done()
		fn()
	}()
	return true
}

// addStats adds b's counters to a.
func addStats(a *p2p.UploadStats, b p2p.UploadStats) {
	a.Requests += b.Requests
	a.RateLimited += b.RateLimited
	a.Completed += b.Completed
	a.Absent += b.Absent
	a.Aborted += b.Aborted
	a.OverBudget += b.OverBudget
	a.BytesSent += b.BytesSent
	a.PayloadIgnored += b.PayloadIgnored
	a.BadFrames += b.BadFrames
	a.BadCommands += b.BadCommands
	a.SendErrors += b.SendErrors
	a.AnnouncementsDropped += b.AnnouncementsDropped
}

// uploaded returns the payload bytes the swarm's sessions have sent.
func (sw *swarm) uploaded() uint64 {
	return sw.uploadStats().BytesSent
}

// uploadStats returns the totals of the swarm's sessions, open and closed.
func (sw *swarm) uploadStats() p2p.UploadStats {
	sw.mu.Lock()
	total := sw.finished
	var sessions []*p2p.UploadSession
	for p := range sw.members {
		if sess := p.uploadSession(); sess != nil {
			sessions = append(sessions, sess)
		}
	}
	sw.mu.Unlock()
	for _, sess := range sessions {
		addStats(&total, sess.Stats())
	}
	return total
}
