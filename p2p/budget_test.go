package p2p

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Uploads whose wait for the byte rate is cancelled (the browser gave up)
// give their bytes back: otherwise every later upload would wait for bytes
// that were never sent, and an overload would starve all uploads.
func TestUploadBudgetCancelledWaitGivesBytesBack(t *testing.T) {
	b := NewUploadBudget(0, 64<<10)
	if err := b.WaitBytes(context.Background(), DefaultMaxMessageSize); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := b.WaitBytes(ctx, DefaultMaxMessageSize); err == nil {
				t.Error("a wait for a whole second's bytes ended before its 20 ms context")
			}
		}()
	}
	wg.Wait()
	b.mu.Lock()
	wait := time.Duration(-b.tokens / b.rate * float64(time.Second))
	b.mu.Unlock()
	if wait > 100*time.Millisecond {
		t.Errorf("after 10 cancelled waits the next chunk waits %v for bytes never sent", wait)
	}
}

// A new upload is refused while the running ones are more than
// maxByteBacklog behind the byte rate, so the browser hears Absent at once
// instead of timing out.
func TestUploadBudgetRefusesBeyondBacklog(t *testing.T) {
	const rate = 64 << 10
	b := NewUploadBudget(0, rate)
	if !b.TryAcquire() {
		t.Fatal("the first upload was refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Book the burst plus more than a second's worth of bytes.
	booked := make(chan struct{})
	go func() {
		_ = b.WaitBytes(ctx, rate)
		_ = b.WaitBytes(ctx, rate+rate/2)
		close(booked)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		owed := -b.tokens
		b.mu.Unlock()
		if owed > rate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bytes were never booked")
		}
		time.Sleep(time.Millisecond)
	}
	if b.TryAcquire() {
		t.Error("an upload was admitted with more than a second of bytes owed")
	}
	cancel()
	<-booked
	if !b.TryAcquire() {
		t.Error("an upload was refused after the owed bytes were given back")
	}
}

func TestUploadBudgetShare(t *testing.T) {
	var none *UploadBudget
	if got := none.Share(256 << 10); got != 256<<10 {
		t.Errorf("nil budget: share %d, want all of it", got)
	}
	b := NewUploadBudget(0, 0)
	if got := b.Share(256 << 10); got != 256<<10 {
		t.Errorf("no uploads running: share %d, want all of it", got)
	}
	for range 4 {
		b.TryAcquire()
	}
	if got := b.Share(256 << 10); got != 64<<10 {
		t.Errorf("4 uploads running: share %d, want a quarter", got)
	}
}
