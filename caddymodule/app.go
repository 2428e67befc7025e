package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func init() {
	caddy.RegisterModule(&App{})
	httpcaddyfile.RegisterGlobalOption("p2p", parseAppCaddyfile)
}

// DefaultWebRTCListen is the UDP address of the seeder's WebRTC traffic.
const DefaultWebRTCListen = ":50000"

// App is the "p2p" app: the origin's seeding peer. It joins the swarms of
// the configured streams (and of streams added at run time) through
// WebTorrent trackers and serves segments to P2P Media Loader browsers over
// WebRTC data channels.
type App struct {
	// Trackers are the WebTorrent tracker URLs the seeder announces to:
	// ws:// or wss:// URLs, or "local" (or "local:<name>") to attach
	// in-process to this server's p2p_tracker (of that name), with no
	// socket and no URL that must be reachable from the server itself.
	Trackers []string `json:"trackers,omitempty"`
	// Streams are the manifests to seed, by the URL players load them
	// from (the swarm ids derive from it), with an optional swarm id.
	Streams []seeder.StreamConfig `json:"streams,omitempty"`
	// Clients are the player integrations whose swarms to join: "hlsjs"
	// (P2P Media Loader 2.3) and "shaka" (2.2). Default: both.
	Clients []string `json:"clients,omitempty"`
	// SourceRaw is the p2p.sources module the seeder reads manifests and
	// segments from. Default: http (fetch by URL).
	SourceRaw json.RawMessage `json:"source,omitempty" caddy:"namespace=p2p.sources inline_key=source"`

	// WebRTCListen is the single UDP address of all ICE traffic.
	// Default: ":50000".
	WebRTCListen string `json:"webrtc_listen,omitempty"`
	// ICETCPListen, if set, adds passive ICE-TCP candidates on this TCP
	// address for browsers that cannot use UDP.
	ICETCPListen string `json:"ice_tcp_listen,omitempty"`
	// SocketBuffer is the UDP socket's read and write buffer, in bytes.
	// Default: 4 MiB. A reload sets a changed size on the open socket.
	SocketBuffer int `json:"socket_buffer,omitempty"`
	// PublicIPs are the addresses browsers reach this server at, when it
	// is behind a 1:1 NAT; they replace the host candidates' addresses.
	PublicIPs []string `json:"public_ips,omitempty"`
	// STUNServers give server-reflexive candidates, e.g.
	// "stun:stun.l.google.com:19302". Default: none.
	STUNServers []string `json:"stun_servers,omitempty"`
	// Interfaces limits the network interfaces candidates are gathered
	// on. Default: all.
	Interfaces []string `json:"interfaces,omitempty"`
	// IncludeLoopback offers 127.0.0.1 candidates (tests on one machine).
	IncludeLoopback bool `json:"include_loopback,omitempty"`
	// DisconnectedTimeout and FailedTimeout are the ICE timeouts.
	// Defaults: 3s and 6s.
	DisconnectedTimeout caddy.Duration `json:"disconnected_timeout,omitempty"`
	FailedTimeout       caddy.Duration `json:"failed_timeout,omitempty"`

	// CacheSize caps the segment cache, in bytes. Default (and 0):
	// 256 MiB.
	CacheSize int64 `json:"cache_size,omitempty"`
	// MaxPeers caps peer connections. Default (and 0): 1000.
	MaxPeers int `json:"max_peers,omitempty"`
	// OffersPerAnnounce is how many offers the seeder sends per announce
	// when a swarm has browsers it is not connected to. Default (and 0):
	// 3; -1 (0 in the Caddyfile) makes the seeder only answer browsers'
	// offers.
	OffersPerAnnounce int `json:"offers_per_announce,omitempty"`
	// UploadRate caps the seeder's upload in bytes per second. Default
	// (and 0): unlimited.
	UploadRate int64 `json:"upload_rate,omitempty"`
	// MaxUploads caps concurrent uploads; a request over it is answered
	// "absent" so the browser uses HTTP or another peer. Default (and 0):
	// unlimited.
	MaxUploads int `json:"max_uploads,omitempty"`
	// RareOnly announces only segments fewer than RareThreshold of the
	// seeder's peers hold, so browsers share the common ones and the
	// seeder fills gaps.
	RareOnly bool `json:"rare_only,omitempty"`
	// RareThreshold is the holder count from which a segment is common.
	// Default (and 0): 2.
	RareThreshold int `json:"rare_threshold,omitempty"`

	ctx     caddy.Context
	log     *zap.Logger
	offload *offload
	uploads *uploadTotals
	source  SegmentSource
	// defaultSource: source is the app's own, not a loaded module.
	defaultSource bool
	clients       []manifest.Client

	gens *generations // shared with the apps of other configs

	mu        sync.Mutex
	seeder    *seeder.Seeder
	seeded    map[string]bool  // the runtime streams the seeder has
	trackers  []*streamTracker // of the p2p_manifest handlers
	janitor   chan struct{}    // closed by Stop
	janitorWG sync.WaitGroup
	udpKey    string
	udpSocket *pooledUDPSocket
	tcpKey    string
	startedAt time.Time
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "p2p", New: func() caddy.Module { return new(App) }}
}

