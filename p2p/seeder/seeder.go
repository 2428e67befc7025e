package seeder

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// DefaultPeerIDPrefix makes the seeder recognisable in swarms and tracker
// logs (Azureus-style client id "CP", version 0001).
const DefaultPeerIDPrefix = "-CP0001-"

// Defaults of Config.
const (
	DefaultCacheBytes        = 256 << 20
	DefaultMaxPeers          = 1000
	DefaultOffersPerAnnounce = 3
	DefaultOfferTimeout      = 50 * time.Second
	DefaultAnnounceInterval  = 30 * time.Second
	DefaultRareThreshold     = 2
	DefaultConnectTimeout    = 30 * time.Second
	DefaultGatherTimeout     = 5 * time.Second
	DefaultReloadInterval    = 30 * time.Second
	DefaultStreamRetry       = 5 * time.Second
	// announceDelay coalesces announcement changes within a swarm.
	announceDelay = 100 * time.Millisecond
)

// Config configures a Seeder. API and Source are required.
type Config struct {
	// API makes the PeerConnections; see NewAPI.
	API *webrtc.API
	// ICEServers go into every PeerConnection's configuration.
	ICEServers []webrtc.ICEServer
	// Source reads manifests and segments.
	Source manifest.Fetcher
	// Trackers are WebTorrent tracker URLs (ws:// or wss://).
	Trackers []string
	// TrackerHeader is sent with each tracker WebSocket handshake (an
	// Origin, for example).
	TrackerHeader map[string][]string
	// TrackerDialers open the connections of the Trackers they are keyed
	// by instead of a WebSocket: an in-process tracker, for one.
	TrackerDialers map[string]TrackerDialer
	// PeerIDPrefix starts the seeder's peer id; default
	// DefaultPeerIDPrefix.
	PeerIDPrefix string
	// Clients are the player integrations whose swarms the seeder joins;
	// default all (hls.js with core 2.3 and Shaka with core 2.2).
	Clients []manifest.Client
	// CacheBytes caps the segment cache; default DefaultCacheBytes.
	CacheBytes int64
	// MaxPeers caps the PeerConnections, offers included; default
	// DefaultMaxPeers.
	MaxPeers int
	// OffersPerAnnounce is how many offers the seeder sends with an
	// announce when the swarm has browsers it is not connected to;
	// default DefaultOffersPerAnnounce. Negative sends none: the seeder
	// then only answers browsers' offers.
	OffersPerAnnounce int
	// OfferTimeout closes offers nobody answered; default
	// DefaultOfferTimeout (the browsers' own offer lifetime).
	OfferTimeout time.Duration
	// AnnounceInterval is the re-announce period until a tracker names
	// its own; default DefaultAnnounceInterval.
	AnnounceInterval time.Duration
	// Upload tunes each UploadSession; its Budget caps all of them.
	Upload p2p.UploadOptions
	// RareOnly makes the seeder announce to its peers only the segments
	// fewer than RareThreshold of them hold, so browsers share the common
	// ones among themselves and the seeder fills the gaps.
	RareOnly bool
	// RareThreshold is the holder count from which a segment counts as
	// common; default DefaultRareThreshold.
	RareThreshold int
	// ReloadInterval is how often a VOD manifest that failed to load is
	// retried, and DefaultStreamRetry the first retry.
	ReloadInterval time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.API == nil {
		return errors.New("seeder: config: no webrtc API")
	}
	if c.Source == nil {
		return errors.New("seeder: config: no segment source")
	}
	if c.PeerIDPrefix == "" {
		c.PeerIDPrefix = DefaultPeerIDPrefix
	}
	if len(c.Clients) == 0 {
		c.Clients = manifest.Clients()
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.OffersPerAnnounce == 0 {
		c.OffersPerAnnounce = DefaultOffersPerAnnounce
	}
	if c.OfferTimeout <= 0 {
		c.OfferTimeout = DefaultOfferTimeout
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.RareThreshold <= 0 {
		c.RareThreshold = DefaultRareThreshold
	}
	if c.ReloadInterval <= 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// StreamConfig names a stream to seed.
type StreamConfig struct {
	// URL is the manifest URL exactly as the players load it: the swarm
	// ids derive from it (spec §2.2).
	URL string `json:"url"`
	// SwarmID is the application's swarmId, if the player page sets one.
	SwarmID string `json:"swarm_id,omitempty"`
}

// Seeder is the origin's peer. Create it with New, add streams with
// AddStream, and Close it to end every goroutine and connection.
type Seeder struct {
	cfg    Config
	peerID string
	log    *zap.Logger
	cache  *Cache

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	streams  map[string]*stream
	swarms   map[p2p.InfoHash]*swarm
	trackers []*trackerClient
	// segmentStreams maps segment URLs to their manifest URL, bounded by
	// the seeded playlists (live segments leave it with their swarms'
	// segment lists).
	segmentStreams map[string]string

	pcs      atomic.Int64 // PeerConnections open, offers included
	counters seederCounters
}

type seederCounters struct {
	offersSent, offersAnswered, offersReceived, answersSent atomic.Uint64
	peersRefused, connections, connectFailures              atomic.Uint64
}

// New starts a seeder with no streams; its tracker clients connect at
// once.
func New(cfg Config) (*Seeder, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	peerID, err := p2p.NewPeerID(cfg.PeerIDPrefix, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seeder: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Seeder{
		cfg:            cfg,
		peerID:         peerID,
		log:            cfg.Logger,
		cache:          NewCache(ctx, cfg.CacheBytes),
		ctx:            ctx,
		cancel:         cancel,
		streams:        make(map[string]*stream),
		swarms:         make(map[p2p.InfoHash]*swarm),
		segmentStreams: make(map[string]string),
	}
	for _, u := range cfg.Trackers {
		t := newTrackerClient(s, u)
		s.trackers = append(s.trackers, t)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t.run(ctx)
		}()
	}
	return s, nil
}

// PeerID returns the seeder's peer id.
func (s *Seeder) PeerID() string { return s.peerID }

// Cache returns the segment cache.
func (s *Seeder) Cache() *Cache { return s.cache }

// Close leaves every swarm, closes every PeerConnection and tracker
// connection and waits for all goroutines of the seeder to end.
func (s *Seeder) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	swarms := make([]*swarm, 0, len(s.swarms))
	for _, sw := range s.swarms {
		swarms = append(swarms, sw)
	}
	s.mu.Unlock()
	s.cancel()
	for _, sw := range swarms {
		sw.close()
	}
	s.wg.Wait()
	s.cache.Wait()
	return nil
}

// AddStream starts seeding the streams of the manifest sc names. The
// manifest is loaded in the background (and retried until it loads); for a
// live stream the seeder follows its playlists until RemoveStream. Adding
// a URL already added does nothing and reports false.
func (s *Seeder) AddStream(sc StreamConfig) (bool, error) {
	if sc.URL == "" {
		return false, errors.New("seeder: add stream: empty URL")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errors.New("seeder: add stream: seeder closed")
	}
	if _, ok := s.streams[sc.URL]; ok {
		return false, nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	st := &stream{s: s, cfg: sc, ctx: ctx, cancel: cancel, done: make(chan struct{}), loaded: make(chan struct{})}
	s.streams[sc.URL] = st
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(st.done)
		st.run()
	}()
	return true, nil
}

// RemoveStream stops seeding the manifest at url: its swarms are left and
// their connections closed. It reports whether the stream was known.
func (s *Seeder) RemoveStream(url string) bool {
	s.mu.Lock()
	st, ok := s.streams[url]
	if ok {
		delete(s.streams, url)
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	st.cancel()
	<-st.done
	return true
}

// WaitStream waits until the stream added under url has joined its swarms
// (its manifest loaded), ctx ends, or the stream is removed.
func (s *Seeder) WaitStream(ctx context.Context, url string) error {
	s.mu.Lock()
	st, ok := s.streams[url]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("seeder: stream %s not added", url)
	}
	select {
	case <-st.loaded:
		return nil
	case <-st.done:
		return fmt.Errorf("seeder: stream %s removed", url)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HasStream reports whether the manifest at url is being seeded.
func (s *Seeder) HasStream(url string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.streams[url]
	return ok
}

// HasSwarm reports whether the seeder is in the swarm of infoHash.
func (s *Seeder) HasSwarm(infoHash p2p.InfoHash) bool {
	return s.swarm(infoHash) != nil
}

// StreamOfSegment returns the manifest URL of the stream one of whose
// segments has the URL segmentURL, for per-stream traffic accounting.
func (s *Seeder) StreamOfSegment(segmentURL string) (manifestURL string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.segmentStreams[segmentURL]
	return u, ok
}

// Streams returns the URLs of the streams being seeded.
func (s *Seeder) Streams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.streams))
	for u := range s.streams {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// addSwarms registers the swarms of a loaded stream and has every tracker
// announce them.
func (s *Seeder) addSwarms(sws []*swarm) {
	s.mu.Lock()
	var added []*swarm
	for _, sw := range sws {
		if _, dup := s.swarms[sw.infoHash]; dup {
			// Two manifests mapping to one swarm (same URL under two
			// swarm ids cannot happen; identical swarm ids can).
			continue
		}
		s.swarms[sw.infoHash] = sw
		added = append(added, sw)
	}
	trackers := append([]*trackerClient(nil), s.trackers...)
	s.mu.Unlock()
	for _, t := range trackers {
		for _, sw := range added {
			t.join(sw)
		}
	}
}

// removeSwarms unregisters swarms, tells the trackers and closes them.
func (s *Seeder) removeSwarms(sws []*swarm) {
	s.mu.Lock()
	var registered []*swarm
	for _, sw := range sws {
		if s.swarms[sw.infoHash] == sw {
			delete(s.swarms, sw.infoHash)
			registered = append(registered, sw)
		}
	}
	trackers := append([]*trackerClient(nil), s.trackers...)
	s.mu.Unlock()
	// Only the swarms registered as these: a swarm of the same info_hash
	// that another stream registered first (the same presentation under
	// another URL) stays, and a "stopped" for it would take the seeder
	// out of it.
	for _, t := range trackers {
		for _, sw := range registered {
			t.leave(sw)
		}
	}
	for _, sw := range sws {
		sw.close()
	}
}

// swarm returns the registered swarm of infoHash.
func (s *Seeder) swarm(infoHash p2p.InfoHash) *swarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swarms[infoHash]
}

// allSwarms returns the registered swarms.
func (s *Seeder) allSwarms() []*swarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*swarm, 0, len(s.swarms))
	for _, sw := range s.swarms {
		out = append(out, sw)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].infoHash < out[j].infoHash })
	return out
}

// reservePC counts a new PeerConnection against MaxPeers.
func (s *Seeder) reservePC() bool {
	if s.pcs.Add(1) > int64(s.cfg.MaxPeers) {
		s.pcs.Add(-1)
		s.counters.peersRefused.Add(1)
		return false
	}
	return true
}

func (s *Seeder) releasePC() { s.pcs.Add(-1) }

// newPeerConnection makes a PeerConnection with the seeder's settings.
func (s *Seeder) newPeerConnection() (*webrtc.PeerConnection, error) {
	return s.cfg.API.NewPeerConnection(webrtc.Configuration{ICEServers: s.cfg.ICEServers})
}
