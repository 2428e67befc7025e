package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// SegmentSource supplies the bytes of the segments of one swarm to an
// UploadSession. The seeder plugs its cache or fetcher in here.
type SegmentSource interface {
	// Segment returns the payload of the segment with the given external
	// id (spec §4) and true, or false if the segment is not available.
	// It must return promptly once ctx is done: the session gives it a
	// deadline shorter than the browser's 2 s inactivity timer. The
	// returned slice is only read, never modified or retained after the
	// upload; the source keeps ownership of it and must not change its
	// contents afterwards.
	Segment(ctx context.Context, externalID int64) (data []byte, ok bool, err error)
}

// SegmentSourceFunc adapts a function to the SegmentSource interface.
type SegmentSourceFunc func(ctx context.Context, externalID int64) ([]byte, bool, error)

// Segment implements SegmentSource by calling f.
func (f SegmentSourceFunc) Segment(ctx context.Context, externalID int64) ([]byte, bool, error) {
	return f(ctx, externalID)
}

// Defaults of UploadOptions.
const (
	// DefaultLookupTimeout bounds a SegmentSource lookup, leaving time for
	// the header to reach the browser within its 2 s inactivity timer.
	DefaultLookupTimeout = 1500 * time.Millisecond
	// DefaultHighWaterMark is the largest send window (the most an upload
	// keeps buffered), and the BufferedAmount above which announcements
	// and Absent replies wait for the peer to read.
	DefaultHighWaterMark = 1 << 20
	// DefaultLowWaterMark is the BufferedAmountLowThreshold at which a
	// paused upload resumes when the window is fixed.
	DefaultLowWaterMark = 256 << 10
	// DefaultMinHighWaterMark is the smallest send window, half a 64 KiB
	// message: at 8 peers saturating 2 cores (p2p/uploadbench) a smaller
	// one would cost more throughput than the latency it saves.
	DefaultMinHighWaterMark = 32 << 10
	// DefaultSharedWindow is the buffer the running uploads of one
	// UploadBudget may always fill together (UploadOptions.SharedWindow).
	DefaultSharedWindow = 256 << 10
	// DefaultStallTimeout is how long an upload paused by flow control
	// may go without the peer acknowledging a byte before it is
	// abandoned: twice the browser's own 2 s timer, after which a browser
	// that reads has cancelled the request, so only a peer that does not
	// read holds the upload slot that long.
	DefaultStallTimeout = 4 * time.Second
	// DefaultMaxRequestsPerSecond is the sustained rate of segment
	// requests a session accepts. A browser has at most one request per
	// connection in flight, so a legitimate peer stays far below it.
	DefaultMaxRequestsPerSecond = 20
	// DefaultRequestBurst is the number of requests accepted back to back
	// before the rate cap applies.
	DefaultRequestBurst = 40
	// DefaultUploadMaxCommandSize caps the commands an UploadSession
	// joins. Requests and cancels are about 20 bytes; only announcements
	// are ever split into several frames, and the session ignores them,
	// so a small cap loses nothing and bounds memory per session.
	DefaultUploadMaxCommandSize = 64 << 10
)

// UploadOptions tune an UploadSession. The zero value selects the defaults.
type UploadOptions struct {
	// LookupTimeout bounds each SegmentSource lookup; after it the request
	// is answered with SegmentAbsent. Default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// HighWaterMark is the most an upload keeps buffered in the data
	// channel: sending pauses while BufferedAmount exceeds the send
	// window and resumes at half of it. The window moves between
	// MinHighWaterMark and HighWaterMark with the peer's bandwidth-delay
	// product (see SendWindow). A buffered amount above HighWaterMark
	// also holds back announcements and Absent replies to a peer that
	// does not read. Defaults DefaultHighWaterMark and
	// DefaultMinHighWaterMark.
	HighWaterMark, MinHighWaterMark uint64
	// SharedWindow is split evenly among the uploads running under
	// Budget (all of it when Budget is nil), and an upload's window never
	// goes below its share. A peer a fraction of a millisecond away
	// cannot be measured finely enough for its window to be sized by its
	// round trip; the share keeps a few such peers at full speed, and
	// shrinks as more uploads queue behind each other on the same
	// processors. Default DefaultSharedWindow.
	SharedWindow uint64
	// LowWaterMark is where a paused upload resumes when the window is
	// fixed (MinHighWaterMark >= HighWaterMark). Default
	// DefaultLowWaterMark.
	LowWaterMark uint64
	// StallTimeout abandons an upload that flow control has paused and
	// whose peer has acknowledged nothing for this long. Default
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// MaxMessageSize is the largest payload chunk sent. Default (and
	// maximum) DefaultMaxMessageSize, the client's webRtcMaxMessageSize.
	MaxMessageSize int
	// MaxCommandSize caps a joined incoming command. Default
	// DefaultUploadMaxCommandSize.
	MaxCommandSize int
	// MaxRequestsPerSecond and RequestBurst form a token bucket for
	// incoming SegmentRequests; requests over it are ignored: they get no
	// reply and do not stop the current upload. Defaults
	// DefaultMaxRequestsPerSecond and DefaultRequestBurst.
	MaxRequestsPerSecond float64
	RequestBurst         int
	// Budget, if not nil, caps uploads across every session that shares
	// it: a request that finds no free upload slot is answered with
	// SegmentAbsent, and chunks are paced by its byte rate.
	Budget *UploadBudget
	// OnAnnouncement, if not nil, receives every SegmentsAnnouncement the
	// peer sends: the full set of ids it holds and is loading over HTTP.
	// It runs on pion's read loop and must not block.
	OnAnnouncement func(SegmentsAnnouncement)
}

