package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// appGenerations holds what the p2p apps of successive configs share. A
// reload starts the new config's app before it stops the old one, and each
// app has a seeder of its own; the apps that run, and the streams added at
// run time (discovered by p2p_manifest or added through the admin API),
// must outlive any one of them, or a reload would forget every stream not
// in the config while players go on watching it.
var appGenerations = caddy.NewUsagePool()

// appGenerationsKey is the one key of appGenerations: a process has one
// p2p app per config.
const appGenerationsKey = "p2p"

// generations is the pooled value of appGenerations.
type generations struct {
	mu      sync.Mutex
	started []*App // oldest first
	newest  atomic.Pointer[App]

	streams *runtimeStreams
}

// Destruct implements caddy.Destructor; there is nothing to release.
func (*generations) Destruct() error { return nil }

// sharedGenerations returns the pooled state, taking a reference that
// the caller gives back with appGenerations.Delete(appGenerationsKey).
func sharedGenerations() (*generations, error) {
	v, _, err := appGenerations.LoadOrNew(appGenerationsKey, func() (caddy.Destructor, error) {
		return &generations{streams: newRuntimeStreams()}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*generations), nil
}

// appStarted records that a started.
func (g *generations) appStarted(a *App) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.started = append(g.started, a)
	g.newest.Store(a)
}

// appStopped records that a stopped.
func (g *generations) appStopped(a *App) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, o := range g.started {
		if o == a {
			g.started = append(g.started[:i], g.started[i+1:]...)
			break
		}
	}
	var newest *App
	if n := len(g.started); n > 0 {
		newest = g.started[n-1]
	}
	g.newest.Store(newest)
}

// runtimeStreams are the streams added to the seeder at run time, by
// URL: discovered by p2p_manifest handlers, which drop them once nobody
// requests them for their idle timeout, or added through the admin API,
// which stay until deleted there. Every running app's seeder seeds them
// (App.syncRuntimeStreams).
type runtimeStreams struct {
	mu      sync.Mutex
	entries map[string]*runtimeStream
	// playlists maps the media playlist URLs of discovered streams (see
	// streamKey) to their stream's URL: players load the multivariant
	// playlist once and then only poll these.
	playlists map[string]string
	// rejected remembers manifest versions (stream URL and version)
	// that are not presentations, so they are not parsed per request.
	rejected map[string]struct{}
	// full is set while the cap refuses discovered streams, so that the
	// refusal is logged once.
	full bool
}

// runtimeStream is one stream added at run time.
type runtimeStream struct {
	config     seeder.StreamConfig
	discovered bool          // by p2p_manifest; else through the admin API
	idle       time.Duration // discovered: dropped after this long unrequested
	lastSeen   time.Time     // discovered: the last request for it
	version    string        // discovered: the manifest version playlists come from
	playlists  []string      // discovered: its media playlists
}

func newRuntimeStreams() *runtimeStreams {
	return &runtimeStreams{
		entries:   map[string]*runtimeStream{},
		playlists: map[string]string{},
		rejected:  map[string]struct{}{},
	}
}

// configs returns the stream configs of every runtime stream.
func (rs *runtimeStreams) configs() []seeder.StreamConfig {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]seeder.StreamConfig, 0, len(rs.entries))
	for _, e := range rs.entries {
		out = append(out, e.config)
	}
	return out
}

// has reports whether url is a runtime stream.
func (rs *runtimeStreams) has(url string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.entries[url]
	return ok
}

// addManual records a stream added through the admin API; one that was
// discovered stays until deleted from now on.
func (rs *runtimeStreams) addManual(sc seeder.StreamConfig) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.unmapLocked(sc.URL)
	rs.entries[sc.URL] = &runtimeStream{config: sc}
}

// isDiscovered reports whether url is a discovered stream.
func (rs *runtimeStreams) isDiscovered(url string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e := rs.entries[url]
	return e != nil && e.discovered
}

// forget drops the stream at url, however it was added.
func (rs *runtimeStreams) forget(url string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.unmapLocked(url)
	delete(rs.entries, url)
}

// sweep drops the discovered streams nobody requested for their idle
// timeout.
func (rs *runtimeStreams) sweep(now time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	discovered := 0
	for u, e := range rs.entries {
		if !e.discovered {
			continue
		}
		if now.Sub(e.lastSeen) > e.idle {
			rs.unmapLocked(u)
			delete(rs.entries, u)
			continue
		}
		discovered++
	}
	if discovered < maxDiscoveredStreams {
		rs.full = false
	}
}

// discoveredCountLocked counts the discovered streams; rs.mu is held.
func (rs *runtimeStreams) discoveredCountLocked() int {
	n := 0
	for _, e := range rs.entries {
		if e.discovered {
			n++
		}
	}
	return n
}

// mapLocked replaces the media playlists mapped to the stream at url;
// rs.mu is held.
func (rs *runtimeStreams) mapLocked(e *runtimeStream, url, version string, playlists []string) {
	rs.unmapLocked(url)
	e.version, e.playlists = version, playlists
	for _, p := range playlists {
		rs.playlists[p] = url
	}
}

