package tracker

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// pingMarker in a write queue asks the writer to send a ping control frame.
var pingMarker = []byte(nil)

// conn is one client WebSocket. Its reader goroutine runs the protocol;
// writes go through a bounded queue drained by a writer goroutine that
// exists only while there is something to write, so an idle socket costs
// one parked goroutine.
type conn struct {
	t        *Tracker
	ws       *websocket.Conn
	remoteIP string
	origin   string

	mu      sync.Mutex
	queue   [][]byte
	writing bool
	closed  bool

	// Owned only by the reader goroutine.
	pairs     []pair
	tokens    float64
	lastToken int64 // unix nanoseconds
	lastDeny  int64 // unix nanoseconds of the last rate-limit reply
	buf       []Endpoint
}

// pair is one (info_hash, peer_id) a socket holds.
type pair struct {
	infoHash string
	peerID   string
}

// Send implements Endpoint. It never blocks: a socket whose queue is full is
// closed, because a reader that cannot keep up would otherwise make the
// tracker buffer without bound.
func (c *conn) Send(msg []byte) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.t.config().WriteQueue {
		c.closed = true
		c.queue = nil
		c.mu.Unlock()
		c.t.stats.slowDropped.Add(1)
		// Closing the socket ends the reader, which cleans up.
		c.ws.NetConn().Close()
		return false
	}
	c.queue = append(c.queue, msg)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.t.wg.Add(1)
		go c.writeLoop()
	}
	return true
}

// writeLoop writes queued messages until the queue is empty.
func (c *conn) writeLoop() {
	defer c.t.wg.Done()
	var batch [][]byte
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		timeout := c.t.config().WriteTimeout
		for i, msg := range batch {
			deadline := time.Now().Add(timeout)
			var err error
			if msg == nil {
				err = c.ws.WriteControl(websocket.PingMessage, nil, deadline)
			} else {
				c.ws.SetWriteDeadline(deadline)
				err = c.ws.WriteMessage(websocket.TextMessage, msg)
			}
			batch[i] = nil
			if err != nil {
				c.mu.Lock()
				c.closed = true
				c.writing = false
				c.queue = nil
				c.mu.Unlock()
				c.ws.NetConn().Close()
				return
			}
		}
	}
}

// ping queues a ping. Pings share the queue so a stuck socket fills it and
// is dropped like any slow reader.
func (c *conn) ping() { c.Send(pingMarker) }

// closeWith sends a close frame, best effort, and closes the socket.
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	msg := websocket.FormatCloseMessage(code, reason)
	c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	c.ws.NetConn().Close()
}

// readLoop runs the protocol until the socket closes, then removes
// everything the socket held.
func (c *conn) readLoop() {
	t := c.t
	defer t.wg.Done()
	defer t.removeConn(c)
	cfg := t.config()
	c.ws.SetReadLimit(cfg.MaxMessageSize)
	c.ws.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.t.config().ReadTimeout))
	})
	c.tokens = float64(cfg.MessageBurst)
	c.lastToken = time.Now().UnixNano()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			// gorilla already answered protocol errors and oversized
			// messages with a close frame; just tidy up.
			if errors.Is(err, websocket.ErrReadLimit) {
				t.stats.failures[failInvalid].Add(1)
			}
			c.mu.Lock()
			c.closed = true
			c.queue = nil
			c.mu.Unlock()
			c.ws.NetConn().Close()
			return
		}
		cfg = t.config()
		c.ws.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
		if kind != websocket.TextMessage {
			t.stats.failures[failInvalid].Add(1)
			c.closeWith(websocket.CloseUnsupportedData, errNotText.Error())
			return
		}
		if !c.allow(cfg) {
			continue
		}
		c.handle(data, cfg)
	}
}

// allow applies the per-socket message rate. A denied message gets at most
// one failure reply per second, so flooding cannot amplify.
func (c *conn) allow(cfg *Config) bool {
	if cfg.MessagesPerSecond < 0 {
		return true
	}
	now := time.Now().UnixNano()
	c.tokens += float64(now-c.lastToken) / 1e9 * cfg.MessagesPerSecond
	c.lastToken = now
	if burst := float64(cfg.MessageBurst); c.tokens > burst {
		c.tokens = burst
	}
	if c.tokens >= 1 {
		c.tokens--
		return true
	}
	c.t.stats.failures[failRateLimited].Add(1)
	if now-c.lastDeny >= int64(time.Second) {
		c.lastDeny = now
		c.Send(appendFailure(nil, &requestError{action: actionAnnounce, reason: "rate limit exceeded: message dropped"}))
	}
	return false
}

// handle processes one text message.
func (c *conn) handle(data []byte, cfg *Config) {
	t := c.t
	req, err := decodeRequest(data, cfg)
	if err != nil {
		c.fail(failInvalid, err.(*requestError))
		return
	}
	switch req.Action {
	case actionAnnounce:
		t.stats.announces.Add(1)
		c.announce(req, cfg)
	case actionScrape:
		t.stats.scrapes.Add(1)
		c.scrape(req, cfg)
	}
}

