package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/pion/webrtc/v4"
)

// Client timing.
const (
	// stallTimeout is how long a request may go without a byte before the
	// client gives up on it and asks again, as the browser does after
	// p2pNotReceivingBytesTimeoutMs (pion-notes §4).
	stallTimeout = 2 * time.Second
	// connectTimeout bounds each peer's connection, from its offer to an
	// open channel that has received the announcement.
	connectTimeout = 30 * time.Second
	// drainTimeout bounds the wait for in-flight requests after a stop.
	drainTimeout = 10 * time.Second
	// connectParallel is the number of peers a client connects at once.
	connectParallel = 8
)

// client is the browser side: it holds the client PeerConnections and
// runs the request loops. It is driven by the server over a conn.
type client struct {
	c        *conn
	segments int
	size     int
	// gap is the pause between the end of one request and the next.
	gap time.Duration

	mu      sync.Mutex
	groups  map[string][]*clientPeer
	pending map[int]chan message // answers awaited, by offer id
	nextID  int
	// done is closed when the server's input ends; connections waiting
	// for an answer give up then.
	done chan struct{}

	// measuring is set between measure and stop; payload bytes count
	// toward bytes only while it is set.
	measuring    atomic.Bool
	bytes        atomic.Int64
	measureStart time.Time
	cpuStart     float64

	watchdogStop chan struct{}
	watchdogDone chan struct{}
}

// runClient serves the protocol on r and w until r ends, then closes every
// peer. The server runs it in a child process on stdin and stdout, or in a
// goroutine on pipes with -inproc.
func runClient(r io.Reader, w io.Writer, segments, size int, gap time.Duration) error {
	cl := &client{
		c:        newConn(r, w),
		segments: segments,
		size:     size,
		gap:      gap,
		groups:   map[string][]*clientPeer{},
		pending:  map[int]chan message{},
		done:     make(chan struct{}),
	}
	var ops sync.WaitGroup
	defer func() {
		close(cl.done)
		ops.Wait()
		cl.stopWatchdog()
		cl.mu.Lock()
		var groups []string
		for g := range cl.groups {
			groups = append(groups, g)
		}
		cl.mu.Unlock()
		for _, g := range groups {
			cl.closeGroup(g)
		}
	}()
	for {
		m, err := cl.c.recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch m.Op {
		case opConnect:
			// Connecting needs answers, which arrive on this loop.
			ops.Go(func() { cl.reply(opConnected, m.Group, cl.connect(m.Group, m.N)) })
		case opAnswer:
			cl.mu.Lock()
			ch := cl.pending[m.ID]
			delete(cl.pending, m.ID)
			cl.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case opStart:
			cl.start(m.Mode)
		case opMeasure:
			cl.measure()
		case opStop:
			res := cl.stop()
			if err := cl.c.send(message{Op: opResult, Mode: m.Mode, Result: &res}); err != nil {
				return err
			}
		case opClose:
			cl.closeGroup(m.Group)
			cl.reply(opClosed, m.Group, nil)
		default:
			cl.reply(opError, m.Group, fmt.Errorf("unknown op %q", m.Op))
		}
	}
}

// reply sends op, or opError carrying err if err is not nil.
func (cl *client) reply(op, group string, err error) {
	m := message{Op: op, Group: group}
	if err != nil {
		m.Op, m.Err = opError, err.Error()
	}
	// A failed send means the server is gone; the read loop ends too.
	_ = cl.c.send(m)
}

