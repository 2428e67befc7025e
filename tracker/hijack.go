package tracker

import (
	"bufio"
	"net"
	"net/http"
)

// hijackWriter lets gorilla/websocket upgrade through response writers that
// wrap the real one (Caddy's encode, timeout and logging wrappers, for
// example): gorilla type-asserts http.Hijacker on the outermost writer.
//
// It hijacks the innermost writer that can, walking Unwrap() chains.
// Wrappers that hijack on our behalf (Caddy's logging and metrics
// recorder) wrap the connection to count bytes and read the counts once
// the handler returns, while the tracker keeps using the connection from
// other goroutines; their wrapper would also hide the *net.TCPConn the
// poller needs. The price is that access logs show no size for tracker
// upgrades.
type hijackWriter struct {
	http.ResponseWriter
}

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	var innermost http.Hijacker
	for rw := w.ResponseWriter; rw != nil; {
		if h, ok := rw.(http.Hijacker); ok {
			innermost = h
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	if innermost == nil {
		return nil, nil, http.ErrNotSupported
	}
	return innermost.Hijack()
}

func (w hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
