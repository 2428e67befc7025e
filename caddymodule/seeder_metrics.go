package caddymodule

import (
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// uploadTotals keeps the seeder's upload counters monotonic. The seeder
// counts per swarm and forgets a swarm's counts when the swarm goes (its
// stream removed through the admin API, or dropped as idle), which would
// make the exported sums fall; so the last counts seen of every swarm that
// has gone are kept as running totals. What a swarm counted between the
// last look and its end is lost: the app looks whenever metrics are
// scraped, before it removes a stream and before each sweep of idle
// streams (whose swarms have nothing left to count).
type uploadTotals struct {
	mu   sync.Mutex
	last map[swarmKey]swarmUploads   // the current swarms, as last seen
	gone map[clientKind]uploadCounts // of the swarms that went
}

type swarmKey struct{ stream, infoHash string }

type clientKind struct{ client, kind string }

type swarmUploads struct {
	clientKind
	counts uploadCounts
}

// uploadCounts are the counters of p2p.UploadStats that are exported.
type uploadCounts struct {
	bytes, completed, absent, aborted, overBudget uint64
}

func countsOf(u p2p.UploadStats) uploadCounts {
	return uploadCounts{u.BytesSent, u.Completed, u.Absent, u.Aborted, u.OverBudget}
}

func (c uploadCounts) plus(o uploadCounts) uploadCounts {
	return uploadCounts{c.bytes + o.bytes, c.completed + o.completed, c.absent + o.absent, c.aborted + o.aborted, c.overBudget + o.overBudget}
}

// below reports whether any counter of c is below o's: the swarm was
// replaced by a new one (its stream removed and added again) since o.
func (c uploadCounts) below(o uploadCounts) bool {
	return c.bytes < o.bytes || c.completed < o.completed || c.absent < o.absent || c.aborted < o.aborted || c.overBudget < o.overBudget
}

func newUploadTotals() *uploadTotals {
	return &uploadTotals{last: map[swarmKey]swarmUploads{}, gone: map[clientKind]uploadCounts{}}
}

// observe takes in a snapshot of the seeder and returns the totals by
// client and stream kind, the swarms that went included.
func (u *uploadTotals) observe(st *seeder.Stats) map[clientKind]uploadCounts {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := make(map[swarmKey]swarmUploads, len(u.last))
	for _, str := range st.Streams {
		for _, sw := range str.Swarms {
			k := swarmKey{str.URL, sw.InfoHash}
			cur := swarmUploads{clientKind{sw.Client, sw.Kind}, countsOf(sw.Upload)}
			if prev, ok := u.last[k]; ok && cur.counts.below(prev.counts) {
				u.gone[prev.clientKind] = u.gone[prev.clientKind].plus(prev.counts)
			}
			seen[k] = cur
		}
	}
	for k, prev := range u.last {
		if _, ok := seen[k]; !ok {
			u.gone[prev.clientKind] = u.gone[prev.clientKind].plus(prev.counts)
		}
	}
	u.last = seen
	totals := maps.Clone(u.gone)
	for _, sw := range seen {
		totals[sw.clientKind] = totals[sw.clientKind].plus(sw.counts)
	}
	return totals
}

// seederCollector exports the seeder of one p2p app. Labels are the client
// generation and the kind of stream only, never a swarm or a peer, so the
// series count stays small whatever is being seeded.
type seederCollector struct {
	app *App

	peerConnections, swarms, peers, uploadsRunning *prometheus.Desc
	bytes, completed, absent, aborted, overBudget  *prometheus.Desc
	cacheHits, cacheMisses, cacheBytes, cacheEvict *prometheus.Desc
	offersSent, offersAnswered, answersSent        *prometheus.Desc
	connections, connectFailures, refused          *prometheus.Desc
	viewers, httpBytes, reported                   *prometheus.Desc
}

func newSeederCollector(a *App) *seederCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("caddy_p2p_seeder_"+name, help, labels, nil)
	}
	return &seederCollector{
		app:             a,
		peerConnections: d("peer_connections", "Open WebRTC peer connections, pending offers included."),
		swarms:          d("swarms", "Swarms joined, by client.", "client"),
		peers:           d("peers", "Browsers connected or connecting, by client.", "client"),
		uploadsRunning:  d("uploads_running", "Uploads holding a slot of the upload budget."),
		bytes:           d("uploaded_bytes_total", "Segment payload bytes sent, by client and stream kind.", "client", "kind"),
		completed:       d("uploads_completed_total", "Segments sent completely, by client.", "client"),
		absent:          d("absent_total", "Requests answered with SegmentAbsent, by client.", "client"),
		aborted:         d("uploads_aborted_total", "Uploads cancelled or cut off, by client.", "client"),
		overBudget:      d("over_budget_total", "Requests refused by the upload budget, by client.", "client"),
		cacheHits:       d("cache_hits_total", "Segment cache hits."),
		cacheMisses:     d("cache_misses_total", "Segment cache misses (fetches started)."),
		cacheBytes:      d("cache_bytes", "Bytes held in the segment cache."),
		cacheEvict:      d("cache_evictions_total", "Segments evicted from the cache."),
		offersSent:      d("offers_sent_total", "Offers sent through trackers."),
		offersAnswered:  d("offers_answered_total", "Offers of the seeder that browsers answered."),
		answersSent:     d("answers_sent_total", "Answers to browsers' offers."),
		connections:     d("connections_total", "Peer connections that reached the connected state."),
		connectFailures: d("connect_failures_total", "Peer connections that never opened their data channel."),
		refused:         d("peers_refused_total", "Peer connections refused by max_peers."),
		viewers:         prometheus.NewDesc("caddy_p2p_viewers", "Browsers in the swarms of seeded streams (per client generation the busiest swarm of each stream, summed).", nil, nil),
		httpBytes:       prometheus.NewDesc("caddy_p2p_http_segment_bytes_total", "Segment bytes of seeded streams sent over HTTP through p2p_manifest (the seeder's own fetches excluded).", nil, nil),
		reported:        prometheus.NewDesc("caddy_p2p_reported_bytes", "Bytes the reporting player pages downloaded, by source (http, p2p_peers, p2p_seeder), summed over live sessions.", []string{"source"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *seederCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerConnections, c.swarms, c.peers, c.uploadsRunning, c.bytes, c.completed,
		c.absent, c.aborted, c.overBudget, c.cacheHits, c.cacheMisses, c.cacheBytes, c.cacheEvict, c.offersSent,
		c.offersAnswered, c.answersSent, c.connections, c.connectFailures, c.refused, c.viewers, c.httpBytes, c.reported} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *seederCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.app.Seeder()
	if s == nil {
		return
	}
	st := s.Stats()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctr := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	type perClient struct {
		swarms, peers uint64
		uploads       uploadCounts
	}
	clients := map[string]*perClient{}
	client := func(name string) *perClient {
		pc := clients[name]
		if pc == nil {
			pc = &perClient{}
			clients[name] = pc
		}
		return pc
	}
	for _, str := range st.Streams {
		for _, sw := range str.Swarms {
			pc := client(sw.Client)
			pc.swarms++
			pc.peers += uint64(sw.Peers)
		}
	}
	// The upload counters include the swarms that have gone, so they
	// never fall when a stream is removed.
	uploads := c.app.uploads.observe(&st)
	for k, v := range uploads {
		pc := client(k.client)
		pc.uploads = pc.uploads.plus(v)
		ctr(c.bytes, v.bytes, k.client, k.kind)
	}
	g(c.peerConnections, float64(st.PeerConnections))
	g(c.uploadsRunning, float64(st.UploadsRunning))
	for name, pc := range clients {
		g(c.swarms, float64(pc.swarms), name)
		g(c.peers, float64(pc.peers), name)
		ctr(c.completed, pc.uploads.completed, name)
		ctr(c.absent, pc.uploads.absent, name)
		ctr(c.aborted, pc.uploads.aborted, name)
		ctr(c.overBudget, pc.uploads.overBudget, name)
	}
	ctr(c.cacheHits, st.Cache.Hits)
	ctr(c.cacheMisses, st.Cache.Misses)
	g(c.cacheBytes, float64(st.Cache.Bytes))
	ctr(c.cacheEvict, st.Cache.Evictions)
	ctr(c.offersSent, st.OffersSent)
	ctr(c.offersAnswered, st.OffersAnswered)
	ctr(c.answersSent, st.AnswersSent)
	ctr(c.connections, st.Connections)
	ctr(c.connectFailures, st.ConnectFailures)
	ctr(c.refused, st.PeersRefused)

	var viewers int
	var repHTTP, repPeers, repSeeder uint64
	for _, o := range c.app.offload.snapshot(&st, time.Now()) {
		viewers += o.Viewers
		repHTTP += o.Reported.HTTPBytes
		repPeers += o.Reported.P2PBytes - o.Reported.P2PFromSeeder
		repSeeder += o.Reported.P2PFromSeeder
	}
	g(c.viewers, float64(viewers))
	ctr(c.httpBytes, c.app.offload.httpBytesTotal())
	g(c.reported, float64(repHTTP), "http")
	g(c.reported, float64(repPeers), "p2p_peers")
	g(c.reported, float64(repSeeder), "p2p_seeder")
}

// registerSeederMetrics registers the app's collector with the config's
// registry, which Caddy creates afresh for every config load, so the
// collector of an unloaded config goes away with its registry.
func registerSeederMetrics(ctx caddy.Context, a *App) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	if err := reg.Register(newSeederCollector(a)); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			ctx.Logger().Warn("registering seeder metrics failed")
		}
	}
}