// Provision loads the source module and checks the configuration. It
// opens no socket and starts no goroutine: that happens in Start, so that
// `caddy validate` and `caddy adapt` stay side-effect free.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.log = ctx.Logger()
	gens, err := sharedGenerations()
	if err != nil {
		return fmt.Errorf("p2p app: %w", err)
	}
	a.gens = gens
	a.offload = newOffload()
	a.uploads = newUploadTotals()
	if a.SourceRaw != nil {
		mod, err := ctx.LoadModule(a, "SourceRaw")
		if err != nil {
			return fmt.Errorf("loading segment source: %w", err)
		}
		a.source = mod.(SegmentSource)
	} else {
		src := new(HTTPSegmentSource)
		if err := src.Provision(ctx); err != nil {
			return err
		}
		a.source = src
		a.defaultSource = true
	}
	for _, c := range a.Clients {
		switch strings.ToLower(c) {
		case "hlsjs", "hls.js":
			a.clients = append(a.clients, manifest.HLSJS)
		case "shaka":
			a.clients = append(a.clients, manifest.Shaka)
		default:
			return fmt.Errorf("unknown client %q (want hlsjs or shaka)", c)
		}
	}
	if err := a.checkLimits(); err != nil {
		return err
	}
	for _, s := range a.Streams {
		if s.URL == "" {
			return fmt.Errorf("stream with an empty URL")
		}
	}
	for _, u := range a.Trackers {
		if _, ok := localTrackerName(u); ok {
			continue
		}
		if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			return fmt.Errorf("tracker %q: want a ws:// or wss:// URL, or local[:<name>]", u)
		}
	}
	for _, ip := range a.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("public IP %q is not an IP address", ip)
		}
	}
	registerSeederMetrics(ctx, a)
	return nil
}

// checkLimits refuses negative values the JSON fields give no meaning to
// (the Caddyfile parser already does).
func (a *App) checkLimits() error {
	for _, l := range []struct {
		name  string
		n     int64
		least int64
	}{
		{"socket_buffer", int64(a.SocketBuffer), 0}, {"cache_size", a.CacheSize, 0},
		{"max_peers", int64(a.MaxPeers), 0}, {"offers_per_announce", int64(a.OffersPerAnnounce), -1},
		{"upload_rate", a.UploadRate, 0}, {"max_uploads", int64(a.MaxUploads), 0},
		{"rare_threshold", int64(a.RareThreshold), 0},
	} {
		if l.n < l.least {
			return fmt.Errorf("%s: %d is below %d", l.name, l.n, l.least)
		}
	}
	return nil
}

