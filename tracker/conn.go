package tracker

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// outFrame is one queued frame: a text message or a control frame, or with
// op opFramed the unwritten rest of a frame already encoded.
type outFrame struct {
	op      byte
	payload []byte
}

// opFramed marks an outFrame whose payload is encoded frame bytes; it is no
// WebSocket opcode (those are 4 bits).
const opFramed = 0xFF

// conn is one client WebSocket. On Linux an idle socket sits in one of the
// tracker's epoll loops with no goroutine and no buffer; when data arrives
// that loop reads it and runs the protocol on the complete messages (see
// poller). A frame for a socket with nothing waiting is written at once by
// whoever sends it, without blocking; only what the socket cannot take then
// goes into a bounded queue, drained by a writer goroutine that exists only
// while there is something to write.
type conn struct {
	t        *Tracker
	nc       net.Conn
	raw      syscall.RawConn
	remoteIP string
	origin   string
	parser   frameParser
	// policy is the socket's Policy; nil for an in-process peer, which
	// follows the tracker's default policy.
	policy atomic.Pointer[Policy]

	mu         sync.Mutex
	queue      []outFrame
	queueBytes int64 // payload bytes in queue, against Config.WriteQueueBytes
	writing    bool  // a sender or the writer goroutine owns the socket's write side
	closing    bool  // a close frame is queued; nothing may follow it
	closed     bool
	readerDone bool // finish ran: whoever of reader and writer ends last closes the socket

	// Poller registration (Linux): the loop that owns the socket (nil for
	// a socket with its own reader goroutine) and the socket's id there.
	// pending holds a partial frame between reads.
	loop     *pollLoop
	pollID   uint64
	pending  *[]byte
	finished atomic.Bool
	lastRead atomic.Int64 // unix nanoseconds of the last data read, for idle timeouts
	lastPing int64        // unix nanoseconds of the last ping; owned by the janitor

	// Owned by the reader goroutine.
	pairs     []pair
	tokens    float64
	lastToken int64 // unix nanoseconds
	lastDeny  int64 // unix nanoseconds of the last rate-limit reply
	buf       []Endpoint
	msg       []byte // scratch for outgoing messages; Send does not keep it
	cfg       *Config

	// local, for an in-process peer (see LocalPeer), receives what would
	// be written to the socket; such a conn has no socket.
	local func(msg []byte) bool
}

// pair is one (info_hash, peer_id) a socket holds.
type pair struct {
	infoHash string
	peerID   string
}

// currentPolicy returns the policy the socket follows.
func (c *conn) currentPolicy() *Policy {
	if p := c.policy.Load(); p != nil {
		return p
	}
	return c.t.Policy()
}

// config returns the limits the socket follows.
func (c *conn) config() *Config { return &c.currentPolicy().load().cfg }

// authorizer returns the authorizer of the socket's policy, or nil, always
// for an in-process peer: it is the origin's own, and on a tracker shared
// by entry points with different authorizers no one of them is its.
func (c *conn) authorizer() Authorizer {
	if c.local != nil {
		return nil
	}
	return c.currentPolicy().load().auth
}

// Send implements Endpoint. It never blocks: a socket whose queue is full is
// closed, because a reader that cannot keep up would otherwise make the
// tracker buffer without bound.
func (c *conn) Send(msg []byte) bool {
	if c.local != nil {
		return c.local(append([]byte(nil), msg...))
	}
	return c.enqueue(opText, msg, false)
}

// enqueue sends one frame. payload is not kept: the frame is written at once
// when nothing else is being written, else a copy is queued. last marks a
// close frame, after which nothing more is sent.
func (c *conn) enqueue(op byte, payload []byte, last bool) bool {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return false
	}
	if !c.writing && c.raw != nil && !last {
		c.writing = true
		c.mu.Unlock()
		return c.writeNow(op, payload)
	}
	if !last && c.queueFullLocked(len(payload)) {
		c.closed = true
		c.queue = nil
		c.queueBytes = 0
		c.mu.Unlock()
		c.t.stats.slowDropped.Add(1)
		// Shutting the socket down ends the reader, which cleans up.
		c.abort()
		return false
	}
	c.queue = append(c.queue, outFrame{op, append([]byte(nil), payload...)})
	c.queueBytes += int64(len(payload))
	if last {
		c.closing = true
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.t.wg.Add(1)
		go c.writeLoop()
	}
	return true
}

// queueFullLocked reports whether a frame of n payload bytes would take
// the queue over either of its limits; c.mu must be held. Counting only
// messages would let a socket hold WriteQueue relays of almost
// MaxMessageSize each.
func (c *conn) queueFullLocked(n int) bool {
	cfg := c.config()
	if len(c.queue) >= cfg.WriteQueue {
		return true
	}
	return len(c.queue) > 0 && c.queueBytes+int64(n) > cfg.WriteQueueBytes
}

