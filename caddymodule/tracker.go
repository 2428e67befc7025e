package caddymodule

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
	"github.com/caddy-p2p/caddy-p2p/tracker"
)

func init() {
	caddy.RegisterModule(&TrackerHandler{})
	httpcaddyfile.RegisterHandlerDirective("p2p_tracker", parseTrackerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("p2p_tracker", httpcaddyfile.Before, "respond")
}

// trackers holds the tracker engines by name across config reloads, so that
// swarms and open sockets survive a reload: the new handler adopts the
// running engine, and the engine closes its sockets only when the last
// config that uses the name is unloaded.
var trackers = caddy.NewUsagePool()

// trackerEngine is the pooled value: a running tracker and the handlers,
// of every loaded config, that serve it.
//
// Each handler has a tracker.Policy of its own (its limits and
// authorizer), and the sockets it accepts follow that policy, so handlers
// sharing a name never change each other's settings, and a config that is
// provisioned but never runs (a reload that fails later) changes nothing
// the running one uses. The sockets of an unloaded config's handler are
// handed to its successor when it is cleaned up (see handOver), which
// Caddy does only once the next config is running.
type trackerEngine struct {
	*tracker.Tracker

	mu       sync.Mutex
	handlers map[*TrackerHandler]struct{}
}

// Destruct closes the tracker's sockets and ends its goroutines.
func (e *trackerEngine) Destruct() error { return e.Close() }

// engineNamed returns the running tracker engine of that name, or nil.
func engineNamed(name string) *trackerEngine {
	var eng *trackerEngine
	trackers.Range(func(k, v any) bool {
		if k.(string) == name {
			eng = v.(*trackerEngine)
			return false
		}
		return true
	})
	return eng
}

func (e *trackerEngine) add(h *TrackerHandler) {
	e.mu.Lock()
	e.handlers[h] = struct{}{}
	e.mu.Unlock()
}

// handOver forgets h, whose config is being unloaded, and gives the
// sockets that follow its policy (and the in-process seeder, if it follows
// it too) to the handler that takes h's place in the running config: one
// with the same settings, else the only one of this name. When several
// handlers of the running config share the name with other settings, the
// right one cannot be told, so the sockets are closed with 1001 and their
// clients reconnect through their own route. Without a running handler
// the sockets stay: the engine closes them when its last config goes.
func (e *trackerEngine) handOver(h *TrackerHandler) {
	e.mu.Lock()
	delete(e.handlers, h)
	var same, other, first *TrackerHandler
	others := map[string]bool{}
	for o := range e.handlers {
		if !o.running() {
			continue // of h's own config, or of one that failed
		}
		if first == nil || o.settings < first.settings {
			first = o
		}
		if o.settings == h.settings {
			same = o
			break
		}
		other = o
		others[o.settings] = true
	}
	e.mu.Unlock()
	switch {
	case same != nil:
		e.MoveSockets(h.policy, same.policy)
	case len(others) == 1:
		if n := e.MoveSockets(h.policy, other.policy); n > 0 {
			h.logger.Info("tracker sockets now follow the new settings", zap.String("tracker", h.Name), zap.Int("sockets", n))
		}
	case len(others) > 1:
		if n := e.CloseSockets(h.policy, "tracker settings changed"); n > 0 {
			h.logger.Info("closed tracker sockets whose route changed settings; clients reconnect",
				zap.String("tracker", h.Name), zap.Int("sockets", n))
		}
		// The in-process seeder follows the default policy: if it
		// was h's, it takes one running handler's, the same one
		// whatever the order of the handlers.
		e.ReplaceDefaultPolicy(h.policy, first.policy)
	}
}

// TrackerHandler is a WebTorrent tracker endpoint (WebSocket signalling for
// P2P Media Loader and bittorrent-tracker clients). Requests that are not
// WebSocket upgrades get 426 Upgrade Required; it never calls the next
// handler. In the JSON form a zero count means the default, and negative
// counts are refused except where documented.
type TrackerHandler struct {
	// Name identifies the swarm space. Handlers with the same name share
	// swarms (several routes or sites may serve one tracker), each with
	// its own limits and authorizer for the sockets it accepts; the state
	// survives config reloads under this name. Default: "default".
	Name string `json:"name,omitempty"`
	// Interval is the re-announce interval sent to clients. Default: 2m.
	Interval caddy.Duration `json:"interval,omitempty"`
	// PeerTimeout drops peers that have not re-announced for this long.
	// Default: twice the interval plus 30s.
	PeerTimeout caddy.Duration `json:"peer_timeout,omitempty"`
	// MaxMessageSize caps one incoming message, in bytes. Default: 64 KiB.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// MaxOffers caps the offers relayed per announce. Default: 10.
	MaxOffers int `json:"max_offers,omitempty"`
	// MaxNumwant caps numwant. Default: 50.
	MaxNumwant int `json:"max_numwant,omitempty"`
	// MaxSwarmsPerConn caps the swarms one socket may join. Default: 64.
	MaxSwarmsPerConn int `json:"max_swarms_per_conn,omitempty"`
	// MaxConnsPerIP caps sockets per client IP (Caddy's client_ip, which
	// honours trusted_proxies). Default: 64; a negative value is unlimited.
	MaxConnsPerIP int `json:"max_conns_per_ip,omitempty"`
	// MessagesPerSecond is the sustained message rate per socket.
	// Default: 20; a negative value is unlimited.
	MessagesPerSecond float64 `json:"messages_per_second,omitempty"`
	// MessageBurst is the rate limiter's bucket size. Default: 60.
	MessageBurst int `json:"message_burst,omitempty"`
	// WriteQueue caps messages queued for one socket; a socket that falls
	// further behind is closed. Default: 128.
	WriteQueue int `json:"write_queue,omitempty"`
	// WriteTimeout bounds one socket write. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// PingInterval is how often sockets are pinged. Default: 30s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`
	// ReadTimeout closes sockets silent for this long. Default: 75s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// AllowedOrigins lists accepted Origin header values; empty allows all.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// SeederFirst is the peer id prefix of the origin's seeding peer
	// (the p2p app's is "-CP0001-"): the first offer of each browser new
	// to a swarm goes to it, so every viewer connects to the seeder at
	// once. Empty (the default) relays all offers at random.
	SeederFirst string `json:"seeder_first,omitempty"`
	// AuthorizerRaw is an optional module in the p2p.tracker.authorizers
	// namespace that decides which swarms may be used.
	AuthorizerRaw json.RawMessage `json:"authorizer,omitempty" caddy:"namespace=p2p.tracker.authorizers inline_key=authorizer"`

	engine *trackerEngine
	policy *tracker.Policy
	// settings is the handler's JSON, which tells a reload's matching
	// handler; done is closed when the handler's config is unloaded.
	settings string
	done     <-chan struct{}
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*TrackerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.p2p_tracker",
		New: func() caddy.Module { return new(TrackerHandler) },
	}
}