// Start opens (or adopts) the WebRTC sockets, creates the seeder and adds
// the configured streams.
func (a *App) Start() error {
	listen := a.WebRTCListen
	if listen == "" {
		listen = DefaultWebRTCListen
	}
	buf := a.SocketBuffer
	if buf <= 0 {
		buf = DefaultSocketBuffer
	}
	udpKey, udpBind, err := listenKey("udp", listen)
	if err != nil {
		return fmt.Errorf("p2p app: webrtc_listen: %w", err)
	}
	val, _, err := udpMuxes.LoadOrNew(udpKey, func() (caddy.Destructor, error) {
		sock, err := listenUDPSocket(udpBind, buf)
		if err != nil {
			return nil, err
		}
		a.log.Info("webrtc udp socket open", zap.Stringer("addr", sock.conn.LocalAddr()))
		return sock, nil
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		// The running config's socket is shared only under the same
		// address; 127.0.0.1:50000 and :50000 overlap but differ.
		return fmt.Errorf("p2p app: webrtc_listen: %w (held by another program, or by the running config under an overlapping address: change the port, or restart instead of reloading)", err)
	}
	if err != nil {
		return fmt.Errorf("p2p app: webrtc_listen: %w", err)
	}
	a.udpKey = udpKey
	a.udpSocket = val.(*pooledUDPSocket)
	a.udpSocket.hold(a, buf)
	wcfg := seeder.WebRTCConfig{
		UDPMux:              a.udpSocket.UDPMux,
		PublicIPs:           a.PublicIPs,
		DisconnectedTimeout: time.Duration(a.DisconnectedTimeout),
		FailedTimeout:       time.Duration(a.FailedTimeout),
		IncludeLoopback:     a.IncludeLoopback,
	}
	if a.ICETCPListen != "" {
		tcpKey, tcpBind, err := listenKey("tcp", a.ICETCPListen)
		if err != nil {
			a.releaseSockets()
			return fmt.Errorf("p2p app: ice_tcp_listen: %w", err)
		}
		tv, _, err := tcpMuxes.LoadOrNew(tcpKey, func() (caddy.Destructor, error) {
			mux, _, err := seeder.ListenTCPMux(tcpBind, nil)
			if err != nil {
				return nil, err
			}
			return pooledTCPMux{mux}, nil
		})
		if err != nil {
			a.releaseSockets()
			return fmt.Errorf("p2p app: ice_tcp_listen: %w", err)
		}
		a.tcpKey = tcpKey
		wcfg.TCPMux = tv.(pooledTCPMux).TCPMux
	}
	if len(a.Interfaces) > 0 {
		allowed := make(map[string]bool, len(a.Interfaces))
		for _, n := range a.Interfaces {
			allowed[n] = true
		}
		wcfg.InterfaceFilter = func(n string) bool { return allowed[n] }
	}
	for _, u := range a.STUNServers {
		wcfg.ICEServers = append(wcfg.ICEServers, webrtc.ICEServer{URLs: []string{u}})
	}
	api, err := seeder.NewAPI(wcfg)
	if err != nil {
		a.releaseSockets()
		return fmt.Errorf("p2p app: %w", err)
	}
	dialers := map[string]seeder.TrackerDialer{}
	for _, u := range a.Trackers {
		if name, ok := localTrackerName(u); ok {
			dialers[u] = localTrackerDialer(name)
		}
	}
	s, err := seeder.New(seeder.Config{
		TrackerDialers:    dialers,
		API:               api,
		ICEServers:        wcfg.ICEServers,
		Source:            a.source,
		Trackers:          a.Trackers,
		Clients:           a.clients,
		CacheBytes:        a.CacheSize,
		MaxPeers:          a.MaxPeers,
		OffersPerAnnounce: a.OffersPerAnnounce,
		Upload:            p2p.UploadOptions{Budget: p2p.NewUploadBudget(a.MaxUploads, float64(a.UploadRate))},
		RareOnly:          a.RareOnly,
		RareThreshold:     a.RareThreshold,
		Logger:            a.log,
	})
	if err != nil {
		a.releaseSockets()
		return fmt.Errorf("p2p app: %w", err)
	}
	for _, sc := range a.Streams {
		if _, err := s.AddStream(sc); err != nil {
			s.Close()
			a.releaseSockets()
			return fmt.Errorf("p2p app: %w", err)
		}
	}
	a.mu.Lock()
	a.seeder = s
	a.seeded = map[string]bool{}
	a.startedAt = time.Now()
	a.janitor = make(chan struct{})
	a.mu.Unlock()
	// The streams an older config's app added at run time.
	a.syncRuntimeStreams()
	a.janitorWG.Add(1)
	go a.sweepStreams(a.janitor)
	a.gens.appStarted(a)
	a.log.Info("seeder started", zap.String("peer_id", s.PeerID()), zap.Strings("trackers", a.Trackers), zap.Int("streams", len(a.Streams)))
	return nil
}

// localTrackerName recognises "local" and "local:<name>" tracker entries.
func localTrackerName(u string) (string, bool) {
	if u == "local" {
		return "default", true
	}
	if name, ok := strings.CutPrefix(u, "local:"); ok && name != "" {
		return name, true
	}
	return "", false
}

// localTrackerDialer attaches to the p2p_tracker engine of that name when
// the seeder connects, so a tracker provisioned later is still found.
func localTrackerDialer(name string) seeder.TrackerDialer {
	return func(ctx context.Context) (seeder.TrackerConn, error) {
		eng := engineNamed(name)
		if eng == nil {
			return nil, fmt.Errorf("no p2p_tracker named %q runs in this process", name)
		}
		return seeder.LocalTracker(eng.Tracker)(ctx)
	}
}

// Stop closes every peer connection and tracker connection of the seeder.
// The UDP socket stays open while a newer config still uses it.
func (a *App) Stop() error {
	a.gens.appStopped(a)
	a.mu.Lock()
	s := a.seeder
	a.seeder = nil
	if a.janitor != nil {
		close(a.janitor)
		a.janitor = nil
	}
	a.mu.Unlock()
	a.janitorWG.Wait()
	if s != nil {
		s.Close()
	}
	a.releaseSockets()
	return nil
}

func (a *App) releaseSockets() {
	if a.udpKey != "" {
		a.udpSocket.release(a)
		_, _ = udpMuxes.Delete(a.udpKey)
		a.udpKey, a.udpSocket = "", nil
	}
	if a.tcpKey != "" {
		_, _ = tcpMuxes.Delete(a.tcpKey)
		a.tcpKey = ""
	}
}

// Cleanup gives back the app's reference to what the apps of successive
// configs share, and cleans up the default segment source (Caddy cleans
// up the modules it loaded).
func (a *App) Cleanup() error {
	// Not a source from SourceRaw (which LoadModule empties): Caddy
	// cleans that one up itself.
	if c, ok := a.source.(caddy.CleanerUpper); ok && a.defaultSource {
		_ = c.Cleanup()
	}
	if a.gens == nil {
		return nil
	}
	if _, err := appGenerations.Delete(appGenerationsKey); err != nil {
		return fmt.Errorf("p2p app: %w", err)
	}
	return nil
}

// streamTracker returns a p2p_manifest handler's view of the runtime
// streams, whose discovered streams it drops after idle unrequested.
func (a *App) streamTracker(idle time.Duration) *streamTracker {
	t := &streamTracker{app: a, idle: idle, rs: a.gens.streams}
	a.mu.Lock()
	a.trackers = append(a.trackers, t)
	a.mu.Unlock()
	return t
}

// sweepStreams drops discovered streams nobody asked for lately, until
// done is closed.
func (a *App) sweepStreams(done chan struct{}) {
	defer a.janitorWG.Done()
	// Sweep at a quarter of the shortest idle timeout (at most every
	// 15 s), so a stream goes at most a quarter late.
	every := 15 * time.Second
	a.mu.Lock()
	for _, t := range a.trackers {
		every = min(every, max(t.idle/4, 100*time.Millisecond))
	}
	a.mu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			// The upload counts of the streams the sweep drops are
			// kept for the metrics.
			a.observeUploads()
			a.gens.streams.sweep(now)
			a.syncRuntimeStreams()
			if s := a.Seeder(); s != nil {
				keep := map[string]bool{}
				for _, u := range s.Streams() {
					keep[u] = true
				}
				a.offload.forget(keep)
			}
		}
	}
}