func (c *conn) fail(kind failureKind, e *requestError) {
	c.t.stats.failures[kind].Add(1)
	c.Send(appendFailure(nil, e))
}

func (c *conn) owns(ih, peerID string) int {
	for i, p := range c.pairs {
		if p.infoHash == ih && p.peerID == peerID {
			return i
		}
	}
	return -1
}

func (c *conn) announce(req *request, cfg *Config) {
	t := c.t
	ih := req.InfoHash // validated by decodeRequest
	peerID := *req.PeerID
	event := ""
	if req.Event != nil {
		event = *req.Event
	}
	if a := t.authorizer(); a != nil {
		err := a.Authorize(t.ctx, AuthRequest{Action: actionAnnounce, InfoHash: ih, PeerID: peerID, RemoteIP: c.remoteIP, Origin: c.origin})
		if err != nil {
			c.fail(failUnauthorized, &requestError{action: actionAnnounce, infoHash: ih, reason: "not allowed: " + truncate(err.Error(), 200)})
			return
		}
	}
	idx := c.owns(ih, peerID)
	if event == eventStopped {
		if idx >= 0 {
			t.swarms.Leave(ih, peerID, c)
			c.pairs = append(c.pairs[:idx], c.pairs[idx+1:]...)
		}
		entry, _ := t.swarms.Scrape(ih)
		c.Send(appendAnnounceResponse(nil, ih, Counts{entry.Complete, entry.Incomplete}, int(cfg.AnnounceInterval/time.Second)))
		return
	}
	if idx < 0 && len(c.pairs) >= cfg.MaxSwarmsPerConn {
		c.fail(failTooManySwarms, &requestError{action: actionAnnounce, infoHash: ih, reason: "too many swarms on this connection"})
		return
	}
	seeding := event == eventCompleted || (req.Left != nil && *req.Left == 0)
	counts, _, err := t.swarms.Announce(ih, peerID, c, seeding, event == eventCompleted, time.Now())
	if err != nil {
		c.fail(failPeerIDTaken, &requestError{action: actionAnnounce, infoHash: ih, reason: err.Error()})
		return
	}
	if idx < 0 {
		c.pairs = append(c.pairs, pair{infoHash: ih, peerID: peerID})
	}
	if req.Answer != nil {
		// Answers are routed, not acknowledged, as the reference tracker does.
		to, ok := t.swarms.Lookup(ih, *req.ToPeerID)
		if !ok || to == Endpoint(c) {
			t.stats.answersUndeliverable.Add(1)
			return
		}
		if to.Send(appendRelayedAnswer(nil, ih, peerID, *req.OfferID, req.Answer)) {
			t.stats.answersRelayed.Add(1)
		}
		return
	}
	c.Send(appendAnnounceResponse(nil, ih, counts, int(cfg.AnnounceInterval/time.Second)))
	if len(req.Offers) == 0 {
		return
	}
	want := cfg.MaxNumwant
	if req.Numwant != nil && int(*req.Numwant) < want {
		want = int(*req.Numwant)
	}
	want = min(want, len(req.Offers), cfg.MaxOffers)
	c.buf = t.swarms.PickPeers(c.buf[:0], ih, c, want)
	for i, ep := range c.buf {
		o := &req.Offers[i]
		if ep.Send(appendRelayedOffer(nil, ih, peerID, o.OfferID, o.Offer)) {
			t.stats.offersRelayed.Add(1)
		}
		c.buf[i] = nil
	}
}

func (c *conn) scrape(req *request, cfg *Config) {
	t := c.t
	all, list, err := scrapeInfoHashes(req, cfg.ScrapeAllLimit)
	if err != nil {
		c.fail(failInvalid, &requestError{action: actionScrape, reason: err.Error()})
		return
	}
	auth := t.authorizer()
	allowed := func(ih string) error {
		if auth == nil {
			return nil
		}
		return auth.Authorize(t.ctx, AuthRequest{Action: actionScrape, InfoHash: ih, RemoteIP: c.remoteIP, Origin: c.origin})
	}
	var files []ScrapeEntry
	if all {
		for _, e := range t.swarms.ScrapeAll(cfg.ScrapeAllLimit) {
			if allowed(e.InfoHash) == nil {
				files = append(files, e)
			}
		}
	} else {
		for _, ih := range list {
			if err := allowed(ih); err != nil {
				c.fail(failUnauthorized, &requestError{action: actionScrape, infoHash: ih, reason: "not allowed: " + truncate(err.Error(), 200)})
				return
			}
			e, _ := t.swarms.Scrape(ih)
			files = append(files, e)
		}
	}
	c.Send(appendScrapeResponse(nil, files, int(cfg.AnnounceInterval/time.Second)))
}

// originAllowed reports whether origin is in the list (an empty list or
// "*" allows all). Comparison ignores case, as origins are case-insensitive
// in scheme and host. A request without Origin is not from a browser page;
// the check exists to stop other sites' pages, and a non-browser client
// could send any Origin it likes, so it is let through.
func originAllowed(list []string, origin string) bool {
	if len(list) == 0 || origin == "" {
		return true
	}
	for _, o := range list {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}
