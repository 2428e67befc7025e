package p2p

import (
	"context"
	"sync"
	"time"
)

// UploadBudget is shared by the UploadSessions of one seeder to cap what it
// uploads in total: a number of uploads at once and a byte rate. A request
// that finds every upload slot taken is answered with SegmentAbsent at once,
// so the browser turns to HTTP or another peer instead of waiting; the byte
// rate paces the chunks of running uploads. A nil *UploadBudget imposes no
// limit. An UploadBudget is safe for concurrent use.
type UploadBudget struct {
	maxUploads int
	rate       float64 // bytes per second; 0 means unlimited
	burst      float64

	mu      sync.Mutex
	running int
	tokens  float64
	last    time.Time
}

// NewUploadBudget returns a budget of at most maxUploads uploads at once
// (0 or less: unlimited) and bytesPerSecond bytes per second (0 or less:
// unlimited). The byte rate allows bursts of one second's worth or one
// chunk, whichever is larger.
func NewUploadBudget(maxUploads int, bytesPerSecond float64) *UploadBudget {
	b := &UploadBudget{maxUploads: maxUploads}
	if bytesPerSecond > 0 {
		b.rate = bytesPerSecond
		b.burst = max(bytesPerSecond, DefaultMaxMessageSize)
		b.tokens = b.burst
	}
	return b
}

// TryAcquire takes an upload slot and reports whether one was free. Each
// successful call must be followed by one Release.
func (b *UploadBudget) TryAcquire() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxUploads > 0 && b.running >= b.maxUploads {
		return false
	}
	b.running++
	return true
}

// Release returns a slot taken by TryAcquire.
func (b *UploadBudget) Release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.running--
	b.mu.Unlock()
}

// Running returns the number of uploads holding a slot.
func (b *UploadBudget) Running() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

// WaitBytes blocks until n bytes may be sent under the byte rate, or ctx
// ends. Waits are short: a chunk is at most DefaultMaxMessageSize bytes,
// well inside the browser's 2 s inactivity timer unless the rate is set
// below about 32 KiB/s.
func (b *UploadBudget) WaitBytes(ctx context.Context, n int) error {
	if b == nil || b.rate == 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	now := time.Now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	deficit := -b.tokens
	b.mu.Unlock()
	if deficit <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(deficit / b.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