// Offload returns, per seeded stream, viewers, the origin's HTTP and
// seeder bytes and what players report.
func (a *App) Offload() []StreamOffload {
	var st *seeder.Stats
	if s := a.Seeder(); s != nil {
		v := s.Stats()
		st = &v
	}
	return a.offload.snapshot(st, time.Now())
}

// Seeder returns the running seeder, or nil before Start and after Stop.
func (a *App) Seeder() *seeder.Seeder {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seeder
}

// AddStream starts seeding a manifest, by the URL players load it from.
// The manifest handler calls it for every manifest it serves. It reports
// whether the stream is new.
//
// A stream added here outlives reloads (the next config's app seeds it
// too) until RemoveStream.
func (a *App) AddStream(sc seeder.StreamConfig) (bool, error) {
	s := a.Seeder()
	if s == nil {
		return false, fmt.Errorf("p2p app not running")
	}
	added, err := s.AddStream(sc)
	if added {
		a.gens.streams.addManual(sc)
		a.markSeeded(s, sc.URL)
	} else if err == nil && a.gens.streams.isDiscovered(sc.URL) {
		// Seeded already, as discovered: it now stays until deleted.
		a.gens.streams.addManual(sc)
	}
	return added, err
}

// RemoveStream stops seeding a manifest, and forgets it if it was added at
// run time, so that p2p_manifest may discover it again.
func (a *App) RemoveStream(url string) bool {
	a.gens.streams.forget(url)
	s := a.Seeder()
	if s == nil {
		return false
	}
	a.mu.Lock()
	delete(a.seeded, url)
	a.mu.Unlock()
	// Keep the stream's upload counts for the metrics.
	a.observeUploads()
	return s.RemoveStream(url)
}