func (h *TrackerHandler) trackerConfig() tracker.Config {
	return tracker.Config{
		AnnounceInterval:  time.Duration(h.Interval),
		PeerTimeout:       time.Duration(h.PeerTimeout),
		MaxMessageSize:    h.MaxMessageSize,
		MaxOffers:         h.MaxOffers,
		MaxNumwant:        h.MaxNumwant,
		MaxSwarmsPerConn:  h.MaxSwarmsPerConn,
		MaxConnsPerIP:     h.MaxConnsPerIP,
		MessagesPerSecond: h.MessagesPerSecond,
		MessageBurst:      h.MessageBurst,
		WriteQueue:        h.WriteQueue,
		WriteTimeout:      time.Duration(h.WriteTimeout),
		PingInterval:      time.Duration(h.PingInterval),
		ReadTimeout:       time.Duration(h.ReadTimeout),
		AllowedOrigins:    h.AllowedOrigins,
		SeederFirst:       h.SeederFirst,
	}
}

// Provision builds the handler's policy and adopts the running tracker of
// this name or starts one. It changes nothing a running config uses: the
// handler's settings apply to the sockets it accepts, and to the running
// config's sockets only once this config replaces it (see handOver).
func (h *TrackerHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Name == "" {
		h.Name = "default"
	}
	if err := h.checkLimits(); err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	cfg := h.trackerConfig()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	// Before LoadModule, which empties AuthorizerRaw.
	settings, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	h.settings = string(settings)
	var auth tracker.Authorizer
	if h.AuthorizerRaw != nil {
		mod, err := ctx.LoadModule(h, "AuthorizerRaw")
		if err != nil {
			return fmt.Errorf("p2p_tracker %q: loading authorizer: %w", h.Name, err)
		}
		a, ok := mod.(tracker.Authorizer)
		if !ok {
			return fmt.Errorf("p2p_tracker %q: module %T is not a tracker authorizer", h.Name, mod)
		}
		auth = a
	}
	policy, err := tracker.NewPolicy(cfg, auth)
	if err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	slog := ctx.Slogger()
	val, loaded, err := trackers.LoadOrNew(h.Name, func() (caddy.Destructor, error) {
		t, err := tracker.New(cfg,
			tracker.WithLogger(slog),
			tracker.WithClientIP(clientIP))
		if err != nil {
			return nil, err
		}
		return &trackerEngine{Tracker: t, handlers: map[*TrackerHandler]struct{}{}}, nil
	})
	if err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	h.engine = val.(*trackerEngine)
	h.policy = policy
	h.done = ctx.Done()
	if !loaded {
		// A new engine serves no running config, so the in-process
		// seeder (which follows the default policy) may take this
		// handler's limits at once.
		h.engine.MoveSockets(h.engine.Policy(), policy)
	}
	h.engine.add(h)
	registerTrackerMetrics(ctx)
	return nil
}

// checkLimits refuses negative limits where the JSON fields give no meaning
// to them (the Caddyfile parser already does).
func (h *TrackerHandler) checkLimits() error {
	for _, l := range []struct {
		name string
		n    int64
	}{
		{"max_message_size", h.MaxMessageSize}, {"max_offers", int64(h.MaxOffers)},
		{"max_numwant", int64(h.MaxNumwant)}, {"max_swarms_per_conn", int64(h.MaxSwarmsPerConn)},
		{"message_burst", int64(h.MessageBurst)}, {"write_queue", int64(h.WriteQueue)},
	} {
		if l.n < 0 {
			return fmt.Errorf("%s: %d is negative (0 means the default)", l.name, l.n)
		}
	}
	return nil
}

