package tracker

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// failureKind classifies failure replies for statistics.
type failureKind int

const (
	failInvalid failureKind = iota
	failRateLimited
	failUnauthorized
	failPeerIDTaken
	failTooManySwarms
	numFailureKinds
)

// FailureKinds names the failure classes, in the order of Stats.Failures.
var FailureKinds = [numFailureKinds]string{"invalid", "rate_limited", "unauthorized", "peer_id_taken", "too_many_swarms"}

// Rejection reasons for upgrades that were refused.
const (
	rejectOrigin = iota
	rejectPerIP
	rejectClosed
	rejectUpgrade
	numRejectKinds
)

// RejectKinds names the upgrade rejection classes, in the order of
// Stats.Rejected.
var RejectKinds = [numRejectKinds]string{"origin", "per_ip_limit", "closed", "bad_upgrade"}

type counters struct {
	accepted             atomic.Int64
	rejected             [numRejectKinds]atomic.Int64
	slowDropped          atomic.Int64
	announces            atomic.Int64
	scrapes              atomic.Int64
	offersRelayed        atomic.Int64
	answersRelayed       atomic.Int64
	answersUndeliverable atomic.Int64
	failures             [numFailureKinds]atomic.Int64
	expired              atomic.Int64
}

// Stats is a snapshot of a tracker's totals.
type Stats struct {
	Connections          int              `json:"connections"`
	PolledConnections    int              `json:"polled_connections"`
	Swarms               int              `json:"swarms"`
	Peers                int              `json:"peers"`
	Accepted             int64            `json:"connections_accepted"`
	Rejected             map[string]int64 `json:"connections_rejected"`
	SlowDropped          int64            `json:"slow_readers_dropped"`
	Announces            int64            `json:"announces"`
	Scrapes              int64            `json:"scrapes"`
	OffersRelayed        int64            `json:"offers_relayed"`
	AnswersRelayed       int64            `json:"answers_relayed"`
	AnswersUndeliverable int64            `json:"answers_undeliverable"`
	Failures             map[string]int64 `json:"failures"`
	PeersExpired         int64            `json:"peers_expired"`
}

// Option configures a Tracker at construction.
type Option func(*Tracker)

// WithSwarms replaces the in-memory swarm registry, for example with a
// clustered one.
func WithSwarms(s Swarms) Option { return func(t *Tracker) { t.swarms = s } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(t *Tracker) { t.log = l } }

// WithClientIP sets how the client address of a request is found, for the
// per-IP limit (for example honouring trusted proxies). The default uses
// the host of r.RemoteAddr.
func WithClientIP(f func(*http.Request) string) Option { return func(t *Tracker) { t.clientIP = f } }

// Tracker is a WebTorrent tracker. It is an http.Handler that upgrades
// requests to WebSockets; it owns the sockets it accepted and closes them
// on Close.
type Tracker struct {
	policy   atomic.Pointer[Policy] // the default policy
	swarms   Swarms
	log      *slog.Logger
	clientIP func(*http.Request) string
	upgrader websocket.Upgrader

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// poller watches idle sockets (Linux); nil where unavailable. It runs
	// until pollStop, after every socket has gone.
	poller   *poller
	pollStop context.CancelFunc

	mu     sync.Mutex
	conns  map[*conn]struct{}
	perIP  map[string]int
	closed bool

	// The last answer to a client's scrape of all swarms, reused for
	// scrapeAllReuse: listing every swarm is the one request whose cost
	// grows with the tracker, and clients may send it at their full
	// message rate.
	allMu    sync.Mutex
	allAt    time.Time
	allLimit int
	all      []ScrapeEntry

	stats counters
}

// scrapeAllReuse is how long an answer to a scrape of all swarms is
// served again.
const scrapeAllReuse = time.Second