// seeds reports whether the seeder s is the app's and has the runtime
// stream at url.
func (a *App) seeds(s *seeder.Seeder, url string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seeder == s && a.seeded[url]
}

// markSeeded records that the seeder s, if it is still the app's, has the
// runtime stream at url.
func (a *App) markSeeded(s *seeder.Seeder, url string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seeder == s {
		a.seeded[url] = true
	}
}

// syncRuntimeStreams makes the seeder seed exactly the runtime streams
// (besides the configured ones): those another config's app or handler
// added are added, those dropped or deleted are removed.
func (a *App) syncRuntimeStreams() {
	s := a.Seeder()
	if s == nil {
		return
	}
	want := map[string]bool{}
	for _, sc := range a.gens.streams.configs() {
		want[sc.URL] = true
		a.mu.Lock()
		have := a.seeded[sc.URL]
		a.mu.Unlock()
		if have || s.HasStream(sc.URL) {
			// Ours, or configured in this app.
			continue
		}
		if added, err := s.AddStream(sc); err != nil {
			a.log.Warn("adding a stream added at run time", zap.String("url", sc.URL), zap.Error(err))
		} else if added {
			a.markSeeded(s, sc.URL)
		}
	}
	var drop []string
	a.mu.Lock()
	for u := range a.seeded {
		if !want[u] {
			drop = append(drop, u)
			delete(a.seeded, u)
		}
	}
	a.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	a.observeUploads()
	for _, u := range drop {
		s.RemoveStream(u)
	}
}

// observeUploads takes the seeder's per-swarm upload counts into the
// running totals the metrics export.
func (a *App) observeUploads() {
	if s := a.Seeder(); s != nil {
		st := s.Stats()
		a.uploads.observe(&st)
	}
}