// writeNow writes one frame without waiting, by the caller that took the
// write side in enqueue. What the socket does not take, and whatever other
// senders queued meanwhile, is left to a writer goroutine. Most frames go out
// here, with no copy, no goroutine and no timer.
func (c *conn) writeNow(op byte, payload []byte) bool {
	out := getBuffer()
	*out = appendFrame(*out, op, payload)
	n, err := writeNonBlocking(c.raw, *out)
	var rest []byte
	if err == nil && n < len(*out) {
		rest = append([]byte(nil), (*out)[n:]...)
	}
	putBuffer(out)
	if err != nil {
		c.writeFailed()
		return false
	}
	c.mu.Lock()
	if rest != nil && !c.closed {
		c.queue = append(c.queue, outFrame{})
		copy(c.queue[1:], c.queue)
		c.queue[0] = outFrame{opFramed, rest}
		c.queueBytes += int64(len(rest))
	}
	if len(c.queue) > 0 && !c.closed {
		c.mu.Unlock()
		c.t.wg.Add(1)
		go c.writeLoop()
		return true
	}
	done := c.stopWritingLocked()
	c.mu.Unlock()
	if done {
		c.nc.Close()
	}
	return true
}

// stopWritingLocked gives up the write side; c.mu must be held. It reports
// whether the reader has finished, in which case the caller closes the
// socket (see finish).
func (c *conn) stopWritingLocked() bool {
	c.writing = false
	c.queue = nil
	c.queueBytes = 0
	return c.readerDone
}

// writeFailed ends the write side after a failed write and makes sure the
// socket is closed: by the reader's cleanup, or here if that already ran.
func (c *conn) writeFailed() {
	c.mu.Lock()
	c.closed = true
	done := c.stopWritingLocked()
	c.mu.Unlock()
	if done {
		c.nc.Close()
	} else {
		c.abort()
	}
}

// writeLoop writes queued frames, all that are waiting in one write call,
// until the queue is empty. After a close frame it closes the socket.
func (c *conn) writeLoop() {
	defer c.t.wg.Done()
	var batch []outFrame
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			done := c.stopWritingLocked()
			c.mu.Unlock()
			if done {
				c.nc.Close()
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		// queueBytes keeps counting the batch until it is written, so
		// that the queue filling meanwhile stays within the byte cap
		// together with it.
		var batchBytes int64
		for _, f := range batch {
			batchBytes += int64(len(f.payload))
		}
		c.mu.Unlock()
		out := getBuffer()
		closeAfter := false
		for i, f := range batch {
			if f.op == opFramed {
				*out = append(*out, f.payload...)
			} else {
				*out = appendFrame(*out, f.op, f.payload)
			}
			closeAfter = closeAfter || f.op == opClose
			batch[i] = outFrame{}
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.config().WriteTimeout))
		_, err := c.nc.Write(*out)
		putBuffer(out)
		if err != nil || closeAfter {
			c.writeFailed() // after a close frame, this closes the socket too
			return
		}
		c.mu.Lock()
		c.queueBytes = max(c.queueBytes-batchBytes, 0)
		c.mu.Unlock()
	}
}

// ping queues a ping. Pings share the queue so a stuck socket fills it and
// is dropped like any slow reader.
func (c *conn) ping() { c.enqueue(opPing, nil, false) }

// closeWith queues a close frame after whatever is queued and makes sure the
// socket is closed within a second even if the peer stops reading.
func (c *conn) closeWith(code int, reason string) {
	if c.enqueue(opClose, closePayload(code, reason), true) {
		time.AfterFunc(time.Second, c.abort)
		return
	}
	c.mu.Lock()
	pending := c.closing && !c.closed
	c.mu.Unlock()
	if pending {
		return // an earlier close frame is on its way, with its own backstop
	}
	c.abort()
}

// abort shuts the socket down without closing it: its reader then sees the
// end of the stream and is the one that cleans up and closes, so a socket
// is never closed while the poller still watches it (its number could be
// reused). Connections the tracker cannot shut down are closed.
func (c *conn) abort() {
	if c.raw != nil && shutdownSocket(c.raw) == nil {
		return
	}
	c.nc.Close()
}

// readLoop runs the protocol until the socket closes, then removes
// everything the socket held; sockets the poller does not watch (TLS, other
// platforms) use it. A goroutine that has processed messages has a grown
// stack and Go only shrinks stacks during GC, which an idle tracker rarely
// runs; so once a batch of messages is done, the next wait for data is
// handed to a fresh goroutine, whose stack starts small and stays shallow
// while parked.
func (c *conn) readLoop() {
	if c.readSome() {
		go c.readLoop() // the WaitGroup count passes to the new goroutine
		return
	}
	c.finish()
}

