package seeder

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
)

// Cache is a byte-capped LRU cache of segment payloads with single-flight
// filling: concurrent Gets of a missing key share one fetch. At most
// MaxFetches fetches run at once. It is safe for concurrent use.
type Cache struct {
	maxBytes int64
	// fetchCtx bounds every fetch; it ends when the owner closes.
	fetchCtx context.Context
	fills    sync.WaitGroup

	mu       sync.Mutex
	bytes    int64
	order    *list.List // of *cacheEntry, most recently used first
	entries  map[string]*list.Element
	inflight map[string]*fetchCall
	stats    CacheStats
}

// CacheStats counts what a Cache has done.
type CacheStats struct {
	Hits      uint64 `json:"hits"`      // Gets answered from memory
	Misses    uint64 `json:"misses"`    // Gets that started a fetch
	Shared    uint64 `json:"shared"`    // Gets that waited for another Get's fetch
	Errors    uint64 `json:"errors"`    // fetches that failed
	Evictions uint64 `json:"evictions"` // entries dropped to stay under the cap
	Entries   int    `json:"entries"`   // entries held now
	Bytes     int64  `json:"bytes"`     // payload bytes held now
	MaxBytes  int64  `json:"max_bytes"` // the cap
}

type cacheEntry struct {
	key  string
	data []byte
}

// MaxFetches bounds the fetches a Cache runs at once. The payloads being
// fetched are outside the byte cap until they are stored, so this bounds
// that memory too (MaxFetches times the largest segment); a Get beyond it
// fails at once with ErrTooManyFetches, which a peer hears as Absent.
const MaxFetches = 64

// ErrTooManyFetches is returned by Get when MaxFetches fetches are running.
var ErrTooManyFetches = errors.New("seeder: too many segment fetches at once")

type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// NewCache returns a cache holding at most maxBytes of payload. Fetches run
// under ctx (plus the fetch function's own timeouts), not under the context
// of the Get that started them, so a caller that gives up does not fail the
// others waiting for the same key.
func NewCache(ctx context.Context, maxBytes int64) *Cache {
	return &Cache{
		maxBytes: maxBytes,
		fetchCtx: ctx,
		order:    list.New(),
		entries:  make(map[string]*list.Element),
		inflight: make(map[string]*fetchCall),
	}
}

// Peek returns the cached payload of key without fetching.
func (c *Cache) Peek(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*cacheEntry).data, true
	}
	return nil, false
}

// Get returns the payload of key, calling fetch to load it when it is not
// cached and no other Get is already loading it. It returns early with
// ctx's error if ctx ends first; the fetch carries on for the others.
func (c *Cache) Get(ctx context.Context, key string, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		c.stats.Hits++
		c.mu.Unlock()
		return el.Value.(*cacheEntry).data, nil
	}
	call, ok := c.inflight[key]
	if ok {
		c.stats.Shared++
	} else {
		if len(c.inflight) >= MaxFetches {
			c.stats.Errors++
			c.mu.Unlock()
			return nil, ErrTooManyFetches
		}
		c.stats.Misses++
		call = &fetchCall{done: make(chan struct{})}
		c.inflight[key] = call
		c.fills.Go(func() { c.fill(key, call, fetch) })
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.data, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Forget drops the cached payload of key, if any.
func (c *Cache) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.Remove(el)
		delete(c.entries, key)
		c.bytes -= int64(len(el.Value.(*cacheEntry).data))
	}
}

// Wait returns once every fetch has ended; they end soon after the context
// given to NewCache does.
func (c *Cache) Wait() { c.fills.Wait() }

// fill runs one fetch and stores its result.
func (c *Cache) fill(key string, call *fetchCall, fetch func(context.Context) ([]byte, error)) {
	data, err := fetch(c.fetchCtx)
	if err == nil && data == nil {
		err = errors.New("fetch returned no data")
	}
	if err != nil {
		err = fmt.Errorf("seeder: fetching %s: %w", key, err)
	}
	call.data, call.err = data, err
	c.mu.Lock()
	delete(c.inflight, key)
	if err != nil {
		c.stats.Errors++
	} else {
		c.storeLocked(key, data)
	}
	c.mu.Unlock()
	close(call.done)
}

// storeLocked adds an entry and evicts the least recently used ones above
// the cap. A payload larger than the whole cap is returned to its callers
// but not kept.
func (c *Cache) storeLocked(key string, data []byte) {
	size := int64(len(data))
	if size > c.maxBytes {
		return
	}
	if el, ok := c.entries[key]; ok {
		c.bytes -= int64(len(el.Value.(*cacheEntry).data))
		c.order.Remove(el)
		delete(c.entries, key)
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, data: data})
	c.bytes += size
	for c.bytes > c.maxBytes {
		el := c.order.Back()
		e := el.Value.(*cacheEntry)
		c.order.Remove(el)
		delete(c.entries, e.key)
		c.bytes -= int64(len(e.data))
		c.stats.Evictions++
	}
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.entries)
	s.Bytes = c.bytes
	s.MaxBytes = c.maxBytes
	return s
}
