package seeder

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// stream is one manifest being seeded: its presentation and the swarms of
// its media streams, one per stream and client.
type stream struct {
	s      *Seeder
	cfg    StreamConfig
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	loaded chan struct{} // closed once the swarms are registered
}

// run loads the manifest (retrying), registers the swarms and, for live
// streams, follows the playlists until the stream is removed.
func (st *stream) run() {
	s := st.s
	log := s.log.With(zap.String("manifest", st.cfg.URL))
	var p *manifest.Presentation
	retry := DefaultStreamRetry
	for {
		ctx, cancel := context.WithTimeout(st.ctx, 30*time.Second)
		var err error
		p, err = manifest.Load(ctx, st.cfg.URL, s.cfg.Source, &manifest.Options{SwarmID: st.cfg.SwarmID})
		cancel()
		if err == nil {
			break
		}
		log.Warn("loading manifest", zap.Error(err), zap.Duration("retry_in", retry))
		if !sleepCtx(st.ctx, retry) {
			return
		}
		retry = min(2*retry, s.cfg.ReloadInterval)
	}
	var swarms []*swarm
	var followed []*playlistFollower
	var dashGroups [][]*swarm
	for _, ms := range p.Streams {
		var group []*swarm
		for _, c := range s.cfg.Clients {
			if !ms.PlayedBy(c) || (c == manifest.HLSJS && ms.Redirected()) {
				continue
			}
			sw := newSwarm(s, st, ms, c)
			group = append(group, sw)
		}
		if len(group) == 0 {
			continue
		}
		swarms = append(swarms, group...)
		switch {
		case ms.Live && p.Format == manifest.FormatHLS:
			followed = append(followed, &playlistFollower{live: manifest.NewLiveStream(p, ms), swarms: group})
		case p.Dynamic:
			for _, sw := range group {
				sw.setSegments(ms.Segments, nil, false)
			}
			dashGroups = append(dashGroups, group)
		default:
			for _, sw := range group {
				sw.setSegments(ms.Segments, nil, true)
			}
		}
	}
	for _, ms := range p.Streams {
		s.mapSegments(st.cfg.URL, ms.Segments, nil)
	}
	defer s.unmapStream(st.cfg.URL)
	log.Info("seeding", zap.Int("swarms", len(swarms)), zap.Bool("live", len(followed) > 0 || p.Dynamic), zap.String("format", p.Format.String()))
	s.addSwarms(swarms)
	close(st.loaded)
	defer s.removeSwarms(swarms)
	if p.Dynamic {
		(&mpdFollower{st: st, p: p, groups: dashGroups}).run(log)
		return
	}
	if len(followed) == 0 {
		<-st.ctx.Done()
		return
	}
	(&hlsFollower{st: st, playlists: followed}).run(log)
}

// hlsFollower keeps the swarms of a live HLS presentation's media playlists
// up to date. It refreshes all of them in rounds, from one goroutine,
// because the playlists of a presentation are numbered together:
// p2p-media-loader-shaka 2.2 numbers new audio segments from the newest
// video segment (manifest.LiveStream), so the video playlists of a round are
// merged before its audio playlists, and a round's playlists are fetched
// together so that they are copies from about the same moment, as shaka
// fetches them. New segments are fetched into the cache by one worker per
// playlist, so a slow segment holds up neither the refreshes nor the other
// playlists.
type hlsFollower struct {
	st        *stream
	playlists []*playlistFollower // video first, then audio (Presentation.Streams order)
}

// playlistFollower is one followed media playlist and its swarms.
type playlistFollower struct {
	live   *manifest.LiveStream
	swarms []*swarm
	ended  bool // EXT-X-ENDLIST seen: no more refreshes
	queue  *prefetchQueue
}

// run refreshes the playlists at about half the segment duration (the HLS
// reload rule for an unchanged playlist), has new segments fetched into the
// cache and announced as soon as they are there, and returns once the
// stream is removed and its workers have ended.
func (f *hlsFollower) run(log *zap.Logger) {
	var workers sync.WaitGroup
	defer workers.Wait()
	for _, pf := range f.playlists {
		pf.queue = newPrefetchQueue(pf.swarms)
		workers.Go(func() { pf.queue.run(f.st, log) })
		// The first batch: the segments Load already found.
		f.publish(pf, pf.live.Stream().Segments, nil)
	}
	for {
		var active []*playlistFollower
		wait := 10 * time.Second
		for _, pf := range f.playlists {
			if pf.ended {
				continue
			}
			active = append(active, pf)
			w := time.Second
			if segs := pf.live.Stream().Segments; len(segs) > 0 {
				w = time.Duration(segs[len(segs)-1].Duration / 2 * float64(time.Second))
			}
			wait = min(wait, max(w, 250*time.Millisecond))
		}
		if len(active) == 0 {
			<-f.st.ctx.Done()
			return
		}
		if !sleepCtx(f.st.ctx, wait) {
			return
		}
		fetched := f.fetchAll(active)
		if f.st.ctx.Err() != nil {
			return
		}
		for i, pf := range active { // video before audio
			ms := pf.live.Stream()
			if err := fetched[i].err; err != nil {
				log.Warn("refreshing live playlist", zap.String("playlist", ms.URL), zap.Error(err))
				continue
			}
			r, err := pf.live.Refresh(fetched[i].final, fetched[i].body)
			if err != nil {
				log.Warn("refreshing live playlist", zap.String("playlist", ms.URL), zap.Error(err))
				continue
			}
			f.publish(pf, r.New, r.Removed)
			if r.Ended {
				log.Info("live playlist ended", zap.String("playlist", ms.URL))
				pf.ended = true
				for _, sw := range pf.swarms {
					sw.setSegments(ms.Segments, nil, true)
				}
			}
		}
	}
}

