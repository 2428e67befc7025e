package seeder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// peer is one PeerConnection of the seeder with a browser in one swarm,
// from the offer (or the answer to a browser's offer) until it closes.
type peer struct {
	sw       *swarm
	pc       *webrtc.PeerConnection
	remoteID string // set once claimed; guarded by sw.mu
	loaded   map[int64]struct{}
	created  time.Time

	mu        sync.Mutex
	session   *p2p.UploadSession
	connected bool

	connectTimer *time.Timer
	closeOnce    sync.Once
	closed       chan struct{}
}

// newPeer makes a PeerConnection for sw, counted against MaxPeers.
func (s *Seeder) newPeer(sw *swarm) (*peer, error) {
	if !s.reservePC() {
		return nil, errors.New("seeder: peer connection cap reached")
	}
	pc, err := s.newPeerConnection()
	if err != nil {
		s.releasePC()
		return nil, fmt.Errorf("seeder: new peer connection: %w", err)
	}
	p := &peer{sw: sw, pc: pc, created: time.Now(), closed: make(chan struct{})}
	// A connection that never opens its channel is given up. The timer
	// exists before the swarm can see the peer: a swarm closing right
	// after addMember closes the peer, and close stops the timer.
	p.connectTimer = time.AfterFunc(DefaultConnectTimeout, func() {
		if p.uploadSession() == nil || !p.isConnected() {
			s.counters.connectFailures.Add(1)
			p.closeAsync()
		}
	})
	if !sw.addMember(p) {
		p.connectTimer.Stop()
		_ = pc.Close()
		s.releasePC()
		return nil, errors.New("seeder: swarm closed")
	}
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			p.mu.Lock()
			p.connected = true
			p.mu.Unlock()
			s.counters.connections.Add(1)
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// pion does not close a failed connection itself
			// (pion-notes §4); closing from inside its callback
			// could deadlock, so do it aside.
			p.closeAsync()
		}
	})
	return p, nil
}

// attach starts serving the swarm over dc.
func (p *peer) attach(dc *webrtc.DataChannel) {
	sw := p.sw
	opts := sw.s.cfg.Upload
	opts.OnAnnouncement = func(a p2p.SegmentsAnnouncement) { sw.peerAnnounced(p, a) }
	sess, err := p2p.NewUploadSession(dc, sw, sw.currentAnnouncement(), opts)
	if err != nil {
		p.closeAsync()
		return
	}
	p.mu.Lock()
	if p.session != nil {
		// A second channel: browsers keep only the last one, but the
		// seeder serves the first and ignores the others.
		p.mu.Unlock()
		_ = sess.Close()
		return
	}
	p.session = sess
	p.mu.Unlock()
	watch := func() {
		select {
		case <-sess.Done():
			p.close()
		case <-p.closed:
		}
	}
	if !sw.spawn(watch) {
		// The swarm closed meanwhile; its close reaches this peer.
		_ = sess.Close()
	}
}

func (p *peer) uploadSession() *p2p.UploadSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.session
}

func (p *peer) isConnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// closeAsync closes the peer on a goroutine the swarm waits for.
func (p *peer) closeAsync() {
	select {
	case <-p.closed:
		return
	default:
	}
	// Once the swarm is closed, its close reaches every member itself.
	p.sw.spawn(p.close)
}

// close ends the session and the PeerConnection and forgets the peer.
func (p *peer) close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.connectTimer.Stop()
		var stats p2p.UploadStats
		if sess := p.uploadSession(); sess != nil {
			_ = sess.Close()
			stats = sess.Stats()
		}
		_ = p.pc.Close()
		p.sw.removeMember(p, stats)
		p.sw.s.releasePC()
	})
}

// answer answers a browser's offer: it returns the local description with
// every candidate, since WebTorrent signalling is not trickled.
func (p *peer) answer(ctx context.Context, offer webrtc.SessionDescription) (*webrtc.SessionDescription, error) {
	p.pc.OnDataChannel(p.attach)
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return nil, fmt.Errorf("setting the offer: %w", err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("creating the answer: %w", err)
	}
	return p.gather(ctx, ans)
}

// offer makes an offer with the one data channel the browser expects
// (ordered, reliable, any label).
func (p *peer) offer(ctx context.Context) (*webrtc.SessionDescription, error) {
	dc, err := p.pc.CreateDataChannel("caddy-p2p", nil)
	if err != nil {
		return nil, fmt.Errorf("creating the data channel: %w", err)
	}
	p.attach(dc)
	off, err := p.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("creating the offer: %w", err)
	}
	return p.gather(ctx, off)
}

// gather sets the local description and waits for ICE gathering to
// complete (or DefaultGatherTimeout, like simple-peer's own cap).
func (p *peer) gather(ctx context.Context, desc webrtc.SessionDescription) (*webrtc.SessionDescription, error) {
	done := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(desc); err != nil {
		return nil, fmt.Errorf("setting the local description: %w", err)
	}
	t := time.NewTimer(DefaultGatherTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, errors.New("peer closed")
	}
	ld := p.pc.LocalDescription()
	if ld == nil {
		return nil, errors.New("no local description")
	}
	return ld, nil
}

// accept applies a browser's answer to the seeder's offer.
func (p *peer) accept(answer webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("setting the answer: %w", err)
	}
	return nil
}
