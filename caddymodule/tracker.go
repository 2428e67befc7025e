package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// trackerEngine is the pooled value: a running tracker.
type trackerEngine struct {
	*tracker.Tracker
}

// Destruct closes the tracker's sockets and ends its goroutines.
func (e trackerEngine) Destruct() error { return e.Close() }

// TrackerHandler is a WebTorrent tracker endpoint (WebSocket signalling for
// P2P Media Loader and bittorrent-tracker clients). Requests that are not
// WebSocket upgrades get 426 Upgrade Required; it never calls the next
// handler.
type TrackerHandler struct {
	// Name identifies the swarm space. Handlers with the same name share
	// swarms (several routes or sites may serve one tracker); the state
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

	engine *tracker.Tracker
	logger *zap.Logger
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

// Provision adopts the running tracker of this name or starts one.
func (h *TrackerHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Name == "" {
		h.Name = "default"
	}
	cfg := h.trackerConfig()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
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
	slog := ctx.Slogger()
	val, loaded, err := trackers.LoadOrNew(h.Name, func() (caddy.Destructor, error) {
		t, err := tracker.New(cfg,
			tracker.WithLogger(slog),
			tracker.WithClientIP(clientIP))
		if err != nil {
			return nil, err
		}
		return trackerEngine{t}, nil
	})
	if err != nil {
		return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
	}
	h.engine = val.(trackerEngine).Tracker
	if loaded {
		// A reload or a second route with the same name: the newest
		// config's limits and authorizer win.
		if err := h.engine.SetConfig(cfg); err != nil {
			return fmt.Errorf("p2p_tracker %q: %w", h.Name, err)
		}
	}
	h.engine.SetAuthorizer(auth)
	registerTrackerMetrics(ctx)
	return nil
}

// clientIP returns Caddy's idea of the client address, which honours the
// server's trusted_proxies setting.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}

// ServeHTTP upgrades to the tracker WebSocket.
func (h *TrackerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.engine.ServeHTTP(w, r)
	return nil
}

// Cleanup releases this config's hold on the tracker; the last holder's
// release closes it.
func (h *TrackerHandler) Cleanup() error {
	if h.engine == nil {
		return nil
	}
	_, err := trackers.Delete(h.Name)
	return err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	p2p_tracker [<matcher>] {
//	    name                 <name>
//	    interval             <duration>
//	    peer_timeout         <duration>
//	    max_message_size     <size>
//	    max_offers           <n>
//	    max_numwant          <n>
//	    max_swarms_per_conn  <n>
//	    max_conns_per_ip     <n>     # 0 = unlimited
//	    max_messages_per_second <rate> [<burst>]  # 0 = unlimited
//	    write_queue          <n>
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
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("%s: invalid number %q", opt, s)
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
			if err != nil || rate < 0 {
				return d.Errf("max_messages_per_second: invalid rate %q", args[0])
			}
			h.MessagesPerSecond = rate
			if rate == 0 {
				h.MessagesPerSecond = -1
			}
			if len(args) == 2 {
				burst, err := strconv.Atoi(args[1])
				if err != nil || burst < 1 {
					return d.Errf("max_messages_per_second: invalid burst %q", args[1])
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
