package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Operations exchanged between the server (parent) and the client (child)
// over the child's stdin and stdout, one JSON object per line.
const (
	// Server to client.
	opConnect = "connect" // create N peers of a group and offer each
	opAnswer  = "answer"  // the server's answer to one offer
	opStart   = "start"   // start requesting in a mode
	opMeasure = "measure" // start the measured interval
	opStop    = "stop"    // end the interval, finish requests, report
	opClose   = "close"   // close the peers of a group
	// Client to server.
	opOffer     = "offer"     // a peer's complete (non-trickle) offer
	opConnected = "connected" // every peer of a group is open and announced to
	opResult    = "result"    // the figures of one measured interval
	opClosed    = "closed"    // the peers of a group are closed
	opError     = "error"     // an operation failed
)

// Peer groups: the load peers carry the throughput phases, the idle peers
// the memory phase.
const (
	groupLoad = "load"
	groupIdle = "idle"
)

// Modes of a throughput phase.
const (
	modeSeeder = "seeder"
	modeRaw    = "raw"
)

// rawLabel is the label of the second channel each load peer opens; the
// server answers it with plain payload instead of an UploadSession.
const rawLabel = "uploadbench-raw"

// message is one line of the protocol. Unused fields are omitted.
type message struct {
	Op    string `json:"op"`
	Group string `json:"group,omitempty"`
	Mode  string `json:"mode,omitempty"`
	ID    int    `json:"id,omitempty"`
	N     int    `json:"n,omitempty"`
	Err   string `json:"err,omitempty"`

	SDP *webrtc.SessionDescription `json:"sdp,omitempty"`

	Result *clientResult `json:"result,omitempty"`
}

// clientResult is what the client measured over one interval.
type clientResult struct {
	// Bytes is the segment payload received between measure and stop,
	// and Seconds the length of that interval by the client's clock.
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// LatencyMS holds the request-to-first-chunk time of every request
	// sent and answered within the interval.
	LatencyMS []float64 `json:"latency_ms"`
	// HeaderLatencyMS holds, in seeder mode, the time from the same
	// requests to their SegmentData header.
	HeaderLatencyMS []float64 `json:"header_latency_ms,omitempty"`
	// RawSplitMS holds, in raw mode, the same requests' times split in
	// three: request sent to request received by the server, received to
	// first chunk handed to pion, handed to pion to first chunk received.
	RawSplitMS [3][]float64 `json:"raw_split_ms,omitzero"`
	// Requests counts requests sent in the interval, Completed those
	// fully received, Timeouts those given up after 2 s without a byte
	// (the browser's p2pNotReceivingBytesTimeoutMs), Absent those
	// answered with SegmentAbsent, and Errors protocol violations seen.
	Requests  int64 `json:"requests"`
	Completed int64 `json:"completed"`
	Timeouts  int64 `json:"timeouts"`
	Absent    int64 `json:"absent"`
	Errors    int64 `json:"errors"`
	// CPUSeconds is the client process's user plus system time over
	// the interval.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// conn carries protocol messages over a reader and a writer. Writes are
// safe for concurrent use; reads are not.
type conn struct {
	wmu sync.Mutex
	enc *json.Encoder
	sc  *bufio.Scanner
}

func newConn(r io.Reader, w io.Writer) *conn {
	sc := bufio.NewScanner(r)
	// An SDP is a few KiB; leave ample room.
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &conn{enc: json.NewEncoder(w), sc: sc}
}

// send writes one message.
func (c *conn) send(m message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.enc.Encode(m); err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	return nil
}

// recv reads the next message; it returns io.EOF at the end of input.
func (c *conn) recv() (message, error) {
	var m message
	if !c.sc.Scan() {
		if err := c.sc.Err(); err != nil {
			return m, err
		}
		return m, io.EOF
	}
	if err := json.Unmarshal(c.sc.Bytes(), &m); err != nil {
		return m, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
}

// errTimeout reports a reply that did not come in time.
var errTimeout = errors.New("timed out")

// waitFor returns the next message from ch whose op is want, or the error
// carried by an opError message, or errTimeout after d.
func waitFor(ch <-chan message, want string, d time.Duration) (message, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return m, fmt.Errorf("waiting for %s: client gone", want)
			}
			switch m.Op {
			case want:
				return m, nil
			case opError:
				return m, fmt.Errorf("waiting for %s: client: %s", want, m.Err)
			}
		case <-timer.C:
			return message{}, fmt.Errorf("waiting for %s: %w after %v", want, errTimeout, d)
		}
	}
}
