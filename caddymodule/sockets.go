package caddymodule

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/pion/ice/v4"
	"go.uber.org/zap"

	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

// udpMuxes holds the seeder's ICE UDP sockets by listen address across
// config reloads: the new config starts before the old one stops, so both
// seeders share one socket (the mux routes by ICE ufrag) instead of failing
// to bind it twice. The key is the resolved address (see listenKey), so
// spelling the same address differently in the new config still finds the
// socket.
var udpMuxes = caddy.NewUsagePool()

// tcpMuxes does the same for ICE-TCP listeners.
var tcpMuxes = caddy.NewUsagePool()

// DefaultSocketBuffer is the seeder's UDP socket buffer size.
const DefaultSocketBuffer = 4 << 20

// listenKey resolves a listen address of network "udp" or "tcp" into the
// key of its pooled socket and the address to bind. Go binds every
// wildcard form (":50000", "0.0.0.0:50000", "[::]:50000") to the same
// dual-stack socket, so they share one key; a host name becomes the
// address it resolves to ("localhost:50000" is "127.0.0.1:50000").
func listenKey(network, addr string) (key, bind string, err error) {
	var ip net.IP
	var port int
	switch network {
	case "udp":
		ua, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return "", "", fmt.Errorf("resolving %q: %w", addr, err)
		}
		ip, port = ua.IP, ua.Port
	case "tcp":
		ta, err := net.ResolveTCPAddr(network, addr)
		if err != nil {
			return "", "", fmt.Errorf("resolving %q: %w", addr, err)
		}
		ip, port = ta.IP, ta.Port
	default:
		return "", "", fmt.Errorf("network %q: want udp or tcp", network)
	}
	if ip == nil || ip.IsUnspecified() {
		bind = ":" + strconv.Itoa(port)
	} else {
		bind = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	}
	return network + "/" + bind, bind, nil
}

// pooledUDPSocket is the seeder's pooled UDP socket and its ICE mux. Each
// app that uses it asks for a buffer size, and the newest app's size is
// set on the live socket: a reload can change socket_buffer without a new
// socket, and a reload that fails (its app stops again) gives the running
// config's size back.
type pooledUDPSocket struct {
	ice.UDPMux
	conn *net.UDPConn

	mu      sync.Mutex
	holders []udpHolder // in the order the apps started
	applied int         // the buffer size last set
}

type udpHolder struct {
	app    *App
	buffer int
}

// listenUDPSocket opens the seeder's UDP socket on bind with the given
// buffer size and wraps it in an ICE mux.
func listenUDPSocket(bind string, buffer int) (*pooledUDPSocket, error) {
	ua, err := net.ResolveUDPAddr("udp", bind)
	if err != nil {
		return nil, fmt.Errorf("resolving %q: %w", bind, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listening on udp %q: %w", bind, err)
	}
	p := &pooledUDPSocket{UDPMux: seeder.NewUDPMux(conn, nil), conn: conn}
	p.setBuffer(buffer)
	return p, nil
}

// Destruct closes the mux and its socket.
func (p *pooledUDPSocket) Destruct() error { return p.Close() }

// setBuffer sets the socket's read and write buffers. The kernel caps them
// at net.core.[rw]mem_max; a smaller buffer still works, so errors are
// ignored.
func (p *pooledUDPSocket) setBuffer(n int) {
	_ = p.conn.SetReadBuffer(n)
	_ = p.conn.SetWriteBuffer(n)
	p.applied = n
}

// hold records that a uses the socket with the given buffer size, which
// becomes the socket's.
func (p *pooledUDPSocket) hold(a *App, buffer int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holders = append(p.holders, udpHolder{a, buffer})
	p.applyLocked(a.log)
}

// release forgets a; the newest remaining app's buffer size applies.
func (p *pooledUDPSocket) release(a *App) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holders = slices.DeleteFunc(p.holders, func(h udpHolder) bool { return h.app == a })
	if len(p.holders) > 0 {
		p.applyLocked(p.holders[len(p.holders)-1].app.log)
	}
}

func (p *pooledUDPSocket) applyLocked(log *zap.Logger) {
	want := p.holders[len(p.holders)-1].buffer
	if want == p.applied {
		return
	}
	log.Info("webrtc udp socket buffer changed on the open socket",
		zap.Stringer("addr", p.conn.LocalAddr()), zap.Int("from", p.applied), zap.Int("to", want))
	p.setBuffer(want)
}

type pooledTCPMux struct{ ice.TCPMux }

func (m pooledTCPMux) Destruct() error { return m.Close() }
