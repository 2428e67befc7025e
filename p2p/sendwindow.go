package p2p

import "time"

// SendWindow decides how many bytes an upload keeps buffered in its data
// channel, from the rate at which the peer acknowledges them and the SCTP
// association's round-trip time.
//
// Bytes buffered beyond what the path needs only wait in queues. On a
// long path the buffer must cover the bandwidth-delay product, or it caps
// the peer's rate at buffer/RTT; on a server whose processors are
// saturated the queues are local (send loops, socket buffers, the
// receivers' reads), and every byte buffered for one peer delays the next
// request of every other: with 8 peers on 2 cores a fixed 1 MiB per
// channel gave a p99 request-to-first-chunk of 55-67 ms (p2p/uploadbench).
// So the window follows the bandwidth-delay product, as BBR sizes its
// congestion window: windowGain times the delivery rate (bytes
// acknowledged per second while an upload runs) times the lowest smoothed
// round-trip time seen. Uploads resume at half the window, so about one
// bandwidth-delay product stays in flight while the sender waits to be
// woken, and messages shrink to the room left in the window
// (MessageLimit). While the window limits the rate, each resize grows it
// by about half, until the path does. The window stays within [min, max].
//
// A sender that knows better can raise the window with SetFloor. A peer
// well under a millisecond away is the case: its round trip under load is
// several times the lowest seen, so a window sized by the lowest limits
// the rate, the rate sizes the next window, and the window spirals down
// to min. UploadSession floors the window at its share of a buffer shared
// by the uploads running at once (UploadOptions.SharedWindow).
//
// The round trip is sampled when each upload starts (NoteRTT), after the
// request's exchange on a channel with nothing in flight, and after every
// pause; the lowest is kept over the last minRTTWindow to 2*minRTTWindow,
// so a path whose round trip grows (a new candidate pair, a relay) is
// followed within a minute instead of spiralling the window down. A peer
// whose early samples already queue behind other uploads sees a higher
// minimum and keeps a larger window, at most max.
//
// ChannelWindow drives one from a pion data channel. A SendWindow is not
// safe for concurrent use.
type SendWindow struct {
	min, max uint64
	fixedLow uint64        // the low mark of a fixed window
	high     uint64        // the window from the bandwidth-delay product
	floor    uint64        // the least window the caller allows (SetFloor)
	rate     float64       // delivery rate estimate, bytes/s (0: none yet)
	minRTT   time.Duration // lowest smoothed RTT in the current window (0: none yet)
	nextMin  time.Duration // lowest since minEpoch, the next minRTT
	minEpoch time.Time     // when nextMin started

	// The start of the current rate sample: when, and how many bytes
	// had been acknowledged then (zero time: no sample running).
	markTime  time.Time
	markAcked uint64
}

// windowGain is the window in bandwidth-delay products.
const windowGain = 2

// minRTTWindow is how long a lowest round trip is kept at least: BBR's
// 10 s, tripled, since this window has no phase that drains the queue to
// measure it.
const minRTTWindow = 30 * time.Second

// maxWindow bounds the maximum a caller may give, so that the float and
// signed arithmetic on windows cannot overflow.
const maxWindow = 1 << 40

// minRateInterval is the shortest interval a rate sample covers, however
// short the round trip: acknowledgements arrive in bursts, and a sample
// over one burst would overstate the rate.
const minRateInterval = 10 * time.Millisecond

// NewSendWindow returns a window between minHigh and maxHigh (at most
// 2^40) that starts at a quarter of maxHigh, or minHigh if that is more.
// If minHigh >= maxHigh the window is fixed: maxHigh, resuming at
// fixedLow.
func NewSendWindow(minHigh, maxHigh, fixedLow uint64) *SendWindow {
	maxHigh = min(maxHigh, maxWindow)
	w := &SendWindow{min: min(minHigh, maxHigh), max: maxHigh, fixedLow: min(fixedLow, maxHigh)}
	w.high = max(w.min, maxHigh/4)
	if w.Fixed() {
		w.high = maxHigh
	}
	return w
}

// Fixed reports whether the window never moves.
func (w *SendWindow) Fixed() bool { return w.min >= w.max }

