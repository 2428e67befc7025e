package tracker

import (
	"fmt"
	"time"
)

// Config holds the tunable limits of a Tracker. A zero value for a field
// means "use the default"; the fields documented as such accept a negative
// value to mean "unlimited" (load tests use it).
type Config struct {
	// AnnounceInterval is the re-announce interval sent to clients.
	AnnounceInterval time.Duration
	// PeerTimeout is how long a peer stays in a swarm without re-announcing.
	// Defaults to twice AnnounceInterval plus 30 seconds.
	PeerTimeout time.Duration
	// MaxMessageSize caps one incoming WebSocket message in bytes.
	MaxMessageSize int64
	// MaxOffers caps the offers relayed per announce. An announce with
	// more is still served: its first MaxOffers offers are relayed.
	MaxOffers int
	// MaxNumwant caps the numwant a client may ask for.
	MaxNumwant int
	// MaxSwarmsPerConn caps the (info_hash, peer_id) pairs one socket may
	// hold; pairs whose peer has expired from its swarm no longer count.
	// In-process peers (LocalPeer) are exempt: the origin's seeder joins
	// every variant and rendition of every stream, once per client
	// generation, with one peer id.
	MaxSwarmsPerConn int
	// MaxConnsPerIP caps concurrent sockets from one remote IP; negative is unlimited.
	MaxConnsPerIP int
	// MessagesPerSecond is the sustained message rate allowed per socket;
	// negative is unlimited. MessageBurst is the bucket size.
	MessagesPerSecond float64
	MessageBurst      int
	// WriteQueue caps the messages waiting to be written to one socket. A
	// socket whose queue is full is closed: a slow reader is dropped, not
	// buffered forever.
	WriteQueue int
	// WriteQueueBytes caps the bytes of the messages waiting to be written
	// to one socket, the batch being written included, as WriteQueue caps
	// their number: a relayed offer can be almost MaxMessageSize long. A
	// message is always accepted into an empty queue. Defaults to DefaultWriteQueueBytes, or 16 times
	// MaxMessageSize if that is more.
	WriteQueueBytes int64
	// WriteTimeout bounds one write to a socket.
	WriteTimeout time.Duration
	// PingInterval is how often the tracker pings idle sockets.
	PingInterval time.Duration
	// ReadTimeout closes a socket from which nothing (not even a pong) arrived
	// for this long. It must exceed PingInterval.
	ReadTimeout time.Duration
	// ScrapeAllLimit caps the swarms listed by a scrape without info_hash.
	ScrapeAllLimit int
	// AllowedOrigins lists the Origin header values accepted for the
	// upgrade. Empty allows every origin; "*" in the list does the same.
	AllowedOrigins []string
	// SeederFirst, if not empty, is the peer id prefix of the origin's
	// seeding peer (the p2p app's is "-CP0001-"): the first offer of each
	// peer new to a swarm goes to a seeding member with that prefix, so
	// every viewer gets a connection to the seeder at once instead of by
	// chance. The other offers go to random members as usual. Only an
	// in-process peer (LocalPeer) qualifies as the seeder, whatever the
	// peer ids of sockets: any client can claim a prefix.
	SeederFirst string
}

// Default values for Config.
const (
	DefaultAnnounceInterval  = 120 * time.Second
	DefaultMaxMessageSize    = 64 << 10
	DefaultMaxOffers         = 10
	DefaultMaxNumwant        = 50
	DefaultMaxSwarmsPerConn  = 64
	DefaultMaxConnsPerIP     = 64
	DefaultMessagesPerSecond = 20
	DefaultMessageBurst      = 60
	DefaultWriteQueue        = 128
	DefaultWriteQueueBytes   = 1 << 20
	DefaultWriteTimeout      = 10 * time.Second
	DefaultPingInterval      = 30 * time.Second
	DefaultReadTimeout       = 75 * time.Second
	DefaultScrapeAllLimit    = 1000
)

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 2*c.AnnounceInterval + 30*time.Second
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxOffers <= 0 {
		c.MaxOffers = DefaultMaxOffers
	}
	if c.MaxNumwant <= 0 {
		c.MaxNumwant = DefaultMaxNumwant
	}
	if c.MaxSwarmsPerConn <= 0 {
		c.MaxSwarmsPerConn = DefaultMaxSwarmsPerConn
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MessagesPerSecond == 0 {
		c.MessagesPerSecond = DefaultMessagesPerSecond
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.WriteQueue <= 0 {
		c.WriteQueue = DefaultWriteQueue
	}
	if c.WriteQueueBytes <= 0 {
		c.WriteQueueBytes = max(DefaultWriteQueueBytes, 16*c.MaxMessageSize)
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.ScrapeAllLimit <= 0 {
		c.ScrapeAllLimit = DefaultScrapeAllLimit
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	d := c.withDefaults()
	if d.ReadTimeout <= d.PingInterval {
		return fmt.Errorf("read timeout %s must exceed ping interval %s", d.ReadTimeout, d.PingInterval)
	}
	if d.MaxMessageSize < 1024 {
		return fmt.Errorf("max message size %d is below 1024 bytes", d.MaxMessageSize)
	}
	if d.PeerTimeout < d.AnnounceInterval {
		return fmt.Errorf("peer timeout %s is shorter than the announce interval %s", d.PeerTimeout, d.AnnounceInterval)
	}
	return nil
}