// connect creates n peers in group, connectParallel at a time.
func (cl *client) connect(group string, n int) error {
	sem := make(chan struct{}, connectParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := cl.connectPeer(group); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// connectPeer creates one peer, offers it to the server and waits until
// its channels are open and the seeder's announcement has arrived.
func (cl *client) connectPeer(group string) error {
	api, err := newMuxAPI(false)
	if err != nil {
		return err
	}
	pc, err := api.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = api.Close()
		return fmt.Errorf("new peer connection: %w", err)
	}
	cl.mu.Lock()
	id := cl.nextID
	cl.nextID++
	answer := make(chan message, 1)
	cl.pending[id] = answer
	p := &clientPeer{
		cl:        cl,
		api:       api,
		pc:        pc,
		rng:       rand.New(rand.NewPCG(uint64(id), 0x75706c6f6164)),
		joiner:    p2p.NewJoiner(0),
		opened:    make(chan struct{}),
		announced: make(chan struct{}),
	}
	cl.groups[group] = append(cl.groups[group], p)
	cl.mu.Unlock()

	// The label is 40 random hex digits, like simple-peer's.
	var label [20]byte
	for i := range label {
		label[i] = byte(p.rng.Uint32())
	}
	if p.seed, err = pc.CreateDataChannel(hex.EncodeToString(label[:]), nil); err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	channels := []*webrtc.DataChannel{p.seed}
	if group == groupLoad {
		if p.raw, err = pc.CreateDataChannel(rawLabel, nil); err != nil {
			return fmt.Errorf("create raw channel: %w", err)
		}
		channels = append(channels, p.raw)
		p.raw.OnMessage(p.onRawMessage)
	}
	var opens atomic.Int32
	for _, dc := range channels {
		dc.OnOpen(func() {
			if opens.Add(1) == int32(len(channels)) {
				close(p.opened)
			}
		})
	}
	p.seed.OnMessage(p.onSeedMessage)

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local description: %w", err)
	}
	deadline := time.NewTimer(connectTimeout)
	defer deadline.Stop()
	select {
	case <-gathered:
	case <-deadline.C:
		return errors.New("ICE gathering did not complete")
	}
	if err := cl.c.send(message{Op: opOffer, Group: group, ID: id, SDP: pc.LocalDescription()}); err != nil {
		return err
	}
	var ans message
	select {
	case ans = <-answer:
	case <-deadline.C:
		return errors.New("no answer from the server")
	case <-cl.done:
		return errors.New("server gone")
	}
	if ans.Err != "" {
		return fmt.Errorf("server: %s", ans.Err)
	}
	if ans.SDP == nil {
		return errors.New("server answered without an SDP")
	}
	if err := pc.SetRemoteDescription(*ans.SDP); err != nil {
		return fmt.Errorf("set remote description: %w", err)
	}
	for _, w := range []struct {
		what string
		ch   chan struct{}
	}{{"open", p.opened}, {"announcement", p.announced}} {
		select {
		case <-w.ch:
		case <-deadline.C:
			return fmt.Errorf("peer %d: no %s after %v", id, w.what, connectTimeout)
		case <-cl.done:
			return errors.New("server gone")
		}
	}
	return nil
}

// closeGroup closes every peer of group.
func (cl *client) closeGroup(group string) {
	cl.mu.Lock()
	peers := cl.groups[group]
	delete(cl.groups, group)
	cl.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			_ = p.pc.Close()
			_ = p.api.Close()
		})
	}
	wg.Wait()
}

// loadPeers returns the load peers.
func (cl *client) loadPeers() []*clientPeer {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]*clientPeer(nil), cl.groups[groupLoad]...)
}

// start makes every load peer request segments in mode back to back, and
// starts the stall watchdog.
func (cl *client) start(mode string) {
	cl.stopWatchdog()
	cl.watchdogStop = make(chan struct{})
	cl.watchdogDone = make(chan struct{})
	go cl.watchdog(cl.loadPeers(), cl.watchdogStop, cl.watchdogDone)
	for _, p := range cl.loadPeers() {
		p.begin(mode)
	}
}

// measure starts the measured interval.
func (cl *client) measure() {
	for _, p := range cl.loadPeers() {
		p.resetCounters()
	}
	cl.mu.Lock()
	cl.measureStart = time.Now()
	cl.cpuStart = cpuSeconds()
	cl.mu.Unlock()
	cl.bytes.Store(0)
	cl.measuring.Store(true)
}

