package caddymodule

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

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
	type perClient struct{ swarms, peers, completed, absent, aborted, overBudget uint64 }
	clients := map[string]*perClient{}
	bytes := map[[2]string]uint64{}
	for _, str := range st.Streams {
		for _, sw := range str.Swarms {
			pc := clients[sw.Client]
			if pc == nil {
				pc = &perClient{}
				clients[sw.Client] = pc
			}
			pc.swarms++
			pc.peers += uint64(sw.Peers)
			pc.completed += sw.Upload.Completed
			pc.absent += sw.Upload.Absent
			pc.aborted += sw.Upload.Aborted
			pc.overBudget += sw.Upload.OverBudget
			bytes[[2]string{sw.Client, sw.Kind}] += sw.Upload.BytesSent
		}
	}
	g(c.peerConnections, float64(st.PeerConnections))
	g(c.uploadsRunning, float64(st.UploadsRunning))
	for name, pc := range clients {
		g(c.swarms, float64(pc.swarms), name)
		g(c.peers, float64(pc.peers), name)
		ctr(c.completed, pc.completed, name)
		ctr(c.absent, pc.absent, name)
		ctr(c.aborted, pc.aborted, name)
		ctr(c.overBudget, pc.overBudget, name)
	}
	for k, v := range bytes {
		ctr(c.bytes, v, k[0], k[1])
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
	var httpBytes, repHTTP, repPeers, repSeeder uint64
	for _, o := range c.app.offload.snapshot(&st, time.Now()) {
		viewers += o.Viewers
		httpBytes += o.HTTPBytes
		repHTTP += o.Reported.HTTPBytes
		repPeers += o.Reported.P2PBytes - o.Reported.P2PFromSeeder
		repSeeder += o.Reported.P2PFromSeeder
	}
	g(c.viewers, float64(viewers))
	ctr(c.httpBytes, httpBytes)
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