func (o UploadOptions) withDefaults() UploadOptions {
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	if o.HighWaterMark == 0 {
		o.HighWaterMark = DefaultHighWaterMark
	}
	if o.LowWaterMark == 0 {
		o.LowWaterMark = DefaultLowWaterMark
	}
	if o.MinHighWaterMark == 0 {
		o.MinHighWaterMark = DefaultMinHighWaterMark
	}
	if o.SharedWindow == 0 {
		o.SharedWindow = DefaultSharedWindow
	}
	if o.LowWaterMark > o.HighWaterMark {
		o.LowWaterMark = o.HighWaterMark
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.MaxMessageSize <= 0 || o.MaxMessageSize > DefaultMaxMessageSize {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxCommandSize <= 0 {
		o.MaxCommandSize = DefaultUploadMaxCommandSize
	}
	if o.MaxRequestsPerSecond <= 0 {
		o.MaxRequestsPerSecond = DefaultMaxRequestsPerSecond
	}
	if o.RequestBurst <= 0 {
		o.RequestBurst = DefaultRequestBurst
	}
	return o
}

// UploadStats counts what an UploadSession has done. All fields are
// cumulative.
type UploadStats struct {
	Requests       uint64 `json:"requests"`        // SegmentRequests accepted for processing
	RateLimited    uint64 `json:"rate_limited"`    // SegmentRequests ignored by the rate cap
	Completed      uint64 `json:"completed"`       // uploads that ended with SegmentDataSendingCompleted
	Absent         uint64 `json:"absent"`          // SegmentAbsent replies sent
	Aborted        uint64 `json:"aborted"`         // requests dropped or uploads stopped by a cancel, a newer request, a stall, a full send buffer or a close
	OverBudget     uint64 `json:"over_budget"`     // requests answered with SegmentAbsent because the UploadBudget had no free slot
	BytesSent      uint64 `json:"bytes_sent"`      // segment payload bytes handed to the channel
	PayloadIgnored uint64 `json:"payload_ignored"` // incoming messages that are not command frames
	BadFrames      uint64 `json:"bad_frames"`      // incoming frames the Joiner rejected
	BadCommands    uint64 `json:"bad_commands"`    // joined commands that failed to decode
	SendErrors     uint64 `json:"send_errors"`     // failed data-channel sends
	// AnnouncementsDropped counts the peer's SegmentsAnnouncements
	// dropped undecoded by the announcement rate cap.
	AnnouncementsDropped uint64 `json:"announcements_dropped"`
}

// uploadCounters holds the atomic counterparts of UploadStats.
type uploadCounters struct {
	requests, rateLimited, completed, absent, aborted, bytesSent atomic.Uint64
	overBudget                                                   atomic.Uint64
	payloadIgnored, badFrames, badCommands, sendErrors           atomic.Uint64
	announcementsDropped                                         atomic.Uint64
}

// activeUpload identifies the request the worker is serving.
type activeUpload struct {
	req    SegmentRequest
	cancel context.CancelFunc
}

// UploadSession serves segments to one remote peer over one P2P Media
// Loader data channel, as the uploading side of the protocol (spec §3.5,
// §8): it announces the ids it holds, answers each SegmentRequest with
// SegmentAbsent or with a SegmentData header, the payload in chunks and
// SegmentDataSendingCompleted, and honours CancelSegmentRequest. At most one
// upload runs at a time and the newest request wins.
//
// The session uses the channel in its ordinary (not detached) mode. That
// works with whatever SettingEngine the seeder's PeerConnection uses (a
// detached channel needs SettingEngine.DetachDataChannels for the whole API
// and Detach inside OnOpen), reuses pion's own read loop instead of adding a
// reader goroutine, and gives flow control through BufferedAmount and
// OnBufferedAmountLow, exactly the mechanism browsers use. Sends never
// block, so the single worker goroutine can always notice cancellation.
//
// The session installs the channel's OnOpen, OnClose, OnMessage and
// OnBufferedAmountLow handlers; the owner must not replace them and can
// watch Done instead. It starts one goroutine, which ends on Close, when
// the channel closes, or when its PeerConnection closes (which closes the
// channel). The owner should still call Close, or close the PeerConnection,
// when the connection fails: pion does not close channels on ICE failure
// (pion-notes §4).
type UploadSession struct {
	dc   *webrtc.DataChannel
	src  SegmentSource
	opts UploadOptions

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	openOnce sync.Once
	wake     chan struct{} // a pending request is waiting (capacity 1)
	lowWater chan struct{} // BufferedAmount fell to the low mark (capacity 1)

	annMu     sync.Mutex
	announced SegmentsAnnouncement
	isOpen    bool
	// annPending: the current announcement could not be sent because
	// the channel's buffer was full; it goes out once the buffer drains.
	annPending bool

	msgMu     sync.Mutex // serialises incoming message handling
	joiner    *Joiner
	tokens    float64 // request bucket
	last      time.Time
	annTokens float64 // announcement bucket
	annLast   time.Time

	mu      sync.Mutex
	pending *SegmentRequest
	current *activeUpload

	window *ChannelWindow // flow control of the uploads

	stats uploadCounters
}

// NewUploadSession starts serving src over dc and announces ids (which may
// be empty) as soon as dc is open; dc may be open already or still
// connecting. Passing the initial ids here rather than through a later
// Announce guarantees that the first announcement the peer sees is
// complete. The zero UploadOptions selects the defaults.
func NewUploadSession(dc *webrtc.DataChannel, src SegmentSource, ids []int64, opts UploadOptions) (*UploadSession, error) {
	if dc == nil {
		return nil, errors.New("p2p: new upload session: nil data channel")
	}
	if src == nil {
		return nil, errors.New("p2p: new upload session: nil segment source")
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &UploadSession{
		dc:       dc,
		src:      src,
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		lowWater: make(chan struct{}, 1),
		joiner:   NewJoiner(opts.MaxCommandSize),
		tokens:   float64(opts.RequestBurst),
		window:   NewChannelWindow(dc, opts),
	}
	s.announced, _ = BuildAnnouncement(ids, nil)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.lowWater <- struct{}{}:
		default:
		}
	})
	dc.OnMessage(s.handleMessage)
	dc.OnClose(func() { s.cancel() })
	// pion calls the handler at once (in a goroutine of its own) if the
	// channel is already open, and never if it is already closed.
	dc.OnOpen(s.handleOpen)
	if dc.ReadyState() == webrtc.DataChannelStateClosed {
		cancel()
	}
	go s.run()
	return s, nil
}