// playlistFetch is one playlist's copy from a round.
type playlistFetch struct {
	body  []byte
	final string
	err   error
}

// fetchAll fetches the playlists of one round concurrently, in the order
// of active.
func (f *hlsFollower) fetchAll(active []*playlistFollower) []playlistFetch {
	s := f.st.s
	out := make([]playlistFetch, len(active))
	var wg sync.WaitGroup
	for i, pf := range active {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(f.st.ctx, 10*time.Second)
			defer cancel()
			out[i].body, out[i].final, out[i].err = s.cfg.Source.Fetch(ctx, pf.live.Stream().URL, nil)
		})
	}
	wg.Wait()
	return out
}

// publish records a playlist's change: removed segments stop being
// announced (they stay servable while the LiveStream retains them) and new
// ones are queued for the playlist's prefetch worker, which announces each
// once it is cached.
func (f *hlsFollower) publish(pf *playlistFollower, added, removed []*manifest.Segment) {
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	s := f.st.s
	s.mapSegments(f.st.cfg.URL, added, removed)
	for _, seg := range added {
		// A new segment under a URL the origin used before (a ring of
		// segment names) must not be served from the old bytes.
		s.cache.Forget(seg.RuntimeID())
	}
	for _, sw := range pf.swarms {
		sw.setSegments(pf.live.Stream().Segments, removed, false)
	}
	pf.queue.push(added, removed)
}

// maxPrefetchQueue bounds the new segments waiting for a media stream's
// prefetch worker. Beyond it the oldest leave the queue and are announced
// at once, uncached, as VOD segments are: a peer's request fetches them on
// demand, and browsers request only segments the seeder announces.
const maxPrefetchQueue = 32

// prefetchQueue holds the new segments of one live media stream that wait
// to be fetched into the cache and announced in the stream's swarms, oldest
// first, for a worker of their own: a slow segment then holds up neither
// the manifest reloads nor the other streams.
type prefetchQueue struct {
	swarms []*swarm

	mu    sync.Mutex
	queue []*manifest.Segment
	wake  chan struct{} // capacity 1
}

func newPrefetchQueue(swarms []*swarm) *prefetchQueue {
	return &prefetchQueue{swarms: swarms, wake: make(chan struct{}, 1)}
}

// push queues the added segments and drops the removed ones from the
// queue. Beyond maxPrefetchQueue the oldest are announced uncached.
func (q *prefetchQueue) push(added, removed []*manifest.Segment) {
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	q.mu.Lock()
	// By runtime id: a reloaded MPD's segments are new objects.
	gone := make(map[string]bool, len(removed))
	for _, seg := range removed {
		gone[seg.RuntimeID()] = true
	}
	kept := q.queue[:0]
	for _, seg := range q.queue {
		if !gone[seg.RuntimeID()] {
			kept = append(kept, seg)
		}
	}
	kept = append(kept, added...)
	var overflow []*manifest.Segment
	if len(kept) > maxPrefetchQueue {
		overflow = kept[:len(kept)-maxPrefetchQueue]
		kept = slices.Clone(kept[len(kept)-maxPrefetchQueue:])
	}
	q.queue = kept
	q.mu.Unlock()
	for _, seg := range overflow {
		for _, sw := range q.swarms {
			sw.markAvailable(seg)
		}
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run fetches the queued segments in order until the stream ends.
func (q *prefetchQueue) run(st *stream, log *zap.Logger) {
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-q.wake:
		}
		q.mu.Lock()
		batch := q.queue
		q.queue = nil
		q.mu.Unlock()
		st.prefetch(batch, q.swarms, log)
	}
}

