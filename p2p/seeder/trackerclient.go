package seeder

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// Limits of a tracker client.
const (
	trackerReadLimit    = 1 << 20
	trackerWriteQueue   = 256
	trackerJobQueue     = 1024
	maxConcurrentAnswer = 16
	minAnnounceInterval = 5 * time.Second
	maxReconnectBackoff = time.Minute
	trackerWriteTimeout = 10 * time.Second
)

// trackerClient keeps one WebSocket to one WebTorrent tracker and
// announces every swarm of the seeder over it (spec §2.4): the tracker
// relays browsers' offers, which the seeder answers, and the seeder's own
// offers, whose answers come back through it. Signalling is not trickled.
type trackerClient struct {
	s      *Seeder
	url    string
	log    *zap.Logger
	dialer websocket.Dialer

	mu       sync.Mutex
	sess     *trackerSession // nil while disconnected
	offers   map[string]*pendingOffer
	interval time.Duration
}

// pendingOffer is an offer of the seeder awaiting its answer.
type pendingOffer struct {
	p       *peer
	sw      *swarm
	expires time.Time
}

// TrackerConn is one connection to a tracker: WebSocket text messages,
// or an in-process equivalent.
type TrackerConn interface {
	// ReadMessage returns the next message from the tracker.
	ReadMessage() ([]byte, error)
	// WriteMessage sends one message to the tracker.
	WriteMessage(msg []byte) error
	// Close ends the connection and unblocks ReadMessage.
	Close() error
}

// TrackerDialer opens a TrackerConn.
type TrackerDialer func(ctx context.Context) (TrackerConn, error)

// wsConn is a TrackerConn over a WebSocket.
type wsConn struct{ c *websocket.Conn }

func (w wsConn) ReadMessage() ([]byte, error) {
	_, data, err := w.c.ReadMessage()
	return data, err
}

func (w wsConn) WriteMessage(msg []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(trackerWriteTimeout))
	return w.c.WriteMessage(websocket.TextMessage, msg)
}

func (w wsConn) Close() error { return w.c.Close() }

// dialWebSocket is the default TrackerDialer for ws:// and wss:// URLs.
func (t *trackerClient) dialWebSocket(ctx context.Context) (TrackerConn, error) {
	conn, resp, err := t.dialer.DialContext(ctx, t.url, http.Header(t.s.cfg.TrackerHeader))
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(trackerReadLimit)
	return wsConn{conn}, nil
}

// trackerSession is one connection to the tracker.
type trackerSession struct {
	conn   TrackerConn
	out    chan []byte
	jobs   chan announceJob
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // bounds concurrent answers
	wg     sync.WaitGroup
}

// announceJob is one announce to send: offers are made on the announcer
// goroutine so that ICE gathering never blocks reading.
type announceJob struct {
	sw     *swarm
	event  string
	offers int
}

func newTrackerClient(s *Seeder, url string) *trackerClient {
	return &trackerClient{
		s:        s,
		url:      url,
		log:      s.log.With(zap.String("tracker", url)),
		dialer:   websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10},
		offers:   make(map[string]*pendingOffer),
		interval: s.cfg.AnnounceInterval,
	}
}

// run connects and reconnects with backoff until ctx ends.
func (t *trackerClient) run(ctx context.Context) {
	defer t.dropOffers(nil)
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		t.log.Warn("tracker connection ended", zap.Error(err), zap.Duration("retry_in", backoff))
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxReconnectBackoff)
	}
}

