package main

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// Settings shared by the server and the client ends. Both modes use the
// same connections, so they also share every one of these.
const (
	// socketBuffer is the size requested for each UDP socket's send and
	// receive buffers. pion-notes §3 measured about 700 receive-buffer
	// drops per 400 MB with the kernel default (208 KiB) and none with
	// 4 MiB; the kernel caps the request at net.core.[rw]mem_max.
	socketBuffer = 4 << 20
	// sctpMaxMessageSize is the inbound limit each end advertises in its
	// SDP (a=max-message-size), the value Chrome advertises. The sender
	// never uses more than p2p.DefaultMaxMessageSize anyway.
	sctpMaxMessageSize = 256 << 10
	// sctpRTOMax caps SCTP's retransmission backoff, as the p2p package's
	// own tests do: a pion receiver sends no window update when its
	// application reads again, so a stalled sender only learns about it
	// from a zero-window probe on its retransmission timer.
	sctpRTOMax = 500 * time.Millisecond
	// mdnsDisabled: with mDNS left at its default (query only), every ICE
	// agent opens its own multicast sockets, which would inflate the idle
	// figures.
	mdnsDisabled = ice.MulticastDNSModeDisabled
)

// muxAPI is a pion API whose ICE host candidates all live on one UDP
// socket, shared through a webrtc.NewICEUDPMux.
type muxAPI struct {
	api  *webrtc.API
	mux  io.Closer
	addr *net.UDPAddr
	kind string // which mux, for the report
	// rcvbuf and sndbuf are the socket buffer sizes the kernel actually
	// granted (Linux reports twice the usable size).
	rcvbuf, sndbuf int
}

// newMuxAPI opens a UDP socket on 127.0.0.1, enlarges its buffers and
// returns an API whose PeerConnections all use it. The server makes one
// and serves every peer through it, so it holds a single UDP port and
// socket however many peers connect; with seederMux it is the seeder's own
// mux (seeder.NewUDPMux, which yields the processor every few packets
// sent), else pion's plain one. Each client PeerConnection makes its own
// (plain): a UDP mux tells its connections apart by the remote address, so
// clients sharing one port would all look like the same peer.
func newMuxAPI(seederMux bool) (*muxAPI, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("listen udp: %w", err)
	}
	if err := conn.SetReadBuffer(socketBuffer); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("set read buffer: %w", err)
	}
	if err := conn.SetWriteBuffer(socketBuffer); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("set write buffer: %w", err)
	}
	m := &muxAPI{addr: conn.LocalAddr().(*net.UDPAddr)}
	m.rcvbuf, m.sndbuf = socketBuffers(conn)
	// With a nil logger pion's mux uses pion's default one, which writes
	// errors to stderr; the seeder's drops them.
	var mux ice.UDPMux
	if seederMux {
		mux, m.kind = seeder.NewUDPMux(conn, nil), "the seeder's ICE UDP mux (seeder.NewUDPMux)"
	} else {
		mux, m.kind = webrtc.NewICEUDPMux(nil, conn), "pion's plain ICE UDP mux"
	}
	m.mux = mux

	var se webrtc.SettingEngine
	// pion gathers no loopback candidate by default, and with a UDP mux
	// the flag is needed too (ice#625).
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(mdnsDisabled)
	se.SetICEUDPMux(mux)
	se.SetSCTPMaxMessageSize(sctpMaxMessageSize)
	se.SetSCTPRTOMax(sctpRTOMax)
	m.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	return m, nil
}

// Close closes the mux and with it the UDP socket. Close the
// PeerConnections that use it first.
func (m *muxAPI) Close() error { return m.mux.Close() }

// socketBuffers returns the SO_RCVBUF and SO_SNDBUF values of conn, or
// zeros if they cannot be read.
func socketBuffers(conn *net.UDPConn) (rcv, snd int) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = raw.Control(func(fd uintptr) {
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return rcv, snd
}
