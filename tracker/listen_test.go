package tracker

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// newLocalServer serves h on a loopback listener the test controls, so a
// test can count goroutines without httptest's own bookkeeping.
func newLocalServer(t *testing.T, h http.Handler) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln
}

func httpStatusAfterClose(t *testing.T, tr *Tracker) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/announce", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	return rec.Code
}