// prefetch fetches new live segments into the cache in order and makes
// each announceable in swarms as soon as it is there.
func (st *stream) prefetch(added []*manifest.Segment, swarms []*swarm, log *zap.Logger) {
	for _, seg := range added {
		ctx, cancel := context.WithTimeout(st.ctx, 10*time.Second)
		_, err := st.s.fetchSegment(ctx, seg)
		cancel()
		if st.ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, ErrTooManyFetches) {
			log.Warn("prefetching live segment", zap.String("url", seg.URL), zap.Error(err))
			continue
		}
		// Fetched, or left to be fetched on demand while the cache
		// is busy (as segments beyond the prefetch queue are).
		for _, sw := range swarms {
			sw.markAvailable(seg)
		}
	}
}

// mapSegments records which stream segment URLs belong to.
func (s *Seeder) mapSegments(manifestURL string, added, removed []*manifest.Segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range removed {
		delete(s.segmentStreams, seg.URL)
	}
	for _, seg := range added {
		s.segmentStreams[seg.URL] = manifestURL
	}
}

// unmapStream forgets the segment URLs of a stream.
func (s *Seeder) unmapStream(manifestURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u, m := range s.segmentStreams {
		if m == manifestURL {
			delete(s.segmentStreams, u)
		}
	}
}

// mpdFollower keeps the swarms of a dynamic (live) MPD up to date: it
// reloads the MPD at about half the segment duration, and fetches and
// announces each segment that enters the availability window. Shaka's ids
// for DASH derive from segment start times, so they are stable across
// reloads.
type mpdFollower struct {
	st     *stream
	p      *manifest.Presentation
	groups [][]*swarm // the swarms of each stream, in the first load's order
}

func (f *mpdFollower) run(log *zap.Logger) {
	s := f.st.s
	u := f.st.cfg.URL
	// One prefetch worker per stream, so that the first load's window
	// and a slow segment hold up neither the reloads nor other streams.
	queues := make([]*prefetchQueue, len(f.groups))
	var workers sync.WaitGroup
	defer workers.Wait()
	for i, g := range f.groups {
		queues[i] = newPrefetchQueue(g)
		workers.Go(func() { queues[i].run(f.st, log) })
	}
	// Each stream's segments, by runtime id: the first load's, then
	// every reload's.
	known := make([]map[string]*manifest.Segment, len(f.groups))
	publish := func(i int, segs []*manifest.Segment) {
		var added, removed []*manifest.Segment
		now := make(map[string]*manifest.Segment, len(segs))
		urls := make(map[string]bool, len(segs))
		for _, seg := range segs {
			now[seg.RuntimeID()] = seg
			urls[seg.URL] = true
			if known[i][seg.RuntimeID()] == nil {
				added = append(added, seg)
			}
		}
		var gone []*manifest.Segment
		for id, seg := range known[i] {
			if now[id] == nil {
				gone = append(gone, seg)
				// A byte range of a file the MPD still uses
				// leaves the file's URL mapped.
				if !urls[seg.URL] {
					removed = append(removed, seg)
				}
			}
		}
		known[i] = now
		for _, sw := range f.groups[i] {
			sw.setSegments(segs, nil, false)
		}
		s.mapSegments(u, added, removed)
		queues[i].push(added, gone)
	}
	// The stream of a group in a (re)loaded presentation, by the info
	// hash of its first swarm.
	byHash := func(p *manifest.Presentation, sw *swarm) *manifest.Stream {
		for _, ms := range p.Streams {
			if ms.Swarms[sw.client].InfoHash == sw.infoHash {
				return ms
			}
		}
		return nil
	}
	interval := func(p *manifest.Presentation) time.Duration {
		d := 2 * time.Second
		for _, ms := range p.Streams {
			if n := len(ms.Segments); n > 0 {
				d = time.Duration(ms.Segments[n-1].Duration / 2 * float64(time.Second))
				break
			}
		}
		return min(max(d, time.Second), 10*time.Second)
	}
	p := f.p
	for {
		for i, g := range f.groups {
			if ms := byHash(p, g[0]); ms != nil {
				publish(i, ms.Segments)
			}
		}
		if !sleepCtx(f.st.ctx, interval(p)) {
			return
		}
		ctx, cancel := context.WithTimeout(f.st.ctx, 10*time.Second)
		next, err := manifest.Load(ctx, u, s.cfg.Source, &manifest.Options{SwarmID: f.st.cfg.SwarmID})
		cancel()
		if err != nil {
			log.Warn("reloading live MPD", zap.Error(err))
			continue
		}
		p = next
	}
}

// fetchSegment returns a segment's payload through the cache.
func (s *Seeder) fetchSegment(ctx context.Context, seg *manifest.Segment) ([]byte, error) {
	return s.cache.Get(ctx, seg.RuntimeID(), func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		data, _, err := s.cfg.Source.Fetch(ctx, seg.URL, seg.ByteRange)
		return data, err
	})
}

// sleepCtx waits d or until ctx ends, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