// readSome waits for data, then reads and handles messages until no
// partial frame is left. It reports whether the socket is still open.
func (c *conn) readSome() bool {
	c.cfg = c.config()
	c.parser.maxMessage = int(c.cfg.MaxMessageSize)
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
	if c.raw != nil {
		// Park without a buffer until there is something to read.
		if err := waitReadable(c.raw); err != nil {
			return false
		}
	}
	pending := getBuffer()
	defer func() { putBuffer(pending) }()
	for {
		b := *pending
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow; the frame size limit bounds it
		}
		n, err := c.nc.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*pending = b
		if n > 0 && !c.consume(pending) {
			return false
		}
		if err != nil || c.parser.closed {
			return false
		}
		if len(*pending) == 0 {
			return true
		}
		// A partial frame: wait for the rest, within the read deadline.
		c.nc.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
	}
}

// consume handles the complete frames at the start of *buf and keeps the
// rest (a partial frame) there. It reports false when a frame was bad; the
// socket is then being closed.
func (c *conn) consume(buf *[]byte) bool {
	b := *buf
	c.lastRead.Store(time.Now().UnixNano())
	used, ferr := c.parser.parse(b, c)
	if ferr != nil {
		if ferr.code == closeTooBig || ferr.code == closeUnsupported {
			c.t.stats.failures[failInvalid].Add(1)
		}
		c.closeWith(ferr.code, ferr.reason)
		return false
	}
	*buf = b[:copy(b, b[used:])]
	return true
}

// finish forgets the socket and closes it, or leaves that to an active
// writer. It runs once, from the goroutine that saw the socket end.
func (c *conn) finish() {
	if !c.finished.CompareAndSwap(false, true) {
		return
	}
	defer c.t.wg.Done()
	c.t.removeConn(c)
	if c.loop != nil {
		c.t.poller.remove(c) // before the socket can be closed
		if c.pending != nil {
			putBuffer(c.pending)
			c.pending = nil
		}
	}
	c.mu.Lock()
	c.readerDone = true
	if !c.closing {
		c.closed = true
		c.queue = nil
		c.queueBytes = 0
	}
	writerActive := c.writing
	c.mu.Unlock()
	// An active writer closes the socket when it is done (after sending a
	// queued close frame).
	if !writerActive {
		c.nc.Close()
	}
}

// onText implements frameHandler.
func (c *conn) onText(msg []byte) {
	c.cfg = c.config()
	scratch := getBuffer()
	c.msg = *scratch
	if c.allow(msg, c.cfg) {
		c.handle(msg, c.cfg)
	}
	*scratch = c.msg
	c.msg = nil
	putBuffer(scratch)
}

// onPing implements frameHandler.
func (c *conn) onPing(payload []byte) {
	c.enqueue(opPong, payload, false)
}

// onPong implements frameHandler; the read deadline moves with every read.
func (c *conn) onPong() {}

// onClose implements frameHandler: echo the code and close.
func (c *conn) onClose(code int) {
	c.closeWith(code, "") // the parser let only valid codes through
}

// allow applies the per-socket message rate to msg. A denied message gets
// at most one failure reply per second, so flooding cannot amplify.
func (c *conn) allow(msg []byte, cfg *Config) bool {
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
		c.msg = appendFailure(c.msg[:0], rateLimitError(msg))
		c.Send(c.msg)
	}
	return false
}

// rateLimitError is the reply to msg, dropped by the rate limit. It names
// the message's action and info_hash as far as they can be read: clients
// ignore a reply without their own info_hash, and the limit would go
// unnoticed. The message is parsed only for this reply, at most once a
// second.
func rateLimitError(msg []byte) *requestError {
	e := &requestError{action: actionAnnounce, reason: "rate limit exceeded: message dropped"}
	req := requestPool.Get().(*request)
	defer putRequest(req)
	if _, err := parseRequest(msg, req); err != nil {
		return e
	}
	if req.Action == actionScrape {
		e.action = actionScrape
	}
	if req.infoHashKind == infoHashString && checkBinaryString(req.InfoHash) == nil {
		e.infoHash = req.InfoHash
	}
	return e
}