// parseAppCaddyfile parses the global option:
//
//	p2p {
//	    tracker <url>...
//	    stream <manifest-url> [<swarm-id>]
//	    clients hlsjs|shaka...
//	    source <module> ...
//	    webrtc_listen <udp-addr>
//	    ice_tcp_listen <tcp-addr>
//	    socket_buffer <size>                 # 1 byte to 1 GiB
//	    public_ip <ip>...
//	    stun <url>...
//	    interfaces <name>...
//	    include_loopback
//	    ice_timeouts <disconnected> <failed>
//	    cache_size <size>                    # not 0
//	    max_peers <n>                        # at least 1
//	    offers_per_announce <n>              # 0 (or -1): answer only
//	    upload_rate <size-per-second>        # 0 = unlimited
//	    max_uploads <n>                      # 0 = unlimited
//	    rare_only [<threshold>]              # threshold at least 1
//	}
//
// Repeated p2p blocks are merged.
func parseAppCaddyfile(d *caddyfile.Dispenser, existing any) (any, error) {
	a := new(App)
	if prev, ok := existing.(httpcaddyfile.App); ok {
		if err := json.Unmarshal(prev.Value, a); err != nil {
			return nil, err
		}
	}
	if err := a.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "p2p", Value: caddyconfig.JSON(a, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option's tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "p2p"
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tracker", "trackers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Trackers = append(a.Trackers, args...)
		case "stream":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			sc := seeder.StreamConfig{URL: args[0]}
			if len(args) == 2 {
				sc.SwarmID = args[1]
			}
			a.Streams = append(a.Streams, sc)
		case "clients":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Clients = append(a.Clients, args...)
		case "source":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "p2p.sources."+name)
			if err != nil {
				return err
			}
			a.SourceRaw = caddyconfig.JSONModuleObject(mod, "source", name, nil)
		case "webrtc_listen":
			if !d.AllArgs(&a.WebRTCListen) {
				return d.ArgErr()
			}
		case "ice_tcp_listen":
			if !d.AllArgs(&a.ICETCPListen) {
				return d.ArgErr()
			}
		case "socket_buffer":
			n, err := parseSizeArg(d, 1, 1<<30)
			if err != nil {
				return err
			}
			a.SocketBuffer = int(n)
		case "public_ip", "public_ips":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.PublicIPs = append(a.PublicIPs, args...)
		case "stun":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.STUNServers = append(a.STUNServers, args...)
		case "interfaces":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.Interfaces = append(a.Interfaces, args...)
		case "include_loopback":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.IncludeLoopback = true
		case "ice_timeouts":
			var disc, failed string
			if !d.AllArgs(&disc, &failed) {
				return d.ArgErr()
			}
			dd, err := caddy.ParseDuration(disc)
			if err != nil {
				return d.Errf("ice_timeouts: %v", err)
			}
			fd, err := caddy.ParseDuration(failed)
			if err != nil {
				return d.Errf("ice_timeouts: %v", err)
			}
			a.DisconnectedTimeout, a.FailedTimeout = caddy.Duration(dd), caddy.Duration(fd)
		case "cache_size":
			n, err := parseSizeArg(d, 1, math.MaxInt64)
			if err != nil {
				return err
			}
			a.CacheSize = n
		case "upload_rate":
			n, err := parseSizeArg(d, 0, math.MaxInt64) // 0 = unlimited
			if err != nil {
				return err
			}
			a.UploadRate = n
		case "max_peers":
			n, err := parseIntArg(d, 1)
			if err != nil {
				return err
			}
			a.MaxPeers = n
		case "offers_per_announce":
			// 0 and -1 both mean no offers of the seeder's own; the JSON
			// field spells that -1, its 0 being the default.
			n, err := parseIntArg(d, -1)
			if err != nil {
				return err
			}
			a.OffersPerAnnounce = n
			if n == 0 {
				a.OffersPerAnnounce = -1
			}
		case "max_uploads":
			n, err := parseIntArg(d, 0) // 0 = unlimited
			if err != nil {
				return err
			}
			a.MaxUploads = n
		case "rare_only":
			a.RareOnly = true
			if d.NextArg() {
				d.Prev()
				n, err := parseIntArg(d, 1)
				if err != nil {
					return err
				}
				a.RareThreshold = n
			}
		default:
			return d.Errf("unknown p2p option %q", d.Val())
		}
	}
	return nil
}

// parseIntArg reads the current option's one argument, a whole number of
// at least least. Anything after the digits ("10k") makes it an error
// rather than being dropped.
func parseIntArg(d *caddyfile.Dispenser, least int) (int, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	val := d.Val()
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < least {
		return 0, d.Errf("%s: %q is not a whole number of at least %d", opt, val, least)
	}
	return n, nil
}

// parseSizeArg reads the current option's one argument, a size such as
// 4MiB between least and most bytes.
func parseSizeArg(d *caddyfile.Dispenser, least, most int64) (int64, error) {
	opt := d.Val()
	n, err := parseSize(d)
	if err != nil {
		return 0, err
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	if n < least || n > most {
		return 0, d.Errf("%s: %s is not between %s and %s", opt, d.Val(), humanize.IBytes(uint64(least)), humanize.IBytes(uint64(most)))
	}
	return n, nil
}

// Interface guards.
var (
	_ caddy.App             = (*App)(nil)
	_ caddy.Provisioner     = (*App)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