// unmapLocked forgets the media playlists of the stream at url; rs.mu is
// held.
func (rs *runtimeStreams) unmapLocked(url string) {
	e := rs.entries[url]
	if e == nil {
		return
	}
	for _, p := range e.playlists {
		// Another stream's manifest may list the same playlist.
		if rs.playlists[p] == url {
			delete(rs.playlists, p)
		}
	}
	e.version, e.playlists = "", nil
}

// streamTracker is a p2p_manifest handler's view of the runtime streams:
// it registers the streams the handler discovers with the seeder, keeps
// them while players request their manifest, media playlists or segments,
// and the app drops those nobody requested for the handler's idle timeout.
// Streams configured in the app are never among them.
type streamTracker struct {
	app  *App
	idle time.Duration
	rs   *runtimeStreams
}

// refresh records a request for a discovered stream's manifest, one of its
// media playlists or, given its URL, one of its segments. It reports
// whether url belongs to a discovered stream.
func (t *streamTracker) refresh(url string, now time.Time) bool {
	rs := t.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e := rs.entries[url]
	if e == nil {
		if stream, ok := rs.playlists[url]; ok {
			e = rs.entries[stream]
		}
	}
	if e == nil || !e.discovered {
		return false
	}
	e.lastSeen = now
	return true
}

// refreshManifest records a request for the manifest of a stream: known
// reports that it is a runtime stream, current that its playlists were
// mapped from this version (or that it needs none: one added through the
// admin API).
func (t *streamTracker) refreshManifest(url, version string, now time.Time) (known, current bool) {
	rs := t.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e := rs.entries[url]
	if e == nil {
		return false, false
	}
	if !e.discovered {
		return true, true
	}
	e.lastSeen = now
	return true, e.version == version
}

// hasRoom reports whether another stream may be discovered, and logs the
// first refusal once the cap is reached.
func (t *streamTracker) hasRoom(url string, log *zap.Logger) bool {
	rs := t.rs
	rs.mu.Lock()
	room := rs.discoveredCountLocked() < maxDiscoveredStreams
	warn := !room && !rs.full
	if !room {
		rs.full = true
	}
	rs.mu.Unlock()
	if warn {
		log.Warn("p2p_manifest: discovered-stream cap reached; new streams are not seeded until idle ones are dropped",
			zap.Int("cap", maxDiscoveredStreams), zap.String("refused", url))
	}
	return room
}

// isRejected reports whether this version of the manifest at url did not
// parse as a presentation.
func (t *streamTracker) isRejected(url, version string) bool {
	rs := t.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.rejected[url+"\x00"+version]
	return ok
}

// reject remembers that this version of the manifest at url is not a
// presentation.
func (t *streamTracker) reject(url, version string) {
	rs := t.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.rejected) >= maxRejectedManifests {
		// Forgetting all is enough to stay bounded: a version is
		// parsed again at most once per fill.
		rs.rejected = map[string]struct{}{}
	}
	rs.rejected[url+"\x00"+version] = struct{}{}
}

// setPlaylists maps the media playlists of a version of a discovered
// stream's manifest.
func (t *streamTracker) setPlaylists(url, version string, playlists []string) {
	rs := t.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if e := rs.entries[url]; e != nil && e.discovered {
		rs.mapLocked(e, url, version, playlists)
	}
}

// add registers the stream at url with the seeder and, if the seeder did
// not have it, records it as discovered and waits up to wait for the
// seeder to join its swarms. A failure leaves nothing recorded, so that a
// later request tries again.
func (t *streamTracker) add(ctx context.Context, s *seeder.Seeder, url, version string, playlists []string, wait time.Duration, log *zap.Logger) {
	rs := t.rs
	rs.mu.Lock()
	if _, ok := rs.entries[url]; ok {
		// A concurrent request added it.
		rs.mu.Unlock()
		return
	}
	if rs.discoveredCountLocked() >= maxDiscoveredStreams {
		rs.mu.Unlock()
		t.hasRoom(url, log)
		return
	}
	// Recorded before it is added, so that concurrent requests neither
	// add it twice nor take the seeder's "already there" for a stream
	// configured in the app.
	e := &runtimeStream{config: seeder.StreamConfig{URL: url}, discovered: true, idle: t.idle, lastSeen: time.Now()}
	rs.entries[url] = e
	rs.mapLocked(e, url, version, playlists)
	rs.mu.Unlock()
	added, err := s.AddStream(e.config)
	if err == nil && !added && t.app.seeds(s, url) {
		// The app's sync saw the entry first and added the stream.
		added = true
	}
	if err != nil || !added {
		rs.forget(url)
		if err != nil {
			log.Warn("p2p_manifest: registering stream", zap.String("url", url), zap.Error(err))
		}
		return
	}
	t.app.markSeeded(s, url)
	log.Info("p2p_manifest: stream discovered", zap.String("url", url))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_ = s.WaitStream(wctx, url)
}