// handle processes one text message.
func (c *conn) handle(data []byte, cfg *Config) {
	t := c.t
	req := requestPool.Get().(*request)
	defer putRequest(req)
	if err := decodeRequest(data, req); err != nil {
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
	c.msg = appendFailure(c.msg[:0], e)
	c.Send(c.msg)
}

func (c *conn) owns(ih, peerID string) int {
	for i, p := range c.pairs {
		if p.infoHash == ih && p.peerID == peerID {
			return i
		}
	}
	return -1
}

// forgetExpiredPairs drops the pairs whose peer id no longer belongs to
// this socket in its swarm: it expired there, and may since have been
// taken by another socket.
func (c *conn) forgetExpiredPairs() {
	kept := c.pairs[:0]
	for _, p := range c.pairs {
		if ep, ok := c.t.swarms.Lookup(p.infoHash, p.peerID); ok && ep == Endpoint(c) {
			kept = append(kept, p)
		}
	}
	clear(c.pairs[len(kept):])
	c.pairs = kept
}

// Trusted implements TrustedEndpoint: in-process peers (LocalPeer) are the
// origin's own; a socket's claims, such as a peer id prefix, prove nothing.
func (c *conn) Trusted() bool { return c.local != nil }

func (c *conn) announce(req *request, cfg *Config) {
	t := c.t
	ih := req.InfoHash // validated by decodeRequest
	peerID := *req.PeerID
	event := ""
	if req.Event != nil {
		event = *req.Event
	}
	if a := c.authorizer(); a != nil {
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
		c.msg = appendAnnounceResponse(c.msg[:0], ih, Counts{entry.Complete, entry.Incomplete}, int(cfg.AnnounceInterval/time.Second))
		c.Send(c.msg)
		return
	}
	if idx < 0 && !c.Trusted() && len(c.pairs) >= cfg.MaxSwarmsPerConn {
		// P2P Media Loader never sends "stopped" and keeps its socket for
		// the page's lifetime: swarms it left end by expiry, which only
		// the swarm registry sees.
		c.forgetExpiredPairs()
		if len(c.pairs) >= cfg.MaxSwarmsPerConn {
			c.fail(failTooManySwarms, &requestError{action: actionAnnounce, infoHash: ih, reason: "too many swarms on this connection"})
			return
		}
	}
	seeding := event == eventCompleted || (req.Left != nil && *req.Left == 0)
	counts, added, err := t.swarms.Announce(ih, peerID, c, seeding, event == eventCompleted, time.Now())
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
		c.msg = appendRelayed(c.msg[:0], "answer", ih, peerID, *req.OfferID, req.Answer)
		if to.Send(c.msg) {
			t.stats.answersRelayed.Add(1)
		}
		return
	}
	c.msg = appendAnnounceResponse(c.msg[:0], ih, counts, int(cfg.AnnounceInterval/time.Second))
	c.Send(c.msg)
	if len(req.Offers) == 0 {
		return
	}
	want := cfg.MaxNumwant
	if req.Numwant != nil && int(*req.Numwant) < want {
		want = int(*req.Numwant)
	}
	want = min(want, len(req.Offers), cfg.MaxOffers)
	c.buf = c.buf[:0]
	var seeder Endpoint
	if added && cfg.SeederFirst != "" && want > 0 {
		if ep, ok := t.swarms.PickSeeder(ih, cfg.SeederFirst, c); ok {
			seeder = ep
			c.buf = append(c.buf, ep)
		}
	}
	// One extra pick stands in for the seeder if it is picked again.
	c.buf = t.swarms.PickPeers(c.buf, ih, c, want+len(c.buf))
	sent := 0
	for i, ep := range c.buf {
		c.buf[i] = nil
		if sent == want || (i > 0 && ep == seeder) {
			continue
		}
		o := &req.Offers[sent]
		sent++
		c.msg = appendRelayed(c.msg[:0], "offer", ih, peerID, o.OfferID, o.Offer)
		if ep.Send(c.msg) {
			t.stats.offersRelayed.Add(1)
		}
	}
}

func (c *conn) scrape(req *request, cfg *Config) {
	t := c.t
	all, list, err := scrapeInfoHashes(req, cfg.ScrapeAllLimit)
	if err != nil {
		c.fail(failInvalid, &requestError{action: actionScrape, reason: err.Error()})
		return
	}
	auth := c.authorizer()
	allowed := func(ih string) error {
		if auth == nil {
			return nil
		}
		return auth.Authorize(t.ctx, AuthRequest{Action: actionScrape, InfoHash: ih, RemoteIP: c.remoteIP, Origin: c.origin})
	}
	var files []ScrapeEntry
	if all {
		for _, e := range t.scrapeAll(cfg.ScrapeAllLimit) {
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
	c.msg = appendScrapeResponse(c.msg[:0], files, int(cfg.AnnounceInterval/time.Second))
	c.Send(c.msg)
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