// session runs one connection: it announces every swarm, re-announces on
// the tracker's interval, and handles relayed offers and answers.
func (t *trackerClient) session(ctx context.Context) error {
	dial := t.dialWebSocket
	if d, ok := t.s.cfg.TrackerDialers[t.url]; ok {
		dial = d
	}
	conn, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	ts := &trackerSession{
		conn: conn, ctx: sctx, cancel: cancel,
		out:  make(chan []byte, trackerWriteQueue),
		jobs: make(chan announceJob, trackerJobQueue),
		sem:  make(chan struct{}, maxConcurrentAnswer),
	}
	t.mu.Lock()
	t.sess = ts
	t.mu.Unlock()
	t.log.Info("connected to tracker")
	defer func() {
		t.mu.Lock()
		t.sess = nil
		t.mu.Unlock()
		cancel()
		conn.Close()
		ts.wg.Wait()
	}()
	ts.wg.Add(3)
	go func() { defer ts.wg.Done(); t.writer(ts) }()
	go func() { defer ts.wg.Done(); t.announcer(ts) }()
	go func() { defer ts.wg.Done(); t.ticker(ts) }()
	for _, sw := range t.s.allSwarms() {
		t.enqueue(ts, announceJob{sw: sw, event: "started", offers: t.s.cfg.OffersPerAnnounce})
	}
	// Closing the connection unblocks the read when the session ends.
	go func() { <-sctx.Done(); conn.Close() }()
	for {
		data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		t.handle(ts, data)
	}
}

// writer sends queued messages in order.
func (t *trackerClient) writer(ts *trackerSession) {
	for {
		select {
		case <-ts.ctx.Done():
			return
		case msg := <-ts.out:
			if err := ts.conn.WriteMessage(msg); err != nil {
				t.log.Debug("writing to tracker", zap.Error(err))
				ts.cancel()
				return
			}
		}
	}
}

// send queues a message; a full queue drops it (the tracker is not reading).
func (t *trackerClient) send(ts *trackerSession, v any) {
	msg, err := json.Marshal(v)
	if err != nil {
		t.log.Error("encoding tracker message", zap.Error(err))
		return
	}
	select {
	case ts.out <- msg:
	default:
		t.log.Warn("tracker write queue full; message dropped")
	}
}

// enqueue queues an announce.
func (t *trackerClient) enqueue(ts *trackerSession, j announceJob) {
	select {
	case ts.jobs <- j:
	default:
		t.log.Warn("tracker announce queue full; announce dropped", zap.String("info_hash", string(j.sw.infoHash)))
	}
}

// join announces a new swarm on the current connection, if any; a later
// connection announces it anyway.
func (t *trackerClient) join(sw *swarm) {
	t.mu.Lock()
	ts := t.sess
	t.mu.Unlock()
	if ts != nil {
		t.enqueue(ts, announceJob{sw: sw, event: "started", offers: t.s.cfg.OffersPerAnnounce})
	}
}

// leave tells the tracker the seeder left a swarm and drops its offers.
func (t *trackerClient) leave(sw *swarm) {
	t.dropOffers(sw)
	t.mu.Lock()
	ts := t.sess
	t.mu.Unlock()
	if ts != nil {
		t.send(ts, t.announceMessage(sw, "stopped", nil))
	}
}

// ticker re-announces every swarm on the interval and expires offers.
func (t *trackerClient) ticker(ts *trackerSession) {
	t.mu.Lock()
	interval := t.interval
	t.mu.Unlock()
	reannounce := time.NewTimer(interval)
	defer reannounce.Stop()
	expire := time.NewTicker(5 * time.Second)
	defer expire.Stop()
	for {
		select {
		case <-ts.ctx.Done():
			return
		case now := <-expire.C:
			t.expireOffers(now)
		case <-reannounce.C:
			for _, sw := range t.s.allSwarms() {
				n := 0
				if sw.wantsOffers() {
					n = t.s.cfg.OffersPerAnnounce
				}
				t.enqueue(ts, announceJob{sw: sw, offers: n})
			}
			t.mu.Lock()
			interval = t.interval
			t.mu.Unlock()
			reannounce.Reset(interval)
		}
	}
}

