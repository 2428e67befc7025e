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
	if b.rate > 0 && b.refill(time.Now()) < -b.rate*maxByteBacklog.Seconds() {
		// The running uploads already owe more than the byte rate
		// pays off in maxByteBacklog: another one would only make
		// every upload miss the browser's timer.
		return false
	}
	b.running++
	return true
}

// maxByteBacklog is how far behind the byte rate the running uploads may
// be before TryAcquire refuses new ones: half the browser's 2 s wait for
// the next bytes of a segment.
const maxByteBacklog = time.Second

// refill adds the tokens earned since the last call and returns the
// balance. b.mu must be held.
func (b *UploadBudget) refill(now time.Time) float64 {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	return b.tokens
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

// Share returns total split evenly among the uploads holding a slot (at
// least one): an upload's share of UploadOptions.SharedWindow. A nil
// budget counts no other uploads, so the share is all of total.
func (b *UploadBudget) Share(total uint64) uint64 {
	return total / uint64(max(1, b.Running()))
}

// WaitBytes blocks until n bytes may be sent under the byte rate, or ctx
// ends. The bytes are booked at once, so concurrent uploads queue behind
// each other; TryAcquire keeps that queue under maxByteBacklog. A wait that
// ctx ends gives its bytes back: they were never sent, and keeping them
// booked would delay every later upload by them.
func (b *UploadBudget) WaitBytes(ctx context.Context, n int) error {
	if b == nil || b.rate == 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	b.tokens = b.refill(time.Now()) - float64(n)
	deficit := -b.tokens
	b.mu.Unlock()
	if deficit <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(deficit / b.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		b.mu.Lock()
		b.tokens = min(b.burst, b.tokens+float64(n))
		b.mu.Unlock()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