// stop ends the measured interval, lets every request in flight finish so
// that the next mode starts on idle channels, and returns the figures.
func (cl *client) stop() clientResult {
	cl.measuring.Store(false)
	stopAt := time.Now()
	res := clientResult{Bytes: cl.bytes.Load()}
	cl.mu.Lock()
	start := cl.measureStart
	res.CPUSeconds = cpuSeconds() - cl.cpuStart
	cl.mu.Unlock()
	res.Seconds = stopAt.Sub(start).Seconds()

	// The counters are read now, so that requests finishing during the
	// drain below do not count.
	peers := cl.loadPeers()
	for _, p := range peers {
		p.mu.Lock()
		p.stopping = true
		res.Requests += p.requests
		res.Completed += p.completed
		res.Timeouts += p.timeouts
		res.Absent += p.absent
		res.Errors += p.errors
		p.mu.Unlock()
	}
	deadline := time.Now().Add(drainTimeout)
	for _, p := range peers {
		for !p.isIdle() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	cl.stopWatchdog()
	for _, p := range peers {
		p.mu.Lock()
		if p.state == stWaiting {
			p.state = stIdle
		}
		if p.state != stIdle {
			// The request never finished: count it as an error
			// and drop it.
			res.Errors++
			p.state = stIdle
		}
		for _, s := range p.samples {
			if !s.sent.Before(start) && !s.sent.Add(s.latency).After(stopAt) {
				res.LatencyMS = append(res.LatencyMS, float64(s.latency)/float64(time.Millisecond))
				if s.header > 0 {
					res.HeaderLatencyMS = append(res.HeaderLatencyMS, float64(s.header)/float64(time.Millisecond))
				}
				if s.hasSplit {
					for i, d := range s.split {
						res.RawSplitMS[i] = append(res.RawSplitMS[i], float64(d)/float64(time.Millisecond))
					}
				}
			}
		}
		p.mode = ""
		p.mu.Unlock()
	}
	return res
}

func (cl *client) stopWatchdog() {
	if cl.watchdogStop == nil {
		return
	}
	close(cl.watchdogStop)
	<-cl.watchdogDone
	cl.watchdogStop, cl.watchdogDone = nil, nil
}

// watchdog re-requests on behalf of peers whose request has stalled.
func (cl *client) watchdog(peers []*clientPeer, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, p := range peers {
				p.checkStall(now)
			}
		}
	}
}

// Request states of a clientPeer.
const (
	stIdle     = iota // no request in flight
	stWaiting         // pausing for the gap before the next request
	stHeader          // waiting for the SegmentData header (seeder mode)
	stPayload         // receiving payload
	stComplete        // waiting for SegmentDataSendingCompleted (seeder mode)
)

// sample is one request-to-first-chunk measurement; header is the time to
// the SegmentData header in seeder mode, 0 in raw mode. In raw mode, split
// divides latency into the request's way to the server, the server's part
// and the first chunk's way back (see rawSender).
type sample struct {
	sent     time.Time
	latency  time.Duration
	header   time.Duration
	split    [3]time.Duration
	hasSplit bool
}

// clientPeer is one client PeerConnection. Its message handlers run on
// pion's read loops and advance the request state machine; the next
// request is sent from the handler that completes the previous one, so a
// peer always has exactly one request in flight, as a browser has per
// connection.
type clientPeer struct {
	cl        *client
	api       *muxAPI
	pc        *webrtc.PeerConnection
	seed, raw *webrtc.DataChannel
	rng       *rand.Rand
	joiner    *p2p.Joiner

	opened, announced chan struct{}
	announceOnce      sync.Once

	mu           sync.Mutex
	mode         string
	state        int
	stopping     bool
	reqID        int64
	remaining    int64
	sentAt       time.Time
	headerAfter  time.Duration
	split        [3]time.Duration // raw mode: see sample
	hasSplit     bool
	lastActivity time.Time
	gotFirst     bool

	samples                                       []sample
	requests, completed, timeouts, absent, errors int64
}

// begin starts the request loop in mode.
func (p *clientPeer) begin(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	p.stopping = false
	p.sendLocked(time.Now())
}

func (p *clientPeer) isIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == stIdle || p.state == stWaiting
}

func (p *clientPeer) resetCounters() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples = p.samples[:0]
	p.requests, p.completed, p.timeouts, p.absent, p.errors = 0, 0, 0, 0, 0
}

// nextLocked sends the next request, after the gap if there is one, or
// goes idle after a stop.
func (p *clientPeer) nextLocked(now time.Time) {
	if p.stopping || p.mode == "" {
		p.state = stIdle
		return
	}
	if p.cl.gap <= 0 {
		p.sendLocked(now)
		return
	}
	p.state = stWaiting
	time.AfterFunc(p.cl.gap, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.state != stWaiting {
			return
		}
		if p.stopping || p.mode == "" {
			p.state = stIdle
			return
		}
		p.sendLocked(time.Now())
	})
}

