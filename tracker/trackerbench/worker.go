package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// A worker is a child process (this binary run with -worker) that holds a
// share of the simulated peers, each on its own WebSocket. It reads one
// JSON workerConfig line and then workerCommand lines on stdin, and writes
// workerReply lines on stdout. Several workers are used because one process
// may open at most 20,000 files.

// workerConfig is the first line a worker reads.
type workerConfig struct {
	// ID numbers the worker, for logs.
	ID int `json:"id"`
	// URL is the tracker's WebSocket URL.
	URL string `json:"url"`
	// Origin is sent as the Origin header unless empty.
	Origin string `json:"origin"`
	// FirstPeer and Peers select the worker's peers out of all of them.
	FirstPeer int `json:"first_peer"`
	Peers     int `json:"peers"`
	// Swarms is the number of swarms; peer i joins swarm i mod Swarms.
	Swarms int `json:"swarms"`
	// LocalAddrs are the source addresses the worker's sockets use, in turn.
	LocalAddrs []string `json:"local_addrs"`
	// ConnectRate is the worker's share of connections per second.
	ConnectRate float64 `json:"connect_rate"`
	// Senders is the number of goroutines writing announces (answers are
	// written by the goroutine reading the offer).
	Senders int `json:"senders"`
}

// workerCommand is a command line sent to a worker.
type workerCommand struct {
	// Cmd is "connect", "snapshot", "load" or "close".
	Cmd string `json:"cmd"`
	// Rate is the worker's share of announces per second for "load".
	Rate float64 `json:"rate,omitempty"`
	// Duration is the load duration in nanoseconds.
	Duration time.Duration `json:"duration,omitempty"`
	// Drain is the longest wait for replies after the load or connect.
	Drain time.Duration `json:"drain,omitempty"`
}

// workerReply is a line a worker writes: "ready" after start, then one
// reply per command with the stats gathered since the previous reply, or
// "error".
type workerReply struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
}

// sendJob is an announce for the sender goroutines to build and write.
type sendJob struct {
	p    *peer
	kind int
}

// peer is one simulated P2P Media Loader peer.
type peer struct {
	infoHash string
	peerID   string

	wmu  sync.Mutex // serialises writes on conn
	conn *websocket.Conn

	// alive is set while conn is open.
	alive atomic.Bool

	// sent holds the send times (Unix nanoseconds) of the announces waiting
	// for their response, oldest first, in a ring; trackers answer the
	// announces of one socket in order. When more are waiting than the ring
	// holds, the oldest times are dropped and counted in lost.
	amu   sync.Mutex
	sent  [32]int64
	head  int
	count int
	lost  int
}

// announced records the send time of an announce.
func (p *peer) announced(t int64) {
	p.amu.Lock()
	if p.count == len(p.sent) {
		p.head = (p.head + 1) % len(p.sent)
		p.count--
		p.lost++
	}
	p.sent[(p.head+p.count)%len(p.sent)] = t
	p.count++
	p.amu.Unlock()
}

// acked removes the oldest waiting announce. It returns its send time (0
// if that was dropped) and whether an announce was waiting at all.
func (p *peer) acked() (int64, bool) {
	p.amu.Lock()
	defer p.amu.Unlock()
	if p.lost > 0 {
		p.lost--
		return 0, true
	}
	if p.count == 0 {
		return 0, false
	}
	t := p.sent[p.head]
	p.head = (p.head + 1) % len(p.sent)
	p.count--
	return t, true
}

// unacked returns the number of announces waiting for a response.
func (p *peer) unacked() int {
	p.amu.Lock()
	defer p.amu.Unlock()
	return p.count + p.lost
}

// worker holds the state of a worker process.
type worker struct {
	cfg    workerConfig
	peers  []*peer
	dialer []*websocket.Dialer
	jobs   chan sendJob

	// closing is set when the worker closes its sockets on purpose.
	closing atomic.Bool
	// connected counts open sockets.
	connected atomic.Int64
	// lastRecv is the time of the last received message in Unix nanoseconds.
	lastRecv atomic.Int64
	// readers counts running reader goroutines.
	readers sync.WaitGroup

	mu    sync.Mutex
	stats *Stats
}

// update runs f on the current stats under the lock.
func (w *worker) update(f func(s *Stats)) {
	w.mu.Lock()
	f(w.stats)
	w.mu.Unlock()
}