// running reports whether the handler's config is still loaded.
func (h *TrackerHandler) running() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// clientIP returns Caddy's idea of the client address, which honours the
// server's trusted_proxies setting.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}

// ServeHTTP upgrades to the tracker WebSocket, which follows this
// handler's limits and authorizer.
func (h *TrackerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.engine.ServePolicy(w, r, h.policy)
	return nil
}

// Cleanup hands this handler's sockets to its successor in the running
// config, if there is one, and releases this config's hold on the
// tracker; the last holder's release closes it.
func (h *TrackerHandler) Cleanup() error {
	if h.engine == nil {
		return nil
	}
	h.engine.handOver(h)
	if _, err := trackers.Delete(h.Name); err != nil {
		return fmt.Errorf("p2p_tracker %q: releasing the tracker: %w", h.Name, err)
	}
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	p2p_tracker [<matcher>] {
//	    name                 <name>
//	    interval             <duration>
//	    peer_timeout         <duration>
//	    max_message_size     <size>
//	    max_offers           <n>     # at least 1
//	    max_numwant          <n>     # at least 1
//	    max_swarms_per_conn  <n>     # at least 1
//	    max_conns_per_ip     <n>     # 0 = unlimited
//	    max_messages_per_second <rate> [<burst>]  # 0 = unlimited; burst at least 1
//	    write_queue          <n>     # at least 1
//	    write_timeout        <duration>
//	    ping_interval        <duration>
//	    read_timeout         <duration>
//	    allowed_origins      <origin...>
//	    seeder_first         [<peer-id-prefix>]  # default -CP0001-, the p2p app's
//	    authorizer           <module> ...
//	}
func (h *TrackerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "name":
			if !d.AllArgs(&h.Name) {
				return d.ArgErr()
			}
		case "interval", "peer_timeout", "write_timeout", "ping_interval", "read_timeout":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			*map[string]*caddy.Duration{
				"interval": &h.Interval, "peer_timeout": &h.PeerTimeout, "write_timeout": &h.WriteTimeout,
				"ping_interval": &h.PingInterval, "read_timeout": &h.ReadTimeout,
			}[opt] = caddy.Duration(dur)
		case "max_message_size":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > 1<<30 {
				return d.Errf("max_message_size: invalid size %q", s)
			}
			h.MaxMessageSize = int64(n)
		case "max_offers", "max_numwant", "max_swarms_per_conn", "max_conns_per_ip", "write_queue":
			// Only max_conns_per_ip gives 0 a meaning (unlimited); for
			// the others 0 would silently mean the default.
			least := 1
			if opt == "max_conns_per_ip" {
				least = 0
			}
			n, err := parseIntArg(d, least)
			if err != nil {
				return err
			}
			switch opt {
			case "max_offers":
				h.MaxOffers = n
			case "max_numwant":
				h.MaxNumwant = n
			case "max_swarms_per_conn":
				h.MaxSwarmsPerConn = n
			case "max_conns_per_ip":
				h.MaxConnsPerIP = unlimitedIfZero(n)
			case "write_queue":
				h.WriteQueue = n
			}
		case "max_messages_per_second":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			rate, err := strconv.ParseFloat(args[0], 64)
			if err != nil || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
				return d.Errf("max_messages_per_second: rate %q is not a number of at least 0 (0 = unlimited)", args[0])
			}
			h.MessagesPerSecond = rate
			if rate == 0 {
				h.MessagesPerSecond = -1
			}
			if len(args) == 2 {
				burst, err := strconv.Atoi(args[1])
				if err != nil || burst < 1 {
					return d.Errf("max_messages_per_second: burst %q is not a whole number of at least 1", args[1])
				}
				h.MessageBurst = burst
			}
		case "allowed_origins":
			origins := d.RemainingArgs()
			if len(origins) == 0 {
				return d.ArgErr()
			}
			h.AllowedOrigins = append(h.AllowedOrigins, origins...)
		case "seeder_first":
			// Without an argument: the p2p app's own prefix.
			h.SeederFirst = seeder.DefaultPeerIDPrefix
			if d.NextArg() {
				h.SeederFirst = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "authorizer":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "p2p.tracker.authorizers."+name)
			if err != nil {
				return err
			}
			h.AuthorizerRaw = caddyconfig.JSONModuleObject(unm, "authorizer", name, nil)
		default:
			return d.Errf("unrecognized p2p_tracker option %q", opt)
		}
	}
	return nil
}

// unlimitedIfZero maps the Caddyfile's "0 = unlimited" to the engine's
// negative value.
func unlimitedIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func parseTrackerCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	t := new(TrackerHandler)
	err := t.UnmarshalCaddyfile(h.Dispenser)
	return t, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*TrackerHandler)(nil)
	_ caddy.CleanerUpper          = (*TrackerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*TrackerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*TrackerHandler)(nil)
)
