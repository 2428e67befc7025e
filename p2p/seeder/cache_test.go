package seeder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewCache(context.Background(), 300)
	fill := func(n int) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return make([]byte, n), nil }
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Get(context.Background(), k, fill(100)); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(context.Background(), "a", fill(100)) // a is now the most recent
	c.Get(context.Background(), "d", fill(100)) // evicts b
	if _, ok := c.Peek("b"); ok {
		t.Error("b survived; it was the least recently used")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.Peek(k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	st := c.Stats()
	if st.Bytes != 300 || st.Entries != 3 || st.Evictions != 1 || st.Hits != 1 || st.Misses != 4 {
		t.Errorf("stats %+v", st)
	}
	// Larger than the whole cache: returned, not kept.
	if d, err := c.Get(context.Background(), "huge", fill(301)); err != nil || len(d) != 301 {
		t.Fatal(err)
	}
	if _, ok := c.Peek("huge"); ok || c.Stats().Bytes != 300 {
		t.Error("an entry larger than the cap was kept")
	}
}

func TestCacheSingleFlight(t *testing.T) {
	c := NewCache(context.Background(), 1<<20)
	var fetches atomic.Int32
	release := make(chan struct{})
	fetch := func(context.Context) ([]byte, error) {
		fetches.Add(1)
		<-release
		return []byte("segment"), nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := c.Get(context.Background(), "k", fetch); err != nil || string(d) != "segment" {
				t.Errorf("got %q, %v", d, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one key, want 1", n)
	}
	if st := c.Stats(); st.Misses != 1 || st.Shared != 19 {
		t.Errorf("stats %+v", st)
	}
}

func TestCacheErrorsAreNotCachedAndWaitersCanLeave(t *testing.T) {
	c := NewCache(context.Background(), 1<<20)
	_, err := c.Get(context.Background(), "k", func(context.Context) ([]byte, error) { return nil, errors.New("origin down") })
	if err == nil {
		t.Fatal("no error")
	}
	d, err := c.Get(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(d) != "ok" {
		t.Fatalf("a failed fetch was cached: %q %v", d, err)
	}
	// A caller whose context ends stops waiting; the fetch goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	_, err = c.Get(ctx, "slow", func(context.Context) ([]byte, error) { <-done; return []byte("late"), nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	close(done)
	waitFor(t, "the slow fetch to land", func() bool { _, ok := c.Peek("slow"); return ok })
}

// At most MaxFetches fetches run at once: the bytes being fetched are not
// under the byte cap yet. Wait returns once they have all ended.
func TestCacheBoundsFetchesAndWaitsForThem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := NewCache(ctx, 1<<20)
	var running atomic.Int32
	stuck := func(ctx context.Context) ([]byte, error) {
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for i := range MaxFetches {
		short, stop := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := c.Get(short, fmt.Sprint("k", i), stuck)
		stop()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fetch %d: err %v, want the caller's deadline", i, err)
		}
	}
	if _, err := c.Get(context.Background(), "one more", stuck); !errors.Is(err, ErrTooManyFetches) {
		t.Fatalf("fetch %d: err %v, want ErrTooManyFetches", MaxFetches+1, err)
	}
	if _, ok := c.Peek("k0"); ok {
		t.Fatal("a failed fetch was stored")
	}
	cancel()
	c.Wait()
	if n := running.Load(); n != 0 {
		t.Fatalf("%d fetches still running after Wait", n)
	}
	if _, err := c.Get(context.Background(), "after", func(context.Context) ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatalf("a fetch after the others ended: %v", err)
	}
}

func TestCacheForget(t *testing.T) {
	c := NewCache(context.Background(), 1<<20)
	load := func(v string) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return []byte(v), nil }
	}
	if _, err := c.Get(context.Background(), "seg-1.ts", load("old")); err != nil {
		t.Fatal(err)
	}
	c.Forget("seg-1.ts")
	c.Forget("never cached")
	if d, err := c.Get(context.Background(), "seg-1.ts", load("new")); err != nil || string(d) != "new" {
		t.Fatalf("after Forget: %q, %v, want the new payload", d, err)
	}
	if st := c.Stats(); st.Entries != 1 || st.Bytes != 3 {
		t.Errorf("stats %+v, want 1 entry of 3 bytes", st)
	}
}

func TestFileSourceStaysUnderRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "seg.ts"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(filepath.Dir(root), "secret.txt")
	os.WriteFile(outside, []byte("secret"), 0o644)
	defer os.Remove(outside)
	src := FileSource{Root: root, StripPrefix: "/media"}
	d, _, err := src.Fetch(context.Background(), "http://x/media/seg.ts", &manifest.ByteRange{Start: 2, End: 4})
	if err != nil || string(d) != "234" {
		t.Fatalf("range read %q, %v", d, err)
	}
	for _, u := range []string{"http://x/media/../secret.txt", "http://x/../../secret.txt", "http://x/media/%2e%2e/secret.txt"} {
		if d, _, err := src.Fetch(context.Background(), u, nil); err == nil {
			t.Errorf("%s read %q outside the root", u, d)
		}
	}
	if _, _, err := src.Fetch(context.Background(), "http://x/media/seg.ts", &manifest.ByteRange{Start: 5, End: 10}); err == nil {
		t.Error("a range past the end was served")
	}
	small := FileSource{Root: root, MaxSize: 5}
	if _, _, err := small.Fetch(context.Background(), "http://x/seg.ts", nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
}