// takeStats returns the stats gathered so far and starts new ones.
func (w *worker) takeStats() *Stats {
	w.mu.Lock()
	s := w.stats
	w.stats = &Stats{}
	w.mu.Unlock()
	s.Connected = w.connected.Load()
	return s
}

// runWorker is the main function of a worker process.
func runWorker() error {
	_, _ = raiseFileLimit()
	if dir := os.Getenv("TRACKERBENCH_WORKER_PROFILE"); dir != "" {
		// A development aid: profile the generator's own CPU use.
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", os.Getpid())))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	out := json.NewEncoder(os.Stdout)
	reply := func(r workerReply) {
		if err := out.Encode(r); err != nil {
			// The parent is gone: nothing left to report to.
			os.Exit(1)
		}
	}
	if !in.Scan() {
		return errors.New("worker: no configuration on stdin")
	}
	var cfg workerConfig
	if err := json.Unmarshal(in.Bytes(), &cfg); err != nil {
		return fmt.Errorf("worker: bad configuration: %w", err)
	}
	w, err := newWorker(cfg)
	if err != nil {
		reply(workerReply{Type: "error", Error: err.Error()})
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reply(workerReply{Type: "ready"})
	for in.Scan() {
		var cmd workerCommand
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			reply(workerReply{Type: "error", Error: "bad command: " + err.Error()})
			continue
		}
		switch cmd.Cmd {
		case "connect":
			w.connectAll(ctx, cmd.Drain)
		case "snapshot":
		case "load":
			w.load(ctx, cmd.Rate, cmd.Duration, cmd.Drain)
		case "close":
			w.closeAll()
		default:
			reply(workerReply{Type: "error", Error: "unknown command " + cmd.Cmd})
			continue
		}
		reply(workerReply{Type: cmd.Cmd, Stats: w.takeStats()})
		if cmd.Cmd == "close" {
			return nil
		}
	}
	// stdin closed: the parent is gone or done.
	w.closeAll()
	return nil
}

// newWorker prepares the peers and dialers of a worker.
func newWorker(cfg workerConfig) (*worker, error) {
	if cfg.Peers <= 0 || cfg.Swarms <= 0 || len(cfg.LocalAddrs) == 0 {
		return nil, errors.New("worker: peers, swarms and local addresses are required")
	}
	w := &worker{
		cfg:   cfg,
		jobs:  make(chan sendJob, 16384),
		stats: &Stats{},
	}
	hashes := make(map[int]string)
	for i := cfg.FirstPeer; i < cfg.FirstPeer+cfg.Peers; i++ {
		s := i % cfg.Swarms
		if _, ok := hashes[s]; !ok {
			hashes[s] = swarmInfoHash(s)
		}
		w.peers = append(w.peers, &peer{infoHash: hashes[s], peerID: newPeerID()})
	}
	pool := &sync.Pool{}
	for _, a := range cfg.LocalAddrs {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, fmt.Errorf("worker: bad local address %q", a)
		}
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		w.dialer = append(w.dialer, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			// A read buffer of a few relayed messages saves read calls;
			// write buffers come from a pool and are held only while writing.
			ReadBufferSize:  4096,
			WriteBufferSize: 16 << 10,
			WriteBufferPool: pool,
		})
	}
	senders := max(cfg.Senders, 1)
	for range senders {
		go w.sender()
	}
	return w, nil
}

// sender builds and writes the announces queued in w.jobs.
func (w *worker) sender() {
	buf := make([]byte, 0, 8<<10)
	for j := range w.jobs {
		if j.p.alive.Load() {
			now := time.Now().UnixNano()
			buf = appendAnnounce(buf[:0], j.kind == kindStarted, j.p.infoHash, j.p.peerID, now)
			w.write(j.p, j.kind, buf, now)
		}
	}
}

// write sends one message built at now on p's socket and counts it.
func (w *worker) write(p *peer, kind int, buf []byte, now int64) {
	p.wmu.Lock()
	if kind != kindAnswer {
		// Recorded before the write: the response may come before
		// WriteMessage returns.
		p.announced(now)
	}
	_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := p.conn.WriteMessage(websocket.TextMessage, buf)
	p.wmu.Unlock()
	if err != nil {
		if w.closing.Load() {
			return
		}
		w.update(func(s *Stats) {
			s.WriteErrors++
			countText(&s.Errors, "write: "+err.Error())
		})
		// Closing makes the reader goroutine see the error and count the
		// disconnect.
		_ = p.conn.Close()
		return
	}
	n := int64(len(buf))
	w.update(func(s *Stats) {
		s.BytesSent += n
		if kind == kindAnswer {
			s.AnswersSent++
		} else {
			s.AnnouncesSent++
			s.OffersSent += offersPerAnnounce
		}
	})
}