// Done returns a channel that is closed once the session has stopped and
// its goroutine has ended.
func (s *UploadSession) Done() <-chan struct{} { return s.done }

// Close stops the session: any upload in progress ends without a
// completion, later messages are ignored, and Close returns once the
// session's goroutine has ended. It does not close the data channel, which
// belongs to the caller. Close is safe to call more than once.
func (s *UploadSession) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Stats returns a snapshot of the session's counters.
func (s *UploadSession) Stats() UploadStats {
	c := &s.stats
	return UploadStats{
		Requests:       c.requests.Load(),
		RateLimited:    c.rateLimited.Load(),
		Completed:      c.completed.Load(),
		Absent:         c.absent.Load(),
		Aborted:        c.aborted.Load(),
		OverBudget:     c.overBudget.Load(),
		BytesSent:      c.bytesSent.Load(),
		PayloadIgnored: c.payloadIgnored.Load(),
		BadFrames:      c.badFrames.Load(),
		BadCommands:    c.badCommands.Load(),
		SendErrors:     c.sendErrors.Load(),

		AnnouncementsDropped: c.announcementsDropped.Load(),
	}
}

// Announce sets the segment ids this session offers and, if the channel is
// open, sends them to the peer at once; otherwise they are sent when it
// opens. Call it again whenever the set changes: each announcement replaces
// the previous one on the receiving side. The ids pass through
// BuildAnnouncement, so the client never drops the announcement; the ids
// it had to leave out are returned. ids is not retained.
func (s *UploadSession) Announce(ids []int64) (Omitted, error) {
	a, omitted := BuildAnnouncement(ids, nil)
	s.annMu.Lock()
	defer s.annMu.Unlock()
	s.announced = a
	if !s.isOpen || s.ctx.Err() != nil {
		return omitted, nil
	}
	if s.dc.BufferedAmount() > s.opts.HighWaterMark {
		// A peer that does not read gets the newest list once it
		// does, not every list queued in our memory.
		s.annPending = true
		return omitted, nil
	}
	s.annPending = false
	if err := s.sendCommand(a); err != nil {
		return omitted, fmt.Errorf("p2p: announce %d ids: %w", len(a.Loaded), err)
	}
	return omitted, nil
}

