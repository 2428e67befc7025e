package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
	"github.com/pion/webrtc/v4"
)

// server is the seeder side: every peer it answers is served through one
// UDP mux, with an UploadSession on the P2P Media Loader channel and a
// rawSender on the raw channel.
type server struct {
	mux  *muxAPI
	segs [][]byte
	ids  []int64
	src  p2p.SegmentSource
	opts p2p.UploadOptions
	// rawFixed fixes the raw senders' window at opts.HighWaterMark,
	// resuming at opts.LowWaterMark; otherwise they size it as the
	// UploadSessions do.
	rawFixed bool

	mu     sync.Mutex
	groups map[string][]*serverPeer
}

// rawOptions returns the flow control options of the raw senders: the
// UploadSessions', or with rawFixed a fixed window.
func (s *server) rawOptions() p2p.UploadOptions {
	opts := s.opts
	if s.rawFixed {
		opts.MinHighWaterMark = opts.HighWaterMark
	}
	return opts
}

// serverPeer is one PeerConnection of the server and what runs on it.
type serverPeer struct {
	pc *webrtc.PeerConnection

	mu       sync.Mutex
	closed   bool
	sessions []*p2p.UploadSession
	raws     []*rawSender
}

// newServer opens the server's UDP mux and prepares segs for serving; the
// segment with external id i is segs[i].
func newServer(segs [][]byte, opts p2p.UploadOptions, seederMux, rawFixed bool) (*server, error) {
	mux, err := newMuxAPI(seederMux)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(segs))
	for i := range ids {
		ids[i] = int64(i)
	}
	// Segments come through the seeder's own cache, filled on first use,
	// so the measured path is the seeder's serving path from cache.
	cache := seeder.NewCache(context.Background(), int64(len(segs))*int64(len(segs[0]))+1)
	src := p2p.SegmentSourceFunc(func(ctx context.Context, id int64) ([]byte, bool, error) {
		if id < 0 || id >= int64(len(segs)) {
			return nil, false, nil
		}
		data, err := cache.Get(ctx, strconv.FormatInt(id, 10), func(context.Context) ([]byte, error) { return segs[id], nil })
		return data, err == nil, err
	})
	return &server{mux: mux, segs: segs, ids: ids, src: src, opts: opts, rawFixed: rawFixed, groups: map[string][]*serverPeer{}}, nil
}

// answer creates a PeerConnection for offer, in group, and returns its
// complete answer once ICE gathering has finished.
func (s *server) answer(group string, offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	pc, err := s.mux.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("new peer connection: %w", err)
	}
	p := &serverPeer{pc: pc}
	s.mu.Lock()
	s.groups[group] = append(s.groups[group], p)
	s.mu.Unlock()

	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		// pion does not close a PeerConnection whose ICE failed
		// (pion-notes §4); a seeder must, and so does this one.
		if st == webrtc.PeerConnectionStateFailed {
			go p.close()
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		if dc.Label() == rawLabel {
			p.raws = append(p.raws, newRawSender(dc, s.segs, s.rawOptions()))
			return
		}
		sess, err := p2p.NewUploadSession(dc, s.src, s.ids, s.opts)
		if err != nil {
			// NewUploadSession only fails on nil arguments.
			fmt.Fprintf(os.Stderr, "uploadbench: %v\n", err)
			return
		}
		p.sessions = append(p.sessions, sess)
	})

	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("set remote description: %w", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("create answer: %w", err)
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		return webrtc.SessionDescription{}, errors.New("ICE gathering did not complete")
	}
	return *pc.LocalDescription(), nil
}

// close stops what runs on the peer and closes its PeerConnection.
func (p *serverPeer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	sessions, raws := p.sessions, p.raws
	p.mu.Unlock()
	for _, sess := range sessions {
		_ = sess.Close()
	}
	for _, r := range raws {
		r.close()
	}
	_ = p.pc.Close()
}

// closeGroup closes every peer of group.
func (s *server) closeGroup(group string) {
	s.mu.Lock()
	peers := s.groups[group]
	delete(s.groups, group)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(p.close)
	}
	wg.Wait()
}

// close closes every peer and then the UDP mux.
func (s *server) close() {
	s.mu.Lock()
	var groups []string
	for g := range s.groups {
		groups = append(groups, g)
	}
	s.mu.Unlock()
	for _, g := range groups {
		s.closeGroup(g)
	}
	_ = s.mux.Close()
}