// connectAll opens the sockets of all peers at the configured rate; each
// peer sends its "started" announce as soon as it is connected. It returns
// once every attempt finished and the replies to the started announces
// have arrived, or drain has passed.
func (w *worker) connectAll(ctx context.Context, drain time.Duration) {
	rate := w.cfg.ConnectRate
	if rate <= 0 {
		rate = 1000
	}
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range w.peers {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.connect(ctx, p, w.dialer[i%len(w.dialer)])
		}()
	}
	wg.Wait()
	// Wait for the answers to the started announces, then for quiet.
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) {
		pending := false
		for _, p := range w.peers {
			if p.alive.Load() && p.unacked() > 0 {
				pending = true
				break
			}
		}
		if !pending {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.waitQuiet(300*time.Millisecond, deadline)
}

// connect opens the socket of p, queues its started announce and reads its
// messages until the socket closes.
func (w *worker) connect(ctx context.Context, p *peer, d *websocket.Dialer) {
	var hdr http.Header
	if w.cfg.Origin != "" {
		hdr = http.Header{"Origin": {w.cfg.Origin}}
	}
	conn, resp, err := d.DialContext(ctx, w.cfg.URL, hdr)
	if err != nil {
		text := err.Error()
		if resp != nil {
			text = fmt.Sprintf("%s (HTTP %d)", text, resp.StatusCode)
		}
		w.update(func(s *Stats) {
			s.DialsFailed++
			countText(&s.Errors, "dial: "+text)
		})
		return
	}
	conn.SetReadLimit(4 << 20)
	p.conn = conn
	p.alive.Store(true)
	w.connected.Add(1)
	w.update(func(s *Stats) { s.DialsOK++ })
	w.readers.Add(1)
	go w.read(p)
	select {
	case w.jobs <- sendJob{p: p, kind: kindStarted}:
	case <-ctx.Done():
	}
}

// offerTimeout is how long a browser waits for the answer to its offer
// (bittorrent-tracker's OFFER_TIMEOUT); later answers are ignored.
const offerTimeout = 50 * time.Second

// bufPool holds buffers for incoming messages.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// outPool holds buffers for answers.
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// read handles the messages arriving on p's socket until it closes.
func (w *worker) read(p *peer) {
	defer w.readers.Done()
	for {
		_, r, err := p.conn.NextReader()
		if err == nil {
			buf := bufPool.Get().(*bytes.Buffer)
			buf.Reset()
			_, err = buf.ReadFrom(r)
			if err == nil {
				w.handle(p, buf.Bytes())
			}
			bufPool.Put(buf)
		}
		if err != nil {
			p.alive.Store(false)
			w.connected.Add(-1)
			_ = p.conn.Close()
			if !w.closing.Load() {
				w.update(func(s *Stats) {
					s.Disconnects++
					countText(&s.Errors, "read: "+err.Error())
				})
			}
			return
		}
	}
}

// handle processes one message from the tracker to p.
func (w *worker) handle(p *peer, data []byte) {
	now := time.Now().UnixNano()
	w.lastRecv.Store(now)
	var m inMessage
	if err := parseInMessage(data, &m); err != nil {
		w.update(func(s *Stats) {
			s.BytesReceived += int64(len(data))
			s.BadMessages++
			countText(&s.Errors, "bad message: "+err.Error())
		})
		return
	}
	n := int64(len(data))
	wrongSwarm := m.InfoHash == nil || *m.InfoHash != p.infoHash
	switch {
	case m.Failure != nil:
		p.acked()
		w.update(func(s *Stats) {
			s.BytesReceived += n
			countText(&s.Failures, *m.Failure)
		})
	case m.Offer != nil:
		ts, ok := sdpTimestamp(m.Offer, now)
		if !ok || m.PeerID == nil || m.OfferID == nil {
			w.update(func(s *Stats) {
				s.BytesReceived += n
				s.BadMessages++
			})
			return
		}
		self := *m.PeerID == p.peerID
		w.update(func(s *Stats) {
			s.BytesReceived += n
			s.OffersReceived++
			s.OfferLatency.Record(time.Duration(now - ts))
			if self {
				s.SelfOffers++
			}
			if wrongSwarm {
				s.WrongInfoHash++
			}
		})
		if !self && !wrongSwarm {
			// Answer from the reader goroutine: no hand-over to another
			// goroutine, which would cost the generator CPU.
			bp := outPool.Get().(*[]byte)
			at := time.Now().UnixNano()
			*bp = appendAnswer((*bp)[:0], p.infoHash, p.peerID, *m.PeerID, *m.OfferID, at)
			w.write(p, kindAnswer, *bp, at)
			outPool.Put(bp)
		}
	case m.Answer != nil:
		ts, ok := sdpTimestamp(m.Answer, now)
		var offered int64
		matched := false
		if m.OfferID != nil {
			offered, matched = checkOfferID(p.peerID, *m.OfferID)
		}
		w.update(func(s *Stats) {
			s.BytesReceived += n
			if !ok {
				s.BadMessages++
				return
			}
			s.AnswersReceived++
			s.AnswerLatency.Record(time.Duration(now - ts))
			if !matched {
				s.AnswersUnmatched++
			} else {
				rtt := time.Duration(now - offered)
				s.SignalRTT.Record(rtt)
				if rtt > offerTimeout {
					s.LateAnswers++
				}
			}
			if wrongSwarm {
				s.WrongInfoHash++
			}
		})
	case m.Action == "announce" && (m.Interval != nil || m.Complete != nil):
		sent, solicited := p.acked()
		w.update(func(s *Stats) {
			s.BytesReceived += n
			if !solicited {
				s.UnsolicitedAcks++
				return
			}
			s.Acks++
			if sent != 0 {
				s.AckLatency.Record(time.Duration(now - sent))
			}
			if wrongSwarm {
				s.WrongInfoHash++
			}
		})
	default:
		w.update(func(s *Stats) {
			s.BytesReceived += n
			s.BadMessages++
		})
	}
	if m.Warning != nil {
		w.update(func(s *Stats) { countText(&s.Warnings, *m.Warning) })
	}
}

// load sends announces at rate per second, spread evenly over time and
// over the connected peers in a shuffled round-robin order, for duration,
// then waits up to drain for the last replies. Peers that lost (or never
// got) their socket are passed over, so the rate holds.
func (w *worker) load(ctx context.Context, rate float64, duration, drain time.Duration) {
	order := rand.Perm(len(w.peers))
	next := 0
	sent := 0
	start := time.Now()
	end := start.Add(duration)
	for rate > 0 {
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		due := int(now.Sub(start).Seconds() * rate)
		for ; sent < due; sent++ {
			var p *peer
			for range order {
				c := w.peers[order[next]]
				next = (next + 1) % len(order)
				if c.alive.Load() {
					p = c
					break
				}
			}
			if p == nil {
				w.update(func(s *Stats) { s.AnnouncesDead++ })
				continue
			}
			select {
			case w.jobs <- sendJob{p: p, kind: kindAnnounce}:
			default:
				w.update(func(s *Stats) { s.AnnouncesSkipped++ })
			}
		}
		wait := start.Add(time.Duration(float64(sent+1) / rate * float64(time.Second))).Sub(time.Now())
		time.Sleep(max(wait, 100*time.Microsecond))
	}
	// Let the queue empty, then wait for the replies to stop.
	deadline := time.Now().Add(drain)
	for len(w.jobs) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w.waitQuiet(500*time.Millisecond, deadline)
}

// waitQuiet returns once no message arrived for quiet, or at deadline.
func (w *worker) waitQuiet(quiet time.Duration, deadline time.Time) {
	for time.Now().Before(deadline) {
		last := time.Unix(0, w.lastRecv.Load())
		if time.Since(last) >= quiet {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closeAll closes every socket with a close frame, as a browser leaving
// the page does, and waits for the reader goroutines to end.
func (w *worker) closeAll() {
	w.closing.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range w.peers {
		if p.conn == nil || !p.alive.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = p.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			_ = p.conn.Close()
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { w.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// raiseFileLimit sets the soft limit on open files to the hard limit. The
// Go runtime does so too, but setting it here also makes child processes
// inherit the raised limit.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// copyLines copies r to w, prefixing each line; used for child stderr.
func copyLines(w io.Writer, r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "%s%s\n", prefix, strings.TrimRight(sc.Text(), "\r"))
	}
}