// handleOpen sends the current announcement once the channel is open.
func (s *UploadSession) handleOpen() {
	s.openOnce.Do(func() {
		s.annMu.Lock()
		defer s.annMu.Unlock()
		if s.ctx.Err() != nil {
			return
		}
		s.isOpen = true
		// Errors are counted by sendCommand; the channel is closing.
		_ = s.sendCommand(s.announced)
	})
}

// sendCommand encodes cmd and sends its frames.
func (s *UploadSession) sendCommand(cmd Command) error {
	frames, err := Encode(cmd, DefaultMaxMessageSize)
	if err != nil {
		return fmt.Errorf("encode %v: %w", cmd.Type(), err)
	}
	for _, f := range frames {
		s.window.Sending(len(f))
		if err := s.dc.Send(f); err != nil {
			s.stats.sendErrors.Add(1)
			return fmt.Errorf("send %v: %w", cmd.Type(), err)
		}
	}
	return nil
}

// handleMessage runs on pion's read loop for every incoming message. It
// must not block, so it only records requests and cancels for the worker.
func (s *UploadSession) handleMessage(msg webrtc.DataChannelMessage) {
	if s.ctx.Err() != nil {
		return
	}
	// Text messages are treated as their UTF-8 bytes, as the client does.
	if !IsCommandFrame(msg.Data) {
		// Browsers do not upload to a seeder; stray payload is ignored.
		s.stats.payloadIgnored.Add(1)
		return
	}
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	body, done, err := s.joiner.Push(msg.Data)
	if err != nil {
		s.stats.badFrames.Add(1)
		return
	}
	if !done {
		return
	}
	if len(body) > 0 && CommandType(body[0]) == TypeSegmentsAnnouncement && !s.allowAnnouncementLocked(time.Now()) {
		// Checked before decoding: an announcement can hold
		// thousands of ids, and a peer sending them nonstop would
		// otherwise keep a core busy decoding and counting them.
		s.stats.announcementsDropped.Add(1)
		return
	}
	cmd, err := Decode(body)
	if err != nil {
		s.stats.badCommands.Add(1)
		return
	}
	switch c := cmd.(type) {
	case SegmentRequest:
		if !s.allowRequestLocked(time.Now()) {
			s.stats.rateLimited.Add(1)
			return
		}
		s.stats.requests.Add(1)
		s.enqueue(c)
	case CancelSegmentRequest:
		s.cancelRequest(c)
	case SegmentsAnnouncement:
		if s.opts.OnAnnouncement != nil {
			s.opts.OnAnnouncement(c)
		}
	}
	// Unknown commands are ignored (spec §8, item 6).
}

// allowRequestLocked applies the request token bucket; s.msgMu must be
// held.
func (s *UploadSession) allowRequestLocked(now time.Time) bool {
	return takeToken(&s.tokens, &s.last, now, s.opts.MaxRequestsPerSecond, float64(s.opts.RequestBurst))
}

// Browsers announce to each peer whenever their own segments change: a
// segment loaded, an HTTP download started or ended. That is a few per
// second, tens while a VOD is prefetched from a fast peer.
const (
	maxAnnouncementsPerSecond = 50
	announcementBurst         = 100
)

// allowAnnouncementLocked applies the announcement token bucket; s.msgMu
// must be held.
func (s *UploadSession) allowAnnouncementLocked(now time.Time) bool {
	if s.annLast.IsZero() {
		s.annTokens = announcementBurst
	}
	return takeToken(&s.annTokens, &s.annLast, now, maxAnnouncementsPerSecond, announcementBurst)
}

