package caddymodule

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func init() {
	caddy.RegisterModule(&Dashboard{})
	httpcaddyfile.RegisterHandlerDirective("p2p_dashboard", parseDashboardCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("p2p_dashboard", httpcaddyfile.Before, "file_server")
}

//go:embed web/dashboard.html
var dashboardHTML []byte

// Dashboard serves the operator's page: per stream, viewers, what the
// origin sent (HTTP and the seeder) and what the players report, with live
// charts. GET ?format=json returns the figures the page polls. It shows
// traffic figures only, but put it behind authentication (basic_auth) on
// a public site anyway.
type Dashboard struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*Dashboard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.p2p_dashboard", New: func() caddy.Module { return new(Dashboard) }}
}

// Provision finds the p2p app.
func (d *Dashboard) Provision(ctx caddy.Context) error {
	v, err := ctx.AppIfConfigured("p2p")
	if err != nil {
		return fmt.Errorf("p2p_dashboard: needs the p2p app (global option p2p): %w", err)
	}
	d.app = v.(*App)
	return nil
}

// DashboardData is the JSON the dashboard polls.
type DashboardData struct {
	Time            time.Time       `json:"time"`
	PeerID          string          `json:"peer_id"`
	PeerConnections int64           `json:"peer_connections"`
	CacheBytes      int64           `json:"cache_bytes"`
	CacheHits       uint64          `json:"cache_hits"`
	CacheMisses     uint64          `json:"cache_misses"`
	Streams         []StreamOffload `json:"streams"`
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("format") == "json" {
		data := DashboardData{Time: time.Now()}
		var st *seeder.Stats
		if s := d.app.Seeder(); s != nil {
			v := s.Stats()
			st = &v
			data.PeerID, data.PeerConnections = st.PeerID, st.PeerConnections
			data.CacheBytes, data.CacheHits, data.CacheMisses = st.Cache.Bytes, st.Cache.Hits, st.Cache.Misses
		}
		// One seeder snapshot serves both the header and the streams.
		data.Streams = d.app.offload.snapshot(st, data.Time)
		body, err := json.Marshal(data)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return nil
		}
		_, err = w.Write(body)
		return err
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(dashboardHTML)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(dashboardHTML)
	return err
}

func parseDashboardCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	d := new(Dashboard)
	err := d.UnmarshalCaddyfile(h.Dispenser)
	return d, err
}

// UnmarshalCaddyfile reads `p2p_dashboard [<matcher>]`; it has no options.
func (d *Dashboard) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next()
	if disp.NextArg() {
		return disp.ArgErr()
	}
	if disp.NextBlock(0) {
		return disp.Errf("p2p_dashboard takes no options")
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Dashboard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Dashboard)(nil)
	_ caddyfile.Unmarshaler       = (*Dashboard)(nil)
)