// scrapeAll returns the swarms.ScrapeAll answer for clients: up to limit
// swarms, largest first, up to scrapeAllReuse old. The caller must not
// modify it.
func (t *Tracker) scrapeAll(limit int) []ScrapeEntry {
	t.allMu.Lock()
	defer t.allMu.Unlock()
	// A fresh answer to a larger limit holds the answer to a smaller
	// one (limit < 0 means no limit).
	covers := t.allLimit < 0 || (limit >= 0 && limit <= t.allLimit)
	if now := time.Now(); !covers || now.Sub(t.allAt) >= scrapeAllReuse {
		// A copy: a Swarms may return a slice of a far longer list.
		t.all, t.allAt, t.allLimit = slices.Clone(t.swarms.ScrapeAll(limit)), now, limit
	}
	if limit >= 0 && len(t.all) > limit {
		return t.all[:limit:limit]
	}
	return t.all
}

// New returns a running Tracker; call Close to stop it.
func New(cfg Config, opts ...Option) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Tracker{
		log:   slog.New(slog.DiscardHandler),
		conns: make(map[*conn]struct{}),
		perIP: make(map[string]int),
	}
	p, err := NewPolicy(cfg, nil)
	if err != nil {
		return nil, err
	}
	t.policy.Store(p)
	for _, o := range opts {
		o(t)
	}
	if t.swarms == nil {
		t.swarms = NewMemorySwarms()
	}
	if t.clientIP == nil {
		t.clientIP = remoteHost
	}
	t.upgrader = websocket.Upgrader{
		// Zero sizes reuse the HTTP server's buffers for the handshake;
		// after it the tracker reads and writes frames itself.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true }, // checked before Upgrade
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if p, err := newPoller(); err == nil {
		var pctx context.Context
		pctx, t.pollStop = context.WithCancel(context.Background())
		t.poller = p
		t.wg.Add(1)
		go p.run(pctx, &t.wg)
	}
	t.wg.Add(1)
	go t.janitor()
	return t, nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// config returns the default policy's limits.
func (t *Tracker) config() *Config { return &t.Policy().load().cfg }

// Policy returns the default policy: that of the sockets ServeHTTP accepts
// and of in-process peers.
func (t *Tracker) Policy() *Policy { return t.policy.Load() }

// SetConfig changes the limits of the default policy; its sockets pick up
// the new values with their next message.
func (t *Tracker) SetConfig(cfg Config) error { return t.Policy().SetConfig(cfg) }

// Config returns the default policy's limits, defaults filled in.
func (t *Tracker) Config() Config { return *t.config() }

// SetAuthorizer sets or, with nil, removes the default policy's authorizer.
func (t *Tracker) SetAuthorizer(a Authorizer) { t.Policy().SetAuthorizer(a) }

// MoveSockets makes every socket that follows policy from follow to
// instead, from its next message on, and makes to the default policy if
// from was (in-process peers follow the default). It reports how many
// sockets moved.
func (t *Tracker) MoveSockets(from, to *Policy) int {
	// Recorded first: a socket whose upgrade completes after the scan
	// below follows it when it registers.
	from.movedTo.Store(to)
	t.policy.CompareAndSwap(from, to)
	n := 0
	t.mu.Lock()
	for c := range t.conns {
		if c.policy.CompareAndSwap(from, to) {
			n++
		}
	}
	t.mu.Unlock()
	return n
}

// ReplaceDefaultPolicy makes to the default policy, which in-process peers
// follow, if from is, and moves no socket. It reports whether it did.
func (t *Tracker) ReplaceDefaultPolicy(from, to *Policy) bool {
	return t.policy.CompareAndSwap(from, to)
}

// CloseSockets closes every socket that follows policy p with 1001 "going
// away" and reason; clients reconnect, through an entry point with a
// policy of its own. It reports how many sockets it closed.
func (t *Tracker) CloseSockets(p *Policy, reason string) int {
	p.closed.Store(true) // for sockets registering after the scan
	var closing []*conn
	t.mu.Lock()
	for c := range t.conns {
		if c.policy.Load() == p {
			closing = append(closing, c)
		}
	}
	t.mu.Unlock()
	for _, c := range closing {
		c.closeWith(closeGoingAway, reason)
	}
	return len(closing)
}

// Swarms returns the swarm registry.
func (t *Tracker) Swarms() Swarms { return t.swarms }

// ServeHTTP upgrades the request to a tracker WebSocket under the default
// policy.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.ServePolicy(w, r, t.Policy())
}

