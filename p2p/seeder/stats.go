package seeder

import (
	"sort"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// Stats is a snapshot of a seeder, shaped for the admin API.
type Stats struct {
	PeerID          string        `json:"peer_id"`
	PeerConnections int64         `json:"peer_connections"`
	Trackers        []TrackerStat `json:"trackers"`
	Streams         []StreamStats `json:"streams"`
	Cache           CacheStats    `json:"cache"`
	OffersSent      uint64        `json:"offers_sent"`
	OffersAnswered  uint64        `json:"offers_answered"`
	OffersReceived  uint64        `json:"offers_received"`
	AnswersSent     uint64        `json:"answers_sent"`
	PeersRefused    uint64        `json:"peers_refused"`
	Connections     uint64        `json:"connections"`
	ConnectFailures uint64        `json:"connect_failures"`
	UploadsRunning  int           `json:"uploads_running"`
}

// TrackerStat is the state of one tracker connection.
type TrackerStat struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	Offers    int    `json:"pending_offers"`
}

// StreamStats describes one seeded manifest.
type StreamStats struct {
	URL     string       `json:"url"`
	SwarmID string       `json:"swarm_id,omitempty"`
	Swarms  []SwarmStats `json:"swarms"`
}

// SwarmStats describes the seeder's membership in one swarm.
type SwarmStats struct {
	InfoHash   string          `json:"info_hash"`
	Client     string          `json:"client"`
	Generation string          `json:"generation"`
	Kind       string          `json:"kind"`
	Playlist   string          `json:"playlist"`
	Live       bool            `json:"live"`
	Segments   int             `json:"segments"`
	Announced  int             `json:"announced"`
	Peers      int             `json:"peers"`
	Upload     p2p.UploadStats `json:"upload"`
}

// Stats returns a snapshot of the seeder.
func (s *Seeder) Stats() Stats {
	st := Stats{
		Trackers:        []TrackerStat{},
		Streams:         []StreamStats{},
		PeerID:          s.peerID,
		PeerConnections: s.pcs.Load(),
		Cache:           s.cache.Stats(),
		OffersSent:      s.counters.offersSent.Load(),
		OffersAnswered:  s.counters.offersAnswered.Load(),
		OffersReceived:  s.counters.offersReceived.Load(),
		AnswersSent:     s.counters.answersSent.Load(),
		PeersRefused:    s.counters.peersRefused.Load(),
		Connections:     s.counters.connections.Load(),
		ConnectFailures: s.counters.connectFailures.Load(),
		UploadsRunning:  s.cfg.Upload.Budget.Running(),
	}
	s.mu.Lock()
	trackers := append([]*trackerClient(nil), s.trackers...)
	byURL := make(map[string]*StreamStats, len(s.streams))
	for u, str := range s.streams {
		byURL[u] = &StreamStats{URL: u, SwarmID: str.cfg.SwarmID, Swarms: []SwarmStats{}}
	}
	s.mu.Unlock()
	for _, t := range trackers {
		t.mu.Lock()
		st.Trackers = append(st.Trackers, TrackerStat{URL: t.url, Connected: t.sess != nil, Offers: len(t.offers)})
		t.mu.Unlock()
	}
	for _, sw := range s.allSwarms() {
		ss, ok := byURL[sw.st.cfg.URL]
		if !ok {
			continue
		}
		ss.Swarms = append(ss.Swarms, sw.stats())
	}
	for _, ss := range byURL {
		st.Streams = append(st.Streams, *ss)
	}
	sort.Slice(st.Streams, func(i, j int) bool { return st.Streams[i].URL < st.Streams[j].URL })
	return st
}

// stats returns the swarm's snapshot.
func (sw *swarm) stats() SwarmStats {
	up := sw.uploadStats()
	id := sw.ms.Swarms[sw.client]
	kind := "video"
	if sw.ms.Attributes.Kind == p2p.KindAudioRendition {
		kind = "audio"
	}
	playlist := sw.ms.URL
	if playlist == "" {
		playlist = sw.ms.RepresentationID
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return SwarmStats{
		InfoHash:   string(sw.infoHash),
		Client:     sw.client.String(),
		Generation: id.Generation,
		Kind:       kind,
		Playlist:   playlist,
		Live:       sw.live,
		Segments:   len(sw.segs),
		Announced:  len(sw.announcementLocked()),
		Peers:      len(sw.peers),
		Upload:     up,
	}
}
