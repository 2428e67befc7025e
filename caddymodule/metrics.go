package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-p2p/caddy-p2p/tracker"
)

// trackerCollector exports the totals of every running tracker. It reads
// the engines' own counters at scrape time, so the numbers continue across
// reloads; the only label is the tracker name, which the operator chooses,
// keeping cardinality low (no info_hashes or peer ids as labels).
type trackerCollector struct {
	connections, swarms, peers                         *prometheus.Desc
	accepted, rejected, slow                           *prometheus.Desc
	messages, offers, answers, undeliverable, failures *prometheus.Desc
	expired                                            *prometheus.Desc
}

func newTrackerCollector() *trackerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("caddy_p2p_tracker_"+name, help, append([]string{"tracker"}, labels...), nil)
	}
	return &trackerCollector{
		connections:   d("connections", "Open tracker WebSocket connections."),
		swarms:        d("swarms", "Swarms with at least one peer."),
		peers:         d("peers", "Peers in all swarms."),
		accepted:      d("connections_accepted_total", "WebSocket connections accepted."),
		rejected:      d("connections_rejected_total", "Upgrade requests refused, by reason.", "reason"),
		slow:          d("slow_readers_dropped_total", "Connections closed because their write queue was full."),
		messages:      d("messages_total", "Client messages handled, by action.", "action"),
		offers:        d("offers_relayed_total", "WebRTC offers relayed to peers."),
		answers:       d("answers_relayed_total", "WebRTC answers relayed to offerers."),
		undeliverable: d("answers_undeliverable_total", "Answers whose to_peer_id was not in the swarm."),
		failures:      d("failures_total", "Failure replies sent, by kind.", "kind"),
		expired:       d("peers_expired_total", "Peers removed for not re-announcing."),
	}
}

// Describe implements prometheus.Collector.
func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.swarms, c.peers, c.accepted, c.rejected, c.slow,
		c.messages, c.offers, c.answers, c.undeliverable, c.failures, c.expired} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	trackers.Range(func(key, value any) bool {
		name := key.(string)
		s := value.(*trackerEngine).Tracker.Stats()
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		ctr := func(d *prometheus.Desc, v int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		g(c.connections, float64(s.Connections))
		g(c.swarms, float64(s.Swarms))
		g(c.peers, float64(s.Peers))
		ctr(c.accepted, s.Accepted)
		for _, k := range tracker.RejectKinds {
			ctr(c.rejected, s.Rejected[k], k)
		}
		ctr(c.slow, s.SlowDropped)
		ctr(c.messages, s.Announces, "announce")
		ctr(c.messages, s.Scrapes, "scrape")
		ctr(c.offers, s.OffersRelayed)
		ctr(c.answers, s.AnswersRelayed)
		ctr(c.undeliverable, s.AnswersUndeliverable)
		for _, k := range tracker.FailureKinds {
			ctr(c.failures, s.Failures[k], k)
		}
		ctr(c.expired, s.PeersExpired)
		return true
	})
}

// trackerMetrics is created once per process; it is registered with each
// config's registry because Caddy gives every config load a fresh one.
var trackerMetrics = newTrackerCollector()

func registerTrackerMetrics(ctx caddy.Context) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	if err := reg.Register(trackerMetrics); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			ctx.Logger().Warn("registering tracker metrics failed")
		}
	}
}
