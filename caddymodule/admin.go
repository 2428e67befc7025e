package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
	"github.com/caddy-p2p/caddy-p2p/tracker"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves caddy-p2p status on Caddy's admin endpoint:
//
//	GET    /p2p/tracker[?limit=N]   totals and per-swarm peer counts of every tracker
//	GET    /p2p/seeder              the seeder's swarms, peers, bytes served and cache
//	GET    /p2p/streams             per stream: viewers, HTTP and seeder bytes, player reports, offload
//	POST   /p2p/seeder/streams      {"url": ..., "swarm_id": ...} starts seeding a manifest
//	DELETE /p2p/seeder/streams      {"url": ...} stops seeding it
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.p2p",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/p2p/tracker", Handler: caddy.AdminHandlerFunc(serveTrackerStatus)},
		{Pattern: "/p2p/seeder", Handler: caddy.AdminHandlerFunc(serveSeederStatus)},
		{Pattern: "/p2p/seeder/streams", Handler: caddy.AdminHandlerFunc(serveSeederStreams)},
		{Pattern: "/p2p/streams", Handler: caddy.AdminHandlerFunc(serveOffload)},
	}
}

// TrackerStatus is the admin API's view of one tracker.
type TrackerStatus struct {
	Name   string         `json:"name"`
	Stats  tracker.Stats  `json:"stats"`
	Swarms []SwarmStatus  `json:"swarms"`
	Config map[string]any `json:"config"`
}

// SwarmStatus is one swarm's peer counts. InfoHash is the wire form;
// InfoHashHex is its bytes in hex, for binary info_hashes.
type SwarmStatus struct {
	InfoHash    string `json:"info_hash"`
	InfoHashHex string `json:"info_hash_hex"`
	Peers       int    `json:"peers"`
	Complete    int    `json:"complete"`
	Incomplete  int    `json:"incomplete"`
	Downloaded  int64  `json:"downloaded"`
}

func serveTrackerStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("invalid limit %q", s)}
		}
		limit = n
	}
	out := []TrackerStatus{}
	trackers.Range(func(key, value any) bool {
		t := value.(*trackerEngine).Tracker
		st := TrackerStatus{Name: key.(string), Stats: t.Stats(), Swarms: []SwarmStatus{}}
		for _, e := range t.Swarms().ScrapeAll(limit) {
			st.Swarms = append(st.Swarms, SwarmStatus{
				InfoHash: e.InfoHash, InfoHashHex: binaryHex(e.InfoHash),
				Peers: e.Complete + e.Incomplete, Complete: e.Complete, Incomplete: e.Incomplete, Downloaded: e.Downloaded,
			})
		}
		c := t.Config()
		st.Config = map[string]any{
			"interval_seconds": c.AnnounceInterval.Seconds(), "peer_timeout_seconds": c.PeerTimeout.Seconds(),
			"max_message_size": c.MaxMessageSize, "max_offers": c.MaxOffers, "max_conns_per_ip": c.MaxConnsPerIP,
			"messages_per_second": c.MessagesPerSecond, "write_queue": c.WriteQueue,
		}
		out = append(out, st)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{"trackers": out})
}

// binaryHex renders a binary string (one byte per code point) as hex.
func binaryHex(s string) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 40)
	for _, r := range s {
		b := byte(r)
		out = append(out, hex[b>>4], hex[b&0xF])
	}
	return string(out)
}

var _ caddy.AdminRouter = AdminAPI{}

// currentApp returns the p2p app of the running config. Admin routes live
// outside any one config, so they look it up on every request.
func currentApp() (*App, error) {
	v, err := caddy.ActiveContext().AppIfConfigured("p2p")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("the p2p app is not configured")}
	}
	return v.(*App), nil
}

func serveSeederStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	a, err := currentApp()
	if err != nil {
		return err
	}
	s := a.Seeder()
	if s == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("the seeder is not running")}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(s.Stats())
}

func serveSeederStreams(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost && r.Method != http.MethodDelete {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	var sc seeder.StreamConfig
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&sc); err != nil || sc.URL == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("want a JSON object with a url: %v", err)}
	}
	a, err := currentApp()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodDelete {
		return json.NewEncoder(w).Encode(map[string]bool{"removed": a.RemoveStream(sc.URL)})
	}
	added, err := a.AddStream(sc)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	return json.NewEncoder(w).Encode(map[string]bool{"added": added})
}

func serveOffload(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	a, err := currentApp()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{"streams": a.Offload()})
}