// HighWater is the BufferedAmount above which the upload pauses: the
// window, or the floor if that is larger.
func (w *SendWindow) HighWater() uint64 { return max(w.high, w.floor) }

// SetFloor sets the least window, at most the maximum, and reports whether
// HighWater changed (the caller then moves the channel's
// BufferedAmountLowThreshold to LowWater). A floor keeps the window from sizing itself below
// what the sender knows it may buffer anyway (UploadOptions.SharedWindow).
func (w *SendWindow) SetFloor(floor uint64) bool {
	if w.Fixed() {
		return false
	}
	old := w.HighWater()
	w.floor = min(floor, w.max)
	return w.HighWater() != old
}

// LowWater is the BufferedAmount at which a paused upload resumes: half
// the window. A fixed window resumes at its configured mark.
func (w *SendWindow) LowWater() uint64 {
	if w.Fixed() {
		return w.fixedLow
	}
	return max(w.HighWater()/2, 1)
}

// Start begins a rate sample when an upload starts, with the bytes the
// peer has acknowledged so far; time between uploads is not delivery
// time.
func (w *SendWindow) Start(now time.Time, acked uint64) {
	w.markTime, w.markAcked = now, acked
}

// NoteRTT takes a sample of the association's smoothed round-trip time
// (0: none yet) for the lowest round trip, without a rate sample: at an
// upload's start, when nothing of this channel is in flight.
func (w *SendWindow) NoteRTT(now time.Time, srtt time.Duration) {
	if w.Fixed() || srtt <= 0 {
		return
	}
	if w.minEpoch.IsZero() || now.Sub(w.minEpoch) >= minRTTWindow {
		// A new epoch: the lowest of the last one becomes the
		// estimate, so a minimum older than two epochs is gone.
		if w.nextMin > 0 {
			w.minRTT = w.nextMin
		}
		w.nextMin, w.minEpoch = 0, now
	}
	if w.minRTT == 0 || srtt < w.minRTT {
		w.minRTT = srtt
	}
	if w.nextMin == 0 || srtt < w.nextMin {
		w.nextMin = srtt
	}
}

// Observe is called while an upload runs, after each pause, with the bytes
// acknowledged so far (sent minus BufferedAmount) and the association's
// smoothed round-trip time (0: none yet). Once the running sample covers
// at least two round trips (and minRateInterval), it takes the rate and
// resizes the window. It reports whether HighWater changed; the caller
// then moves the channel's BufferedAmountLowThreshold to LowWater.
func (w *SendWindow) Observe(now time.Time, acked uint64, srtt time.Duration) bool {
	if w.Fixed() || srtt <= 0 {
		return false
	}
	w.NoteRTT(now, srtt)
	if w.markTime.IsZero() {
		return false
	}
	elapsed := now.Sub(w.markTime)
	if elapsed < max(2*srtt, minRateInterval) {
		return false
	}
	sample := float64(acked-min(acked, w.markAcked)) / elapsed.Seconds()
	w.Start(now, acked)
	if w.rate == 0 || sample > w.rate {
		// Rises are taken at once: a window that limits the rate
		// must be able to grow in one step.
		w.rate = sample
	} else {
		w.rate = 0.75*w.rate + 0.25*sample
	}
	old := w.HighWater()
	w.high = uint64(min(max(windowGain*w.rate*w.minRTT.Seconds(), float64(w.min)), float64(w.max)))
	return w.HighWater() != old
}

// minMessage is the smallest payload message MessageLimit asks for, so
// that a nearly full window does not cut the payload into slivers.
const minMessage = 16 << 10

// MessageLimit returns the largest payload message to send next when
// buffered bytes are in the channel: the room left in the window, at
// least minMessage and at most maxMessage. A 64 KiB message into a 32 KiB
// window would triple what is in flight; at 8 saturating peers on 2 cores
// the limit took the p99 request-to-first-chunk from 20-24 ms to 16 ms,
// for about a tenth of the throughput (p2p/uploadbench). A fixed window
// always allows maxMessage.
func (w *SendWindow) MessageLimit(buffered uint64, maxMessage int) int {
	if w.Fixed() {
		return maxMessage
	}
	high := w.HighWater()
	room := int64(high) - int64(min(buffered, high))
	return int(min(max(room, minMessage), int64(maxMessage)))
}
