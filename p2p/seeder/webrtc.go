package seeder

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// WebRTCConfig is how the seeder's PeerConnections reach browsers.
type WebRTCConfig struct {
	// UDPMux carries every ICE UDP host candidate on one socket (see
	// ListenUDPMux). Nil lets pion open a port per connection.
	UDPMux ice.UDPMux
	// TCPMux, if set, adds passive ICE-TCP candidates on one listener for
	// browsers behind firewalls that block UDP.
	TCPMux ice.TCPMux
	// PublicIPs replace the host candidates' addresses in the SDP: the
	// addresses browsers reach the server at when it sits behind a 1:1
	// NAT (a cloud VM's public IP).
	PublicIPs []string
	// ICEServers are STUN (or TURN) servers, used for server-reflexive
	// candidates when PublicIPs are not known.
	ICEServers []webrtc.ICEServer
	// DisconnectedTimeout, FailedTimeout and KeepAlive are the ICE
	// timeouts; zero values select 3 s, 6 s and 1 s, shorter than pion's
	// defaults (5 s, 25 s, 2 s) so a closed tab frees its connection
	// quickly (pion-notes §4).
	DisconnectedTimeout, FailedTimeout, KeepAlive time.Duration
	// IncludeLoopback offers 127.0.0.1 candidates; only tests want it.
	IncludeLoopback bool
	// InterfaceFilter, if set, limits the interfaces candidates come from.
	InterfaceFilter func(name string) bool
	// LoggerFactory receives pion's logs; nil discards them.
	LoggerFactory logging.LoggerFactory
}

// MaxReceiveMessageSize is the largest message the seeder accepts from a
// browser, advertised as a=max-message-size. Browsers send only commands,
// the largest of which, an announcement, is split into 16 KiB frames.
const MaxReceiveMessageSize = 256 << 10

// NewAPI builds the pion API every PeerConnection of a seeder is made with.
func NewAPI(cfg WebRTCConfig) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	if cfg.LoggerFactory != nil {
		se.LoggerFactory = cfg.LoggerFactory
	} else {
		se.LoggerFactory = discardLoggerFactory{}
	}
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPMux != nil {
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
		se.SetICETCPMux(cfg.TCPMux)
	}
	se.SetNetworkTypes(networks)
	if cfg.UDPMux != nil {
		se.SetICEUDPMux(cfg.UDPMux)
	}
	// A server cannot resolve browsers' .local names; it reaches them
	// through their srflx or peer-reflexive candidates instead.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if len(cfg.PublicIPs) > 0 {
		for _, ip := range cfg.PublicIPs {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("seeder: public IP %q is not an IP address", ip)
			}
		}
		se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	disc, failed, keep := cfg.DisconnectedTimeout, cfg.FailedTimeout, cfg.KeepAlive
	if disc <= 0 {
		disc = 3 * time.Second
	}
	if failed <= 0 {
		failed = 6 * time.Second
	}
	if keep <= 0 {
		keep = time.Second
	}
	se.SetICETimeouts(disc, failed, keep)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	if cfg.InterfaceFilter != nil {
		se.SetInterfaceFilter(cfg.InterfaceFilter)
	}
	se.SetSCTPMaxMessageSize(MaxReceiveMessageSize)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

// ListenUDPMux opens the single UDP socket of the seeder's ICE traffic with
// read and write buffers of bufSize bytes (pion-notes §3: the default 208
// KiB buffers drop packets at data-channel speeds) and wraps it in a UDP
// mux (NewUDPMux). Closing the mux closes the socket.
func ListenUDPMux(addr string, bufSize int, lf logging.LoggerFactory) (ice.UDPMux, net.Addr, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("seeder: resolving %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, nil, fmt.Errorf("seeder: listening on udp %q: %w", addr, err)
	}
	if bufSize > 0 {
		// The kernel caps these at net.core.[rw]mem_max; a smaller
		// buffer still works.
		_ = conn.SetReadBuffer(bufSize)
		_ = conn.SetWriteBuffer(bufSize)
	}
	return NewUDPMux(conn, lf), conn.LocalAddr(), nil
}

// NewUDPMux wraps an open UDP socket in an ICE UDP mux whose writes yield
// the processor every few packets (see yieldingConn). Closing the mux
// closes the socket. A nil lf drops pion's logs.
func NewUDPMux(conn *net.UDPConn, lf logging.LoggerFactory) ice.UDPMux {
	if lf == nil {
		lf = discardLoggerFactory{}
	}
	return webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), &yieldingConn{UDPConn: conn})
}

// yieldEvery is how many packets the seeder's UDP socket sends between two
// yields of the processor.
const yieldEvery = 8

// yieldingConn is the seeder's UDP socket as the ICE mux sees it. pion's
// SCTP write loop sends all that its congestion window allows, up to about
// a megabyte, hundreds of packets, in one go, and a UDP send does not
// block, so without a yield the goroutines behind it (the readers of other
// peers' requests, other write loops, Caddy's HTTP handlers) wait for the
// runtime to preempt it, up to 10 ms a burst. uploadbench measured the
// yield: the p99 time from a request to its first chunk at 8 saturating
// peers fell from about 80-115 ms to 57-65 ms, throughput unchanged.
//
// It implements ice.AddrPortReaderWriter, so the mux keeps its
// allocation-free path (pion/ice adapts only a bare *net.UDPConn itself).
type yieldingConn struct {
	*net.UDPConn
	writes atomic.Uint64
}

func (c *yieldingConn) sent() {
	if c.writes.Add(1)%yieldEvery == 0 {
		runtime.Gosched()
	}
}

// WriteTo implements net.PacketConn.
func (c *yieldingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	c.sent()
	return n, err
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (c *yieldingConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	n, err := c.UDPConn.WriteToUDPAddrPort(b, addr)
	c.sent()
	return n, err
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (c *yieldingConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// ListenTCPMux opens the listener of passive ICE-TCP candidates.
func ListenTCPMux(addr string, lf logging.LoggerFactory) (ice.TCPMux, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("seeder: listening on tcp %q: %w", addr, err)
	}
	if lf == nil {
		lf = discardLoggerFactory{}
	}
	mux := webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), ln, 32)
	return mux, ln.Addr(), nil
}

// discardLoggerFactory drops pion's logs.
type discardLoggerFactory struct{}

func (discardLoggerFactory) NewLogger(string) logging.LeveledLogger { return discardLogger{} }

type discardLogger struct{}

func (discardLogger) Trace(string)          {}
func (discardLogger) Tracef(string, ...any) {}
func (discardLogger) Debug(string)          {}
func (discardLogger) Debugf(string, ...any) {}
func (discardLogger) Info(string)           {}
func (discardLogger) Infof(string, ...any)  {}
func (discardLogger) Warn(string)           {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Error(string)          {}
func (discardLogger) Errorf(string, ...any) {}

var _ ice.AddrPortReaderWriter = (*yieldingConn)(nil)