// ServePolicy upgrades the request to a tracker WebSocket that follows
// policy p: p's AllowedOrigins and MaxConnsPerIP decide whether it is
// accepted, and the socket keeps following p (until MoveSockets).
func (t *Tracker) ServePolicy(w http.ResponseWriter, r *http.Request, p *Policy) {
	cfg := &p.load().cfg
	origin := r.Header.Get("Origin")
	if !originAllowed(cfg.AllowedOrigins, origin) {
		t.stats.rejected[rejectOrigin].Add(1)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		t.stats.rejected[rejectUpgrade].Add(1)
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this is a WebTorrent tracker: connect with a WebSocket", http.StatusUpgradeRequired)
		return
	}
	ip := t.clientIP(r)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.stats.rejected[rejectClosed].Add(1)
		http.Error(w, "tracker is shutting down", http.StatusServiceUnavailable)
		return
	}
	if cfg.MaxConnsPerIP > 0 && t.perIP[ip] >= cfg.MaxConnsPerIP {
		t.mu.Unlock()
		t.stats.rejected[rejectPerIP].Add(1)
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	t.perIP[ip]++ // reserved before the upgrade so concurrent upgrades count
	t.mu.Unlock()

	ws, err := t.upgrader.Upgrade(hijackWriter{w}, r, nil)
	if err != nil {
		// Upgrade has already written an HTTP error.
		t.stats.rejected[rejectUpgrade].Add(1)
		t.releaseIP(ip)
		return
	}
	nc := ws.NetConn()
	c := &conn{t: t, nc: nc, remoteIP: ip, origin: origin,
		tokens: float64(cfg.MessageBurst), lastToken: time.Now().UnixNano()}
	c.policy.Store(p)
	// Peeking at the socket is only right when the tracker reads the socket
	// itself; a TLS connection can hold decrypted bytes the socket no
	// longer shows, so it (or any wrapped conn) uses plain blocking reads.
	if sc, ok := nc.(syscall.Conn); ok {
		if _, isTCP := nc.(*net.TCPConn); isTCP {
			c.raw, _ = sc.SyscallConn()
		}
	}
	t.mu.Lock()
	// The policy may have been moved or closed while the upgrade was in
	// flight (a reload's cleanup does not wait for hijacked requests);
	// MoveSockets and CloseSockets record that before they scan t.conns.
	now, policyClosed := p.current()
	if t.closed || policyClosed {
		t.mu.Unlock()
		t.releaseIP(ip)
		// Close may already be waiting for the tracker's goroutines,
		// so none may start: say goodbye from here and close the
		// socket.
		reason := "tracker is shutting down"
		if !t.closed {
			reason = "tracker settings changed"
		}
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(appendFrame(nil, opClose, closePayload(closeGoingAway, reason)))
		_ = nc.Close()
		return
	}
	c.policy.Store(now)
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	t.stats.accepted.Add(1)
	c.lastRead.Store(time.Now().UnixNano())
	// Hand the socket to the poller, or else to a fresh goroutine; either
	// way the HTTP handler returns (its goroutine's stack is deep after a
	// middleware chain).
	if t.poller != nil && c.raw != nil && t.poller.add(c) == nil {
		return
	}
	go c.readLoop()
}

func (t *Tracker) releaseIP(ip string) {
	t.mu.Lock()
	t.releaseIPLocked(ip)
	t.mu.Unlock()
}

// releaseIPLocked gives back one connection of ip's per-IP count; t.mu is held.
func (t *Tracker) releaseIPLocked(ip string) {
	if t.perIP[ip] <= 1 {
		delete(t.perIP, ip)
	} else {
		t.perIP[ip]--
	}
}