// announcer makes the offers of each queued announce and sends it.
func (t *trackerClient) announcer(ts *trackerSession) {
	for {
		select {
		case <-ts.ctx.Done():
			return
		case j := <-ts.jobs:
			var offers []offerMsg
			for i := 0; i < j.offers && ts.ctx.Err() == nil; i++ {
				o, err := t.makeOffer(ts.ctx, j.sw)
				if err != nil {
					t.log.Debug("making an offer", zap.String("info_hash", string(j.sw.infoHash)), zap.Error(err))
					break
				}
				offers = append(offers, o)
			}
			if ts.ctx.Err() != nil {
				return
			}
			t.send(ts, t.announceMessage(j.sw, j.event, offers))
		}
	}
}

// makeOffer creates a PeerConnection with its data channel and records the
// offer until it is answered or expires.
func (t *trackerClient) makeOffer(ctx context.Context, sw *swarm) (offerMsg, error) {
	p, err := t.s.newPeer(sw)
	if err != nil {
		return offerMsg{}, err
	}
	desc, err := p.offer(ctx)
	if err != nil {
		p.close()
		return offerMsg{}, err
	}
	id := randomASCII(20)
	t.mu.Lock()
	t.offers[id] = &pendingOffer{p: p, sw: sw, expires: time.Now().Add(t.s.cfg.OfferTimeout)}
	t.mu.Unlock()
	t.s.counters.offersSent.Add(1)
	return offerMsg{Offer: *desc, OfferID: id}, nil
}

// expireOffers closes offers nobody answered in time.
func (t *trackerClient) expireOffers(now time.Time) {
	var stale []*pendingOffer
	t.mu.Lock()
	for id, o := range t.offers {
		if now.After(o.expires) {
			stale = append(stale, o)
			delete(t.offers, id)
		}
	}
	t.mu.Unlock()
	for _, o := range stale {
		o.p.close()
	}
}

// dropOffers closes the pending offers of sw, or all of them if sw is nil.
func (t *trackerClient) dropOffers(sw *swarm) {
	var drop []*pendingOffer
	t.mu.Lock()
	for id, o := range t.offers {
		if sw == nil || o.sw == sw {
			drop = append(drop, o)
			delete(t.offers, id)
		}
	}
	t.mu.Unlock()
	for _, o := range drop {
		o.p.close()
	}
}

// Tracker messages (spec §2.4). Binary-string fields arrive as strings of
// code points 0-255; encoding/json round-trips them unchanged.
type offerMsg struct {
	Offer   webrtc.SessionDescription `json:"offer"`
	OfferID string                    `json:"offer_id"`
}

type announceMsg struct {
	Action     string     `json:"action"`
	InfoHash   string     `json:"info_hash"`
	PeerID     string     `json:"peer_id"`
	Numwant    int        `json:"numwant"`
	Uploaded   uint64     `json:"uploaded"`
	Downloaded uint64     `json:"downloaded"`
	Left       int        `json:"left"`
	Event      string     `json:"event,omitempty"`
	Offers     []offerMsg `json:"offers,omitempty"`
}

type answerMsg struct {
	Action   string                    `json:"action"`
	InfoHash string                    `json:"info_hash"`
	PeerID   string                    `json:"peer_id"`
	ToPeerID string                    `json:"to_peer_id"`
	Answer   webrtc.SessionDescription `json:"answer"`
	OfferID  string                    `json:"offer_id"`
}

type incomingMsg struct {
	Action        string                     `json:"action"`
	InfoHash      string                     `json:"info_hash"`
	PeerID        string                     `json:"peer_id"`
	OfferID       string                     `json:"offer_id"`
	Offer         *webrtc.SessionDescription `json:"offer"`
	Answer        *webrtc.SessionDescription `json:"answer"`
	Interval      float64                    `json:"interval"`
	Incomplete    *float64                   `json:"incomplete"`
	FailureReason string                     `json:"failure reason"`
	Warning       string                     `json:"warning message"`
}