// takeToken refills a token bucket at rate up to burst since *last and
// takes one token from it if there is one.
func takeToken(tokens *float64, last *time.Time, now time.Time, rate, burst float64) bool {
	if !last.IsZero() {
		*tokens = min(*tokens+now.Sub(*last).Seconds()*rate, burst)
	}
	*last = now
	if *tokens < 1 {
		return false
	}
	*tokens--
	return true
}

// enqueue makes req the next request to serve, stopping the current upload
// and replacing any request that has not started yet: the newest request
// wins (spec §3.5, uploader side).
func (s *UploadSession) enqueue(req SegmentRequest) {
	s.mu.Lock()
	if s.current != nil {
		s.current.cancel()
	}
	r := req
	s.pending = &r
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cancelRequest stops the upload or pending request that c names.
func (s *UploadSession) cancelRequest(c CancelSegmentRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pending; p != nil && p.ID == c.ID && p.RequestID == c.RequestID {
		s.pending = nil
	}
	if cur := s.current; cur != nil && cur.req.ID == c.ID && cur.req.RequestID == c.RequestID {
		cur.cancel()
	}
}

// run is the session's only goroutine: it serves pending requests one at a
// time until the session stops.
func (s *UploadSession) run() {
	defer close(s.done)
	defer s.cancel()
	// Armed after an Absent for an announced segment (see
	// reannounceAfterAbsent); a nil channel never fires.
	var reannounce *time.Timer
	var reannounceC <-chan time.Time
	defer func() {
		if reannounce != nil {
			reannounce.Stop()
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-reannounceC:
			reannounceC = nil
			s.resendAnnouncement(true)
			continue
		case <-s.lowWater:
			s.resendAnnouncement(false)
			continue
		case <-s.wake:
		}
		s.mu.Lock()
		req := s.pending
		s.pending = nil
		if req == nil {
			s.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		s.current = &activeUpload{req: *req, cancel: cancel}
		s.mu.Unlock()

		if s.serve(ctx, *req) && reannounceC == nil {
			if reannounce == nil {
				reannounce = time.NewTimer(reannounceAfterAbsent)
			} else {
				reannounce.Reset(reannounceAfterAbsent)
			}
			reannounceC = reannounce.C
		}

		s.mu.Lock()
		s.current = nil
		s.mu.Unlock()
		cancel()
		// serve consumes the low-water events while it runs.
		s.resendAnnouncement(false)
	}
}

// reannounceAfterAbsent is how long after answering Absent for a segment it
// announces the session sends its announcement again. A browser deletes the
// id from its copy of our list on Absent (spec §3.5), and an Absent for an
// announced segment is temporary (no upload slot free, a slow or failing
// origin); a VOD list never changes by itself, so without this the
// segment would stay hidden from that browser. The delay keeps the browser
// from retrying straight into the same overload.
const reannounceAfterAbsent = 2 * time.Second

// resendAnnouncement sends the current announcement if one is pending
// (held back by a full buffer) or always is set, unless the channel is not
// open or its buffer is (still) full, in which case it stays pending.
func (s *UploadSession) resendAnnouncement(always bool) {
	s.annMu.Lock()
	defer s.annMu.Unlock()
	if !(always || s.annPending) || !s.isOpen || s.ctx.Err() != nil {
		return
	}
	if s.dc.BufferedAmount() > s.opts.HighWaterMark {
		s.annPending = true
		return
	}
	s.annPending = false
	_ = s.sendCommand(s.announced) // errors are counted; the channel is closing
}

// announces reports whether the current announcement offers id.
func (s *UploadSession) announces(id int64) bool {
	s.annMu.Lock()
	defer s.annMu.Unlock()
	return slices.Contains(s.announced.Loaded, id)
}

// serve answers one request. ctx is cancelled by a matching cancel, a newer
// request or the end of the session; after that nothing more is sent for
// the request. It reports whether it answered Absent for a segment the
// session announces.
func (s *UploadSession) serve(ctx context.Context, req SegmentRequest) (absentAnnounced bool) {
	if req.ID < 0 || req.ByteFrom < 0 {
		s.sendAbsent(ctx, req)
		return false
	}
	if !s.opts.Budget.TryAcquire() {
		s.stats.overBudget.Add(1)
		return s.sendAbsent(ctx, req) && s.announces(req.ID)
	}
	defer s.opts.Budget.Release()
	lookupCtx, cancelLookup := context.WithTimeout(ctx, s.opts.LookupTimeout)
	data, ok, err := s.src.Segment(lookupCtx, req.ID)
	lookupErr := lookupCtx.Err()
	cancelLookup()
	switch {
	case ctx.Err() != nil:
		s.stats.aborted.Add(1)
		return
	case err != nil || !ok || lookupErr != nil || req.ByteFrom > int64(len(data)):
		return s.sendAbsent(ctx, req) && s.announces(req.ID)
	}
	payload := data[req.ByteFrom:]
	s.window.Begin()
	header := SegmentData{ID: req.ID, Size: int64(len(payload)), RequestID: req.RequestID}
	if err := s.sendCommand(header); err != nil {
		s.cancel()
		return
	}
	for len(payload) > 0 {
		if err := s.waitForRoom(ctx); err != nil {
			s.stats.aborted.Add(1)
			return
		}
		n := NextChunk(payload, s.window.MessageLimit(s.opts.MaxMessageSize))
		if err := s.opts.Budget.WaitBytes(ctx, n); err != nil {
			s.stats.aborted.Add(1)
			return
		}
		s.window.Sending(n)
		if err := s.dc.Send(payload[:n]); err != nil {
			s.stats.sendErrors.Add(1)
			s.stats.aborted.Add(1)
			s.cancel()
			return
		}
		s.stats.bytesSent.Add(uint64(n))
		payload = payload[n:]
	}
	// Decide under s.mu so that a cancel handled after this point finds
	// no current upload and a cancel handled before it is honoured.
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		s.stats.aborted.Add(1)
		return
	}
	if err := s.sendCommand(SegmentDataSendingCompleted{ID: req.ID, RequestID: req.RequestID}); err != nil {
		s.cancel()
		return
	}
	s.stats.completed.Add(1)
	return false
}

// sendAbsent answers req with SegmentAbsent unless the request was
// cancelled or the channel's buffer is full (a peer that does not read its
// replies gets none, so a request flood cannot grow our memory). It
// reports whether it sent the reply.
func (s *UploadSession) sendAbsent(ctx context.Context, req SegmentRequest) bool {
	if ctx.Err() != nil || s.dc.BufferedAmount() > s.opts.HighWaterMark {
		s.stats.aborted.Add(1)
		return false
	}
	if err := s.sendCommand(SegmentAbsent{ID: req.ID, RequestID: req.RequestID}); err != nil {
		s.cancel()
		return false
	}
	s.stats.absent.Add(1)
	return true
}

// minStallProgress is the least a paused upload's peer must acknowledge
// within the stall timeout: 16 KiB in 4 s is 32 kbit/s, far below any
// video, and far above a trickle of packets.
const minStallProgress = 16 << 10

// errStalled reports an upload abandoned by flow control.
var errStalled = errors.New("upload stalled by flow control")

// waitForRoom blocks while the channel's BufferedAmount is above the send
// window, until it drains, ctx ends or the peer acknowledges nothing for
// the stall timeout. After a pause it resizes the window.
func (s *UploadSession) waitForRoom(ctx context.Context) error {
	if s.dc.BufferedAmount() <= s.window.HighWater() {
		return ctx.Err()
	}
	defer s.window.Paused()
	// The poll guards against a low-water event that pion skips, for
	// example when the amount drains while the handler is being set, and
	// watches for progress: a slow peer that still acknowledges bytes is
	// not stalled, however long the window takes to drain.
	poll := time.NewTicker(max(time.Millisecond, min(250*time.Millisecond, s.opts.StallTimeout/2)))
	defer poll.Stop()
	acked, progress := s.window.Acked(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.lowWater:
		case <-poll.C:
		}
		if s.dc.BufferedAmount() <= s.window.HighWater() {
			return ctx.Err()
		}
		// Acknowledged bytes, not the buffered amount, since an
		// announcement sent meanwhile adds to the buffer; and at least
		// minStallProgress of them, so that a peer cannot hold the
		// upload slot by acknowledging a packet now and then.
		if a := s.window.Acked(); a >= acked+minStallProgress {
			acked, progress = a, time.Now()
		} else if time.Since(progress) >= s.opts.StallTimeout {
			return fmt.Errorf("p2p: upload: nothing acknowledged for %v: %w", s.opts.StallTimeout, errStalled)
		}
	}
}

// SendWindow reports the session's current send window: the bytes an
// upload keeps buffered in the channel at most (see SendWindow).
func (s *UploadSession) SendWindow() uint64 { return s.window.Window() }