// sendLocked sends a request for a random segment.
func (p *clientPeer) sendLocked(now time.Time) {
	p.reqID++
	seg := p.rng.IntN(p.cl.segments)
	p.sentAt, p.lastActivity, p.gotFirst, p.headerAfter, p.hasSplit = now, now, false, 0, false
	p.requests++
	var err error
	switch p.mode {
	case modeSeeder:
		p.state = stHeader
		var frames [][]byte
		frames, err = p2p.Encode(p2p.SegmentRequest{ID: int64(seg), RequestID: p.reqID}, 0)
		for _, f := range frames {
			if err == nil {
				err = p.seed.Send(f)
			}
		}
	case modeRaw:
		p.state, p.remaining = stPayload, int64(p.cl.size)
		err = p.raw.Send([]byte{byte(seg)})
	}
	if err != nil {
		p.errors++
		p.state = stIdle
	}
}

// payloadLocked accounts for n payload bytes.
func (p *clientPeer) payloadLocked(n int, now time.Time) {
	p.lastActivity = now
	if !p.gotFirst {
		p.gotFirst = true
		p.samples = append(p.samples, sample{sent: p.sentAt, latency: now.Sub(p.sentAt), header: p.headerAfter, split: p.split, hasSplit: p.hasSplit})
	}
	if p.cl.measuring.Load() {
		p.cl.bytes.Add(int64(n))
	}
	p.remaining -= int64(n)
}

// onSeedMessage handles a message from the UploadSession, as the P2P
// Media Loader client does: commands are joined and decoded, payload is
// only taken between a matching header and its announced size, and stale
// payload and commands of older requests are skipped.
func (p *clientPeer) onSeedMessage(m webrtc.DataChannelMessage) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p2p.IsCommandFrame(m.Data) {
		if p.mode != modeSeeder || p.state != stPayload {
			return
		}
		p.payloadLocked(len(m.Data), now)
		if p.remaining <= 0 {
			if p.remaining < 0 {
				p.errors++
			}
			p.state = stComplete
		}
		return
	}
	body, done, err := p.joiner.Push(m.Data)
	if err != nil {
		p.errors++
		return
	}
	if !done {
		return
	}
	cmd, err := p2p.Decode(body)
	if err != nil {
		p.errors++
		return
	}
	switch c := cmd.(type) {
	case p2p.SegmentsAnnouncement:
		p.announceOnce.Do(func() { close(p.announced) })
	case p2p.SegmentData:
		if p.state == stHeader && c.RequestID == p.reqID {
			p.lastActivity = now
			p.headerAfter = now.Sub(p.sentAt)
			p.remaining = c.Size
			p.state = stPayload
			if c.Size == 0 {
				p.state = stComplete
			}
		}
	case p2p.SegmentDataSendingCompleted:
		if c.RequestID != p.reqID {
			return
		}
		if p.state != stComplete {
			// A completion before the whole payload.
			p.errors++
		}
		p.completed++
		p.nextLocked(now)
	case p2p.SegmentAbsent:
		if c.RequestID == p.reqID && p.state == stHeader {
			p.absent++
			p.nextLocked(now)
		}
	}
}

// onRawMessage handles payload from the raw sender: a request is done
// once its size has arrived.
func (p *clientPeer) onRawMessage(m webrtc.DataChannelMessage) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != modeRaw || p.state != stPayload {
		return
	}
	if !p.gotFirst && len(m.Data) >= 16 {
		arrived := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data)))
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data[8:])))
		p.split = [3]time.Duration{arrived.Sub(p.sentAt), sent.Sub(arrived), now.Sub(sent)}
		p.hasSplit = true
	}
	p.payloadLocked(len(m.Data), now)
	if p.remaining <= 0 {
		p.completed++
		p.nextLocked(now)
	}
}

// checkStall gives up on a request that has had no byte for stallTimeout
// and sends a new one, as a browser would after its inactivity timeout.
func (p *clientPeer) checkStall(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stIdle || p.state == stWaiting || now.Sub(p.lastActivity) < stallTimeout {
		return
	}
	p.timeouts++
	if p.stopping {
		p.state = stIdle
		return
	}
	p.sendLocked(now)
}
