package tracker

import (
	"bufio"
	"net"
	"net/http"
)

// hijackWriter lets gorilla/websocket upgrade through response writers that
// wrap the real one (Caddy's encode, timeout and logging wrappers, for
// example). gorilla type-asserts http.Hijacker on the outermost writer;
// http.ResponseController walks Unwrap() chains down to the writer that can
// really hijack.
type hijackWriter struct {
	http.ResponseWriter
}

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
