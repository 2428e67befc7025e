package caddymodule

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// Bounds of the offload bookkeeping.
const (
	maxPlayerReports  = 10000
	playerReportTTL   = 2 * time.Minute
	maxReportedStream = 2048
)

// offload counts, per seeded stream, what the origin sent and what the
// players report, so the operator sees how much P2P took off the origin.
// It is bounded: only streams the seeder knows are counted, and player
// reports expire.
type offload struct {
	mu      sync.Mutex
	http    map[string]*httpTraffic // by manifest URL
	reports map[string]*playerReport
	// forgotten sums the HTTP traffic of the streams no longer seeded, so
	// the exported counter does not fall when a stream goes.
	forgotten httpTraffic
}

type httpTraffic struct {
	bytes, requests uint64
}

// playerReport is the latest totals one player page sent.
type playerReport struct {
	stream                 string
	http, p2p, p2pFromSeed uint64
	seen                   time.Time
}

func newOffload() *offload {
	return &offload{http: map[string]*httpTraffic{}, reports: map[string]*playerReport{}}
}

// addHTTP counts segment bytes the server sent for a stream.
func (o *offload) addHTTP(stream string, n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.http[stream]
	if t == nil {
		if len(o.http) >= maxReportedStream {
			return
		}
		t = &httpTraffic{}
		o.http[stream] = t
	}
	t.bytes += uint64(n)
	t.requests++
}

// report records a player's running totals.
func (o *offload) report(session, stream string, http, p2pBytes, fromSeed uint64, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.reports[session]
	if r == nil {
		if len(o.reports) >= maxPlayerReports {
			o.expireLocked(now)
			if len(o.reports) >= maxPlayerReports {
				return
			}
		}
		r = &playerReport{}
		o.reports[session] = r
	}
	r.stream, r.http, r.p2p, r.p2pFromSeed, r.seen = stream, http, p2pBytes, min(fromSeed, p2pBytes), now
}

func (o *offload) expireLocked(now time.Time) {
	for id, r := range o.reports {
		if now.Sub(r.seen) > playerReportTTL {
			delete(o.reports, id)
		}
	}
}

// forget drops the counters of streams no longer seeded, adding them to
// the forgotten totals.
func (o *offload) forget(keep map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for u, t := range o.http {
		if !keep[u] {
			o.forgotten.bytes += t.bytes
			o.forgotten.requests += t.requests
			delete(o.http, u)
		}
	}
}

// httpBytesTotal returns the HTTP segment bytes of every stream, forgotten
// ones included, read at one moment (a forget between two reads would
// count a stream twice).
func (o *offload) httpBytesTotal() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.forgotten.bytes
	for _, t := range o.http {
		n += t.bytes
	}
	return n
}

// StreamOffload is one stream's traffic as the admin API and the
// dashboard show it.
type StreamOffload struct {
	URL string `json:"url"`
	// Viewers are the browsers in the stream's swarms, as the tracker
	// counts them: per client generation the busiest swarm, summed.
	Viewers int `json:"viewers"`
	// HTTPBytes are segment bytes this server sent over HTTP (the
	// seeder's own fetches excluded).
	HTTPBytes    uint64 `json:"http_bytes"`
	HTTPRequests uint64 `json:"http_requests"`
	// SeederBytes are segment bytes the seeder uploaded over WebRTC.
	SeederBytes uint64 `json:"seeder_bytes"`
	// EgressBytes is what left the origin: HTTPBytes plus SeederBytes.
	EgressBytes uint64 `json:"egress_bytes"`
	// Reported sums the latest totals of the players that report
	// (the p2p_player page does, every few seconds).
	Reported PlayerTotals `json:"reported"`
	// Offload is the share of the reporting players' bytes that came
	// from other browsers, neither over HTTP nor from the seeder; null
	// without reports.
	Offload *float64 `json:"offload"`
}

// PlayerTotals are the summed reports of live player sessions.
type PlayerTotals struct {
	Sessions      int    `json:"sessions"`
	HTTPBytes     uint64 `json:"http_bytes"`
	P2PBytes      uint64 `json:"p2p_bytes"`
	P2PFromSeeder uint64 `json:"p2p_from_seeder_bytes"`
}

// snapshot builds the per-stream view from the seeder, the trackers and
// the counters.
func (o *offload) snapshot(st *seeder.Stats, now time.Time) []StreamOffload {
	byURL := map[string]*StreamOffload{}
	get := func(u string) *StreamOffload {
		s := byURL[u]
		if s == nil {
			s = &StreamOffload{URL: u}
			byURL[u] = s
		}
		return s
	}
	if st != nil {
		for _, str := range st.Streams {
			s := get(str.URL)
			busiest := map[string]int{}
			for _, sw := range str.Swarms {
				s.SeederBytes += sw.Upload.BytesSent
				if n := trackerIncomplete(sw.InfoHash); n > busiest[sw.Client] {
					busiest[sw.Client] = n
				}
			}
			for _, n := range busiest {
				s.Viewers += n
			}
		}
	}
	o.mu.Lock()
	for u, t := range o.http {
		s := get(u)
		s.HTTPBytes, s.HTTPRequests = t.bytes, t.requests
	}
	o.expireLocked(now)
	for _, r := range o.reports {
		s := get(r.stream)
		s.Reported.Sessions++
		s.Reported.HTTPBytes += r.http
		s.Reported.P2PBytes += r.p2p
		s.Reported.P2PFromSeeder += r.p2pFromSeed
	}
	o.mu.Unlock()
	out := make([]StreamOffload, 0, len(byURL))
	for _, s := range byURL {
		s.EgressBytes = s.HTTPBytes + s.SeederBytes
		if total := s.Reported.HTTPBytes + s.Reported.P2PBytes; total > 0 {
			v := float64(s.Reported.P2PBytes-s.Reported.P2PFromSeeder) / float64(total)
			s.Offload = &v
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// trackerIncomplete sums a swarm's browsers over this process's trackers.
func trackerIncomplete(infoHash string) int {
	n := 0
	trackers.Range(func(_, v any) bool {
		if e, ok := v.(*trackerEngine).Tracker.Swarms().Scrape(infoHash); ok {
			n += e.Incomplete
		}
		return true
	})
	return n
}

// streamOf maps a segment request to its seeded stream: by the URL the
// player used, then without its query.
func streamOf(s *seeder.Seeder, u string) (string, bool) {
	if m, ok := s.StreamOfSegment(u); ok {
		return m, true
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return s.StreamOfSegment(u[:i])
	}
	return "", false
}