// sessionStats sums the counters of the UploadSessions of group.
func (s *server) sessionStats(group string) p2p.UploadStats {
	s.mu.Lock()
	peers := append([]*serverPeer(nil), s.groups[group]...)
	s.mu.Unlock()
	var sum p2p.UploadStats
	for _, p := range peers {
		p.mu.Lock()
		for _, sess := range p.sessions {
			st := sess.Stats()
			sum.Requests += st.Requests
			sum.RateLimited += st.RateLimited
			sum.Completed += st.Completed
			sum.Absent += st.Absent
			sum.Aborted += st.Aborted
			sum.BytesSent += st.BytesSent
			sum.PayloadIgnored += st.PayloadIgnored
			sum.BadFrames += st.BadFrames
			sum.BadCommands += st.BadCommands
			sum.SendErrors += st.SendErrors
		}
		p.mu.Unlock()
	}
	return sum
}

// rawSender is the baseline: on every one-byte request it sends the
// segment whose id is that byte, in messages of p2p.DefaultMaxMessageSize
// bytes, with the same BufferedAmount flow control and water marks as an
// UploadSession, and nothing else: no framing, no header, no completion,
// no rate cap, no cancellation.
type rawSender struct {
	dc     *webrtc.DataChannel
	segs   [][]byte
	window *p2p.ChannelWindow // the UploadSession's flow control
	budget *p2p.UploadBudget

	req      chan int      // the pending request (capacity 1)
	lowWater chan struct{} // BufferedAmount fell to the low mark (capacity 1)
	arrived  atomic.Int64  // when the pending request arrived (Unix ns)
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	bytesSent atomic.Uint64
}

func newRawSender(dc *webrtc.DataChannel, segs [][]byte, opts p2p.UploadOptions) *rawSender {
	r := &rawSender{
		dc:       dc,
		segs:     segs,
		window:   p2p.NewChannelWindow(dc, opts),
		budget:   opts.Budget,
		req:      make(chan int, 1),
		lowWater: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	dc.OnBufferedAmountLow(func() {
		select {
		case r.lowWater <- struct{}{}:
		default:
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if len(m.Data) != 1 {
			return
		}
		// The client has one request in flight at a time.
		r.arrived.Store(time.Now().UnixNano())
		select {
		case r.req <- int(m.Data[0]):
		default:
		}
	})
	dc.OnClose(r.halt)
	go r.run()
	return r
}

func (r *rawSender) halt() { r.stopOnce.Do(func() { close(r.stop) }) }

// close stops the sender and waits for its goroutine.
func (r *rawSender) close() {
	r.halt()
	<-r.done
}

func (r *rawSender) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case id := <-r.req:
			if !r.send(r.segs[id%len(r.segs)]) {
				return
			}
		}
	}
}

// send writes payload and reports whether the sender should go on. The
// first message, if it has 16 bytes, starts with when the request arrived
// and when that message was handed to pion (Unix ns, big-endian), so that
// the client, on the same machine's clock, can split its request-to-first-
// chunk time into the request's way in, the server's part and the first
// chunk's way out. Copying that one message costs next to nothing.
func (r *rawSender) send(payload []byte) bool {
	first := true
	// The same budget and window floor as the UploadSessions (an
	// unlimited budget never refuses).
	if r.budget.TryAcquire() {
		defer r.budget.Release()
	}
	r.window.Begin()
	for len(payload) > 0 {
		if r.dc.BufferedAmount() > r.window.HighWater() {
			for r.dc.BufferedAmount() > r.window.HighWater() {
				// The timeout guards against a low-water event that
				// pion skips, as the UploadSession's poll does.
				select {
				case <-r.stop:
					return false
				case <-r.lowWater:
				case <-time.After(250 * time.Millisecond):
				}
			}
			r.window.Paused()
		}
		n := min(len(payload), r.window.MessageLimit(p2p.DefaultMaxMessageSize))
		msg := payload[:n]
		if first && n >= 16 {
			msg = append([]byte(nil), msg...)
			binary.BigEndian.PutUint64(msg, uint64(r.arrived.Load()))
			binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		}
		first = false
		r.window.Sending(n)
		if err := r.dc.Send(msg); err != nil {
			return false
		}
		r.bytesSent.Add(uint64(n))
		payload = payload[n:]
	}
	return true
}