func (t *trackerClient) announceMessage(sw *swarm, event string, offers []offerMsg) announceMsg {
	uploaded := sw.uploaded()
	return announceMsg{
		Action: "announce", InfoHash: string(sw.infoHash), PeerID: t.s.peerID,
		Numwant: len(offers), Uploaded: uploaded, Event: event, Offers: offers,
	}
}

// handle dispatches one message from the tracker.
func (t *trackerClient) handle(ts *trackerSession, data []byte) {
	var m incomingMsg
	if err := json.Unmarshal(data, &m); err != nil {
		t.log.Debug("undecodable tracker message", zap.Error(err))
		return
	}
	if m.Action != "announce" {
		return
	}
	if m.FailureReason != "" {
		t.log.Warn("tracker refused an announce", zap.String("info_hash", m.InfoHash), zap.String("reason", m.FailureReason))
		return
	}
	if m.Warning != "" {
		t.log.Info("tracker warning", zap.String("info_hash", m.InfoHash), zap.String("warning", m.Warning))
	}
	sw := t.s.swarm(p2p.InfoHash(m.InfoHash))
	switch {
	case m.Offer != nil:
		if sw == nil || m.PeerID == "" || m.PeerID == t.s.peerID || m.OfferID == "" {
			return
		}
		t.s.counters.offersReceived.Add(1)
		if sw.hasPeer(m.PeerID) {
			// Browsers offer again on every re-announce; one
			// connection per browser is enough.
			return
		}
		select {
		case ts.sem <- struct{}{}:
		default:
			t.log.Debug("too many offers being answered; offer dropped")
			return
		}
		ts.wg.Add(1)
		go func() {
			defer ts.wg.Done()
			defer func() { <-ts.sem }()
			t.answerOffer(ts, sw, m)
		}()
	case m.Answer != nil:
		t.mu.Lock()
		o := t.offers[m.OfferID]
		if o != nil && o.sw == sw {
			delete(t.offers, m.OfferID)
		} else {
			o = nil
		}
		t.mu.Unlock()
		if o == nil {
			return
		}
		if m.PeerID == "" || !sw.claimPeer(o.p, m.PeerID) {
			o.p.close()
			return
		}
		if err := o.p.accept(*m.Answer); err != nil {
			t.log.Debug("applying an answer", zap.Error(err))
			o.p.close()
			return
		}
		t.s.counters.offersAnswered.Add(1)
	default:
		if m.Interval > 0 {
			iv := max(time.Duration(m.Interval*float64(time.Second)), minAnnounceInterval)
			t.mu.Lock()
			t.interval = iv
			t.mu.Unlock()
		}
		if sw != nil && m.Incomplete != nil {
			sw.setIncomplete(int(*m.Incomplete))
			if *m.Incomplete == 0 {
				// Nobody else is in the swarm, so nobody got
				// the offers just sent.
				t.dropOffers(sw)
			}
		}
	}
}

// answerOffer answers one relayed offer.
func (t *trackerClient) answerOffer(ts *trackerSession, sw *swarm, m incomingMsg) {
	p, err := t.s.newPeer(sw)
	if err != nil {
		t.log.Debug("not answering an offer", zap.Error(err))
		return
	}
	if !sw.claimPeer(p, m.PeerID) {
		p.close()
		return
	}
	desc, err := p.answer(ts.ctx, *m.Offer)
	if err != nil {
		t.log.Debug("answering an offer", zap.String("peer_id", m.PeerID), zap.Error(err))
		p.close()
		return
	}
	t.s.counters.answersSent.Add(1)
	t.send(ts, answerMsg{
		Action: "announce", InfoHash: m.InfoHash, PeerID: t.s.peerID, ToPeerID: m.PeerID,
		Answer: *desc, OfferID: m.OfferID,
	})
}

// randomASCII returns n random letters and digits: offer ids that are
// valid as binary strings and as UTF-8 alike.
func randomASCII(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("seeder: crypto/rand failed"))
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