// removeConn forgets a closed socket and everything it held.
func (t *Tracker) removeConn(c *conn) {
	for _, p := range c.pairs {
		t.swarms.Leave(p.infoHash, p.peerID, c)
	}
	c.pairs = nil
	t.mu.Lock()
	if _, ok := t.conns[c]; ok {
		delete(t.conns, c)
		t.releaseIPLocked(c.remoteIP)
	}
	t.mu.Unlock()
}

// janitor pings sockets and expires peers that stopped re-announcing.
//
// Only a socket from which nothing arrived for a ping interval is pinged,
// and at most once per interval: active peers need no pings, and since
// each socket's silence starts at its own last message the pings spread
// over time instead of going out to every socket in the same second (with
// tens of thousands of sockets such a burst delays relays by a tenth of a
// second or more).
func (t *Tracker) janitor() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastExpire time.Time
	var batch []*conn
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			// Peers of every policy share the swarms, so they expire
			// after the longest peer timeout in use.
			peerTimeout := t.config().PeerTimeout
			batch = t.snapshot(batch[:0])
			for i, c := range batch {
				cfg := c.config()
				peerTimeout = max(peerTimeout, cfg.PeerTimeout)
				pingCut := now.Add(-cfg.PingInterval).UnixNano()
				last := c.lastRead.Load()
				if last < pingCut && c.lastPing < pingCut {
					c.lastPing = now.UnixNano()
					c.ping()
				}
				// Sockets the poller watches have no read deadline
				// running, so close those silent for longer than the
				// read timeout.
				if t.poller != nil && last < now.Add(-cfg.ReadTimeout).UnixNano() {
					c.abort()
				}
				batch[i] = nil
			}
			if now.Sub(lastExpire) >= peerTimeout/4 {
				lastExpire = now
				if n := t.swarms.Expire(now.Add(-peerTimeout)); n > 0 {
					t.stats.expired.Add(int64(n))
				}
			}
		}
	}
}

func (t *Tracker) connCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

func (t *Tracker) snapshot(dst []*conn) []*conn {
	t.mu.Lock()
	for c := range t.conns {
		dst = append(dst, c)
	}
	t.mu.Unlock()
	return dst
}

// Close closes every socket with "going away", stops background work and
// waits for all of the tracker's goroutines to end.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	for _, c := range t.snapshot(nil) {
		c.closeWith(closeGoingAway, "tracker is shutting down")
	}
	// Sockets end as their close frames go out (or within a second, by
	// closeWith's backstop); the poller must keep running until then.
	for deadline := time.Now().Add(3 * time.Second); t.connCount() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if t.pollStop != nil {
		t.pollStop() // the poller finishes any socket still registered
	}
	t.wg.Wait()
	return nil
}

// Stats returns a snapshot of the totals.
func (t *Tracker) Stats() Stats {
	swarms, peers := t.swarms.Totals()
	t.mu.Lock()
	conns := len(t.conns)
	t.mu.Unlock()
	polled := 0
	if t.poller != nil {
		polled = t.poller.count()
	}
	s := Stats{
		Connections:          conns,
		PolledConnections:    polled,
		Swarms:               swarms,
		Peers:                peers,
		Accepted:             t.stats.accepted.Load(),
		Rejected:             make(map[string]int64, numRejectKinds),
		SlowDropped:          t.stats.slowDropped.Load(),
		Announces:            t.stats.announces.Load(),
		Scrapes:              t.stats.scrapes.Load(),
		OffersRelayed:        t.stats.offersRelayed.Load(),
		AnswersRelayed:       t.stats.answersRelayed.Load(),
		AnswersUndeliverable: t.stats.answersUndeliverable.Load(),
		Failures:             make(map[string]int64, numFailureKinds),
		PeersExpired:         t.stats.expired.Load(),
	}
	for i, name := range RejectKinds {
		s.Rejected[name] = t.stats.rejected[i].Load()
	}
	for i, name := range FailureKinds {
		s.Failures[name] = t.stats.failures[i].Load()
	}
	return s
}
