package p2p

import (
	"testing"
	"time"
)

// pathModel is a single-bottleneck path for SendWindow tests: a base round
// trip, a bottleneck rate, and a queue that holds whatever is in flight
// beyond the bandwidth-delay product.
type pathModel struct {
	baseRTT  time.Duration
	capacity float64 // bytes/s
}

// run feeds a window the samples a sender would give it for d of
// simulated time, sending 64 KiB chunks, and returns the window.
func (p pathModel) run(w *SendWindow, d time.Duration) *SendWindow {
	return p.runFrom(w, time.Unix(0, 0), d)
}

// runFrom is run from the simulated time now.
func (p pathModel) runFrom(w *SendWindow, now time.Time, d time.Duration) *SendWindow {
	var acked float64
	// The upload starts on a channel with nothing in flight: the round
	// trip is the base one.
	w.NoteRTT(now, p.baseRTT)
	w.Start(now, 0)
	for end := now.Add(d); now.Before(end); {
		// In flight: between the resume mark and the window plus the
		// chunk that crossed it; on average about their middle.
		inflight := float64(w.LowWater()+w.HighWater()+DefaultMaxMessageSize) / 2
		bdp := p.capacity * p.baseRTT.Seconds()
		rtt := p.baseRTT + time.Duration(max(0, inflight-bdp)/p.capacity*float64(time.Second))
		rate := min(p.capacity, inflight/rtt.Seconds())
		step := 5 * time.Millisecond
		now = now.Add(step)
		acked += rate * step.Seconds()
		w.Observe(now, uint64(acked), rtt)
	}
	return w
}

func TestSendWindowFollowsThePath(t *testing.T) {
	const minHigh, maxHigh = DefaultMinHighWaterMark, DefaultHighWaterMark
	tests := []struct {
		name     string
		path     pathModel
		lo, hi   uint64
		deadline time.Duration
	}{
		// 100 ms at 10 MB/s needs 1 MB in flight: the window must grow
		// from its start (256 KiB) to the top, within a few seconds.
		{"long fat path", pathModel{100 * time.Millisecond, 10e6}, maxHigh, maxHigh, 3 * time.Second},
		// 100 ms at 1 MB/s: about two bandwidth-delay products (200 KB).
		{"long thin path", pathModel{100 * time.Millisecond, 1e6}, 150e3, 300e3, 5 * time.Second},
		// A saturated local server: 8 MB/s per peer at 3 ms.
		{"saturated server", pathModel{3 * time.Millisecond, 8e6}, minHigh, 64 << 10, 2 * time.Second},
		// A LAN peer: 0.5 ms at 50 MB/s.
		{"lan", pathModel{500 * time.Microsecond, 50e6}, minHigh, 64 << 10, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.path.run(NewSendWindow(minHigh, maxHigh, DefaultLowWaterMark), tt.deadline)
			if h := w.HighWater(); h < tt.lo || h > tt.hi {
				t.Errorf("window %d after %v, want %d..%d", h, tt.deadline, tt.lo, tt.hi)
			}
			if l := w.LowWater(); l != w.HighWater()/2 {
				t.Errorf("low mark %d, want half the window %d", l, w.HighWater()/2)
			}
		})
	}
}

func TestSendWindowFixed(t *testing.T) {
	w := NewSendWindow(1<<20, 1<<20, 256<<10)
	pathModel{3 * time.Millisecond, 8e6}.run(w, time.Second)
	if w.HighWater() != 1<<20 || w.LowWater() != 256<<10 {
		t.Errorf("fixed window moved: high %d low %d", w.HighWater(), w.LowWater())
	}
	// A minimum above the maximum also fixes it, at the maximum.
	w = NewSendWindow(2<<20, 1<<20, 4<<20)
	if !w.Fixed() || w.HighWater() != 1<<20 || w.LowWater() != 1<<20 {
		t.Errorf("min > max: fixed %v high %d low %d", w.Fixed(), w.HighWater(), w.LowWater())
	}
}

func TestSendWindowSamples(t *testing.T) {
	t0 := time.Unix(0, 0)
	w := NewSendWindow(DefaultMinHighWaterMark, DefaultHighWaterMark, DefaultLowWaterMark)
	start := w.HighWater()
	if w.Observe(t0, 1<<20, 10*time.Millisecond) || w.HighWater() != start {
		t.Fatal("a window without a started sample moved")
	}
	w.Start(t0, 0)
	// A burst of acknowledgements over less than two round trips (and
	// minRateInterval) is not a rate sample.
	if w.Observe(t0.Add(5*time.Millisecond), 4<<20, 4*time.Millisecond) || w.HighWater() != start {
		t.Fatalf("a 5 ms sample moved the window to %d", w.HighWater())
	}
	// No round-trip time yet: nothing to size with.
	if w.Observe(t0.Add(50*time.Millisecond), 4<<20, 0) {
		t.Fatal("a sample without a round-trip time moved the window")
	}
	// 10 MB/s at 20 ms: 400 KB. (A fresh window: the sample above has
	// set the lowest round trip to 4 ms.)
	w = NewSendWindow(DefaultMinHighWaterMark, DefaultHighWaterMark, DefaultLowWaterMark)
	w.Start(t0, 0)
	w.Observe(t0.Add(100*time.Millisecond), 1e6, 20*time.Millisecond)
	if h := w.HighWater(); h != 400e3 {
		t.Fatalf("10 MB/s at 20 ms: window %d, want 400000", h)
	}
	// One slow sample (a stalled reader, a descheduled sender) moves the
	// rate by a quarter of the difference, not all the way.
	w.Observe(t0.Add(200*time.Millisecond), 1e6, 20*time.Millisecond)
	if h := w.HighWater(); h != 300e3 {
		t.Fatalf("after one empty sample: window %d, want 300000", h)
	}
	// Bytes acknowledged before Start (a previous upload) do not count,
	// and a count below the mark is not a negative rate.
	w.Start(t0.Add(time.Second), 5e6)
	w.Observe(t0.Add(1100*time.Millisecond), 4e6, 20*time.Millisecond)
	if h := w.HighWater(); h != 225e3 {
		t.Fatalf("after a sample with nothing acknowledged: window %d, want 225000", h)
	}
	// The lowest round trip seen sizes the window, not the current one:
	// queueing delay must not grow the window that causes it.
	w.Start(t0.Add(2*time.Second), 0)
	w.Observe(t0.Add(2500*time.Millisecond), 5e6, 200*time.Millisecond)
	if h := w.HighWater(); h != 400e3 {
		t.Fatalf("10 MB/s with the RTT up from 20 to 200 ms: window %d, want 400000", h)
	}
}

func TestSendWindowFloor(t *testing.T) {
	w := NewSendWindow(DefaultMinHighWaterMark, DefaultHighWaterMark, DefaultLowWaterMark)
	// A LAN peer: the window sizes itself down to about 50 KB...
	pathModel{500 * time.Microsecond, 50e6}.run(w, time.Second)
	bdpWindow := w.HighWater()
	if bdpWindow > 64<<10 {
		t.Fatalf("window %d, want at most 64 KiB", bdpWindow)
	}
	// ...and a floor raises it, with the low mark.
	if !w.SetFloor(128<<10) || w.HighWater() != 128<<10 || w.LowWater() != 64<<10 {
		t.Fatalf("floor 128 KiB: high %d low %d", w.HighWater(), w.LowWater())
	}
	if w.SetFloor(128 << 10) {
		t.Error("the same floor again reported a change")
	}
	// Never above the maximum.
	w.SetFloor(1 << 30)
	if h := w.HighWater(); h != DefaultHighWaterMark {
		t.Fatalf("floor 1 GiB: window %d, want the maximum %d", h, DefaultHighWaterMark)
	}
	// A lower floor gives the window back to the bandwidth-delay product.
	if !w.SetFloor(0) || w.HighWater() != bdpWindow {
		t.Fatalf("no floor: window %d, want %d", w.HighWater(), bdpWindow)
	}
	// A fixed window ignores floors.
	fixed := NewSendWindow(1<<20, 1<<20, 256<<10)
	if fixed.SetFloor(2<<20) || fixed.HighWater() != 1<<20 {
		t.Fatalf("fixed window with a floor: %d", fixed.HighWater())
	}
}

func TestSendWindowMessageLimit(t *testing.T) {
	w := NewSendWindow(DefaultMinHighWaterMark, DefaultHighWaterMark, DefaultLowWaterMark) // 256 KiB
	for _, tt := range []struct {
		buffered   uint64
		maxMessage int
		want       int
	}{
		{0, DefaultMaxMessageSize, DefaultMaxMessageSize}, // room for a whole message
		{200 << 10, DefaultMaxMessageSize, 56 << 10},      // the room left
		{250 << 10, DefaultMaxMessageSize, minMessage},    // not below minMessage
		{1 << 30, DefaultMaxMessageSize, minMessage},      // over the window: still minMessage
		{0, 1000, 1000}, // never above the caller's maximum
		{250 << 10, 1000, 1000},
	} {
		if got := w.MessageLimit(tt.buffered, tt.maxMessage); got != tt.want {
			t.Errorf("MessageLimit(%d, %d) = %d, want %d", tt.buffered, tt.maxMessage, got, tt.want)
		}
	}
	// The floor counts as window.
	w.SetFloor(512 << 10)
	if got := w.MessageLimit(300<<10, DefaultMaxMessageSize); got != DefaultMaxMessageSize {
		t.Errorf("floor 512 KiB, 300 KiB buffered: MessageLimit = %d, want %d", got, DefaultMaxMessageSize)
	}
	fixed := NewSendWindow(1<<20, 1<<20, 256<<10)
	if got := fixed.MessageLimit(1<<20-100, DefaultMaxMessageSize); got != DefaultMaxMessageSize {
		t.Errorf("fixed window: MessageLimit = %d, want %d", got, DefaultMaxMessageSize)
	}
}

// A path whose round trip grows is followed: the lowest round trip of an
// old path expires, instead of sizing the window for a round trip that is
// gone, which would limit the rate, shrink the window, and so on down.
func TestSendWindowRTTGrows(t *testing.T) {
	w := NewSendWindow(DefaultMinHighWaterMark, DefaultHighWaterMark, DefaultLowWaterMark)
	// 20 ms at 4 MB/s for a minute: about 2 x 80 KB.
	pathModel{20 * time.Millisecond, 4e6}.run(w, time.Minute)
	before := w.HighWater()
	// Then the path moves to a 100 ms route at the same rate: the
	// window needs 2 x 400 KB.
	w = pathModel{100 * time.Millisecond, 4e6}.runFrom(w, time.Unix(60, 0), 2*minRTTWindow+10*time.Second)
	t.Logf("window %d at 20 ms, %d after %v at 100 ms", before, w.HighWater(), 2*minRTTWindow+10*time.Second)
	if h := w.HighWater(); h < 600e3 {
		t.Fatalf("window %d after the round trip grew to 100 ms at 4 MB/s, want about 800 KB", h)
	}
	if before > 250e3 {
		t.Fatalf("window %d at 20 ms and 4 MB/s, want about 160 KB", before)
	}
}
