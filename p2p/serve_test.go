package p2p

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"
)

// serveHarness connects a browser-like client PeerConnection to a server
// PeerConnection running an UploadSession, both in this process over
// loopback.
type serveHarness struct {
	t              testing.TB
	client, server *webrtc.PeerConnection
	cdc, sdc       *webrtc.DataChannel
	sess           *UploadSession
	msgs           chan []byte

	blockOnPayload atomic.Bool
	payloadDelay   atomic.Int64 // ns the client sleeps on each payload message
	release        chan struct{}
	releaseOnce    sync.Once
}

// serveTestSource serves fixed segments and can be told to fail or stall.
func serveTestSource(segs map[int64][]byte) SegmentSource {
	return SegmentSourceFunc(func(ctx context.Context, id int64) ([]byte, bool, error) {
		switch id {
		case 666:
			return nil, false, errors.New("origin failed")
		case 777:
			<-ctx.Done()
			return nil, false, ctx.Err()
		}
		d, ok := segs[id]
		return d, ok, nil
	})
}

func serveTestData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func newServeAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// A pion receiver sends no window update when its application reads
	// again after a stall; the sender only finds out through zero-window
	// probes on its retransmission timer, whose backoff this caps.
	se.SetSCTPRTOMax(500 * time.Millisecond)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// newServeHarness connects the peers, starts the session with src and
// opts, and announces ids before the channel opens.
func newServeHarness(t testing.TB, src SegmentSource, opts UploadOptions, ids []int64) *serveHarness {
	t.Helper()
	return newServeHarnessOn(t, newServeAPI(), src, opts, ids)
}

// newServeHarnessOn is newServeHarness with both peers made by api.
func newServeHarnessOn(t testing.TB, api *webrtc.API, src SegmentSource, opts UploadOptions, ids []int64) *serveHarness {
	t.Helper()
	h := &serveHarness{t: t, msgs: make(chan []byte, 8192), release: make(chan struct{})}
	var err error
	if h.client, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatalf("client pc: %v", err)
	}
	if h.server, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatalf("server pc: %v", err)
	}
	t.Cleanup(h.close)

	type started struct {
		dc   *webrtc.DataChannel
		sess *UploadSession
		err  error
	}
	startedCh := make(chan started, 1)
	h.server.OnDataChannel(func(dc *webrtc.DataChannel) {
		sess, err := NewUploadSession(dc, src, ids, opts)
		startedCh <- started{dc, sess, err}
	})
	if h.cdc, err = h.client.CreateDataChannel(strings.Repeat("ab", 20), nil); err != nil {
		t.Fatalf("create channel: %v", err)
	}
	opened := make(chan struct{})
	h.cdc.OnOpen(func() { close(opened) })
	h.cdc.OnMessage(func(m webrtc.DataChannelMessage) {
		h.msgs <- m.Data
		if d := h.payloadDelay.Load(); d > 0 && !IsCommandFrame(m.Data) {
			time.Sleep(time.Duration(d))
		}
		if !IsCommandFrame(m.Data) && h.blockOnPayload.Load() {
			<-h.release
		}
	})

	exchange := func(from, to *webrtc.PeerConnection, offer bool) {
		var sd webrtc.SessionDescription
		if offer {
			sd, err = from.CreateOffer(nil)
		} else {
			sd, err = from.CreateAnswer(nil)
		}
		if err != nil {
			t.Fatalf("create sdp: %v", err)
		}
		gathered := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(sd); err != nil {
			t.Fatalf("set local: %v", err)
		}
		<-gathered
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			t.Fatalf("set remote: %v", err)
		}
	}
	exchange(h.client, h.server, true)
	exchange(h.server, h.client, false)

	select {
	case s := <-startedCh:
		if s.err != nil {
			t.Fatalf("start session: %v", s.err)
		}
		h.sdc, h.sess = s.dc, s.sess
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no data channel")
	}
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("client channel did not open")
	}
	return h
}

func (h *serveHarness) unblock() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *serveHarness) close() {
	h.unblock()
	if h.sess != nil {
		_ = h.sess.Close()
	}
	_ = h.client.Close()
	_ = h.server.Close()
}

// next returns the next message the client received.
func (h *serveHarness) next() []byte {
	h.t.Helper()
	select {
	case m := <-h.msgs:
		return m
	case <-time.After(5 * time.Second):
		h.t.Fatal("timed out waiting for a message")
		return nil
	}
}

// nextCommand returns the next message, which must be a single-frame
// command.
func (h *serveHarness) nextCommand() Command {
	h.t.Helper()
	m := h.next()
	if !IsCommandFrame(m) {
		h.t.Fatalf("got %d-byte payload, want a command", len(m))
	}
	cmd, err := Decode(m[4 : len(m)-4])
	if err != nil {
		h.t.Fatalf("decode %x: %v", m, err)
	}
	return cmd
}

func (h *serveHarness) send(cmd Command) {
	h.t.Helper()
	frames, err := Encode(cmd, 0)
	if err != nil {
		h.t.Fatalf("encode: %v", err)
	}
	for _, f := range frames {
		h.sendRaw(f)
	}
}

func (h *serveHarness) sendRaw(b []byte) {
	h.t.Helper()
	if err := h.cdc.Send(b); err != nil {
		h.t.Fatalf("send: %v", err)
	}
}

// receiveSegment reads a header for (id, rid), the payload it announces
// and the completion, and returns the payload and chunk sizes. Messages
// before the header (stale chunks) are skipped, as the client does.
func (h *serveHarness) receiveSegment(id, rid int64) ([]byte, []int) {
	h.t.Helper()
	var hdr SegmentData
	for {
		m := h.next()
		if !IsCommandFrame(m) {
			continue
		}
		cmd, err := Decode(m[4 : len(m)-4])
		if err != nil {
			h.t.Fatalf("decode: %v", err)
		}
		switch c := cmd.(type) {
		case SegmentData:
			if c.ID == id && c.RequestID == rid {
				hdr = c
			}
		case SegmentDataSendingCompleted, SegmentAbsent:
			h.t.Fatalf("got %#v before the header of %d/%d", c, id, rid)
		}
		if hdr.RequestID == rid && hdr.ID == id {
			break
		}
	}
	var got []byte
	var sizes []int
	for int64(len(got)) < hdr.Size {
		m := h.next()
		if IsCommandFrame(m) {
			h.t.Fatalf("command %x after %d of %d payload bytes", m, len(got), hdr.Size)
		}
		got = append(got, m...)
		sizes = append(sizes, len(m))
	}
	if int64(len(got)) != hdr.Size {
		h.t.Fatalf("payload %d bytes, header said %d", len(got), hdr.Size)
	}
	if c, ok := h.nextCommand().(SegmentDataSendingCompleted); !ok || c.ID != id || c.RequestID != rid {
		h.t.Fatalf("got %#v, want completion of %d/%d", c, id, rid)
	}
	return got, sizes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeAnnounce(t *testing.T) {
	h := newServeHarness(t, serveTestSource(nil), UploadOptions{}, []int64{1002, 1000, 1001, 1001})
	first := h.next()
	// §7.4: {c:0,l:[1000,1001,1002]}.
	if want, _ := hex.DecodeString("63737472006c1001020303e8e9ea63656e64"); !bytes.Equal(first, want) {
		t.Fatalf("announcement on open = %x, want %x", first, want)
	}

	// 300 entries inside block 0 (256 distinct ids plus duplicates): the
	// block may carry at most 255 ids, so the lowest is left out.
	ids := make([]int64, 0, 300)
	for i := range 300 {
		ids = append(ids, int64(i%256))
	}
	omitted, err := h.sess.Announce(ids)
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	if len(omitted.Loaded) != 1 || omitted.Loaded[0] != 0 {
		t.Fatalf("omitted %v, want [0]", omitted.Loaded)
	}
	a, ok := h.nextCommand().(SegmentsAnnouncement)
	if !ok || len(a.Loaded) != 255 || a.Loaded[0] != 1 || a.Loaded[254] != 255 || len(a.HTTPLoading) != 0 {
		t.Fatalf("announcement %d ids %v", len(a.Loaded), a.Loaded)
	}

	if _, err := h.sess.Announce(nil); err != nil {
		t.Fatalf("announce empty: %v", err)
	}
	if m := h.next(); hex.EncodeToString(m) != "637374720063656e64" {
		t.Fatalf("empty announcement = %x", m)
	}
}

func TestServeSegmentTranscript(t *testing.T) {
	data := serveTestData(150000)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1002: data}), UploadOptions{}, []int64{1002})
	h.nextCommand() // announcement
	h.send(SegmentRequest{ID: 1002, RequestID: 925})
	// §7.4: the header bytes exactly.
	hdr := h.next()
	if got := hex.EncodeToString(hdr); got != "6373747202690203ea73030249f07202039d63656e64" {
		t.Fatalf("header = %s", got)
	}
	var got []byte
	for _, want := range []int{65535, 65535, 18930} {
		m := h.next()
		if len(m) != want || IsCommandFrame(m) {
			t.Fatalf("chunk of %d bytes, want %d", len(m), want)
		}
		got = append(got, m...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("reassembled payload differs")
	}
	if m := hex.EncodeToString(h.next()); m != "6373747203690203ea7202039d63656e64" {
		t.Fatalf("completion = %s", m)
	}
	if st := h.sess.Stats(); st.Completed != 1 || st.BytesSent != 150000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeResume(t *testing.T) {
	data := serveTestData(150000)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{7: data}), UploadOptions{}, []int64{7})
	h.nextCommand()
	h.send(SegmentRequest{ID: 7, RequestID: 37, ByteFrom: 65535})
	got, sizes := h.receiveSegment(7, 37)
	if !bytes.Equal(got, data[65535:]) || len(sizes) != 2 {
		t.Fatalf("resume: %d bytes in chunks %v", len(got), sizes)
	}
	// b == len: an empty payload, then the completion.
	h.send(SegmentRequest{ID: 7, RequestID: 38, ByteFrom: 150000})
	if c, ok := h.nextCommand().(SegmentData); !ok || c.Size != 0 || c.RequestID != 38 {
		t.Fatalf("header %#v", c)
	}
	if c, ok := h.nextCommand().(SegmentDataSendingCompleted); !ok || c.RequestID != 38 {
		t.Fatalf("completion %#v", c)
	}
}

func TestServeAbsent(t *testing.T) {
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: serveTestData(3000)}),
		UploadOptions{LookupTimeout: 200 * time.Millisecond}, []int64{1})
	h.nextCommand()
	for _, req := range []SegmentRequest{
		{ID: 2, RequestID: 1},                 // unknown
		{ID: 1, RequestID: 2, ByteFrom: 3001}, // b > len
		{ID: 1, RequestID: 3, ByteFrom: -5},   // negative b
		{ID: -1, RequestID: 4},                // negative id
		{ID: MaxSafeInteger, RequestID: 5},    // huge id
		{ID: 666, RequestID: 6},               // source error
		{ID: 777, RequestID: 7},               // lookup deadline
	} {
		start := time.Now()
		h.send(req)
		c, ok := h.nextCommand().(SegmentAbsent)
		if !ok || c.ID != req.ID || c.RequestID != req.RequestID {
			t.Fatalf("request %+v: got %#v, want SegmentAbsent", req, c)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("request %+v answered after %v", req, el)
		}
	}
	// The session still serves.
	h.send(SegmentRequest{ID: 1, RequestID: 8})
	if got, _ := h.receiveSegment(1, 8); len(got) != 3000 {
		t.Fatalf("got %d bytes", len(got))
	}
}

// startBlockedUpload requests a large segment and returns once the client
// holds its first chunk and the server is paused by flow control.
func (h *serveHarness) startBlockedUpload(id, rid int64) {
	h.t.Helper()
	h.blockOnPayload.Store(true)
	h.send(SegmentRequest{ID: id, RequestID: rid})
	if c, ok := h.nextCommand().(SegmentData); !ok || c.RequestID != rid {
		h.t.Fatalf("header %#v", c)
	}
	if m := h.next(); IsCommandFrame(m) {
		h.t.Fatal("want a payload chunk")
	}
}

func TestServeCancel(t *testing.T) {
	big := serveTestData(8 << 20)
	small := serveTestData(3000)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: big, 2: small}),
		UploadOptions{HighWaterMark: 256 << 10, LowWaterMark: 64 << 10}, []int64{1, 2})
	h.nextCommand()
	h.startBlockedUpload(1, 100)
	h.send(CancelSegmentRequest{ID: 1, RequestID: 100})
	waitFor(t, "the cancel to stop the upload", func() bool { return h.sess.Stats().Aborted == 1 })
	h.blockOnPayload.Store(false)
	h.unblock()
	h.send(SegmentRequest{ID: 2, RequestID: 101})
	// Everything up to the next header must be stale payload: no
	// completion for request 100.
	got, _ := h.receiveSegment(2, 101)
	if !bytes.Equal(got, small) {
		t.Fatal("second request payload differs")
	}
	if st := h.sess.Stats(); st.Completed != 1 || st.BytesSent >= uint64(len(big)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeNewestRequestWins(t *testing.T) {
	big := serveTestData(8 << 20)
	small := serveTestData(3000)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: big, 2: small}),
		UploadOptions{HighWaterMark: 256 << 10, LowWaterMark: 64 << 10}, []int64{1, 2})
	h.nextCommand()
	h.startBlockedUpload(1, 200)
	h.send(SegmentRequest{ID: 2, RequestID: 201})
	waitFor(t, "the new request to stop the upload", func() bool { return h.sess.Stats().Aborted == 1 })
	h.blockOnPayload.Store(false)
	h.unblock()
	if got, _ := h.receiveSegment(2, 201); !bytes.Equal(got, small) {
		t.Fatal("second request payload differs")
	}
	if st := h.sess.Stats(); st.Completed != 1 || st.Requests != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeHostileInput(t *testing.T) {
	data := serveTestData(3000)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: data}),
		UploadOptions{MaxRequestsPerSecond: 5, RequestBurst: 5}, []int64{1})
	h.nextCommand()
	h.sendRaw([]byte("hello, not a command"))                                                             // payload: ignored
	h.sendRaw([]byte("dstr\x01\x69\x01\x01dend"))                                                         // continuation without a first frame
	h.sendRaw([]byte("cstr\x01\x69\x31\x00cend"))                                                         // type nibble 3: decode error
	h.sendRaw(append([]byte("cstr\x01\x69\x0f"), make([]byte, 19)...))                                    // truncated, not a frame
	h.sendRaw([]byte("cstr\x01\x69\x0f\x7f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffcend")) // out of range
	h.sendRaw([]byte("cstr\xffcend"))                                                                     // unknown command: ignored
	h.send(SegmentsAnnouncement{Loaded: []int64{5, 6}})                                                   // browser announcement: ignored
	oversized := append([]byte("cstr"), make([]byte, 70000)...)
	h.sendRaw(append(oversized, "dend"...)) // beyond the Joiner cap
	h.sendRaw([]byte("dstr\x00cend"))
	waitFor(t, "garbage to be counted", func() bool {
		st := h.sess.Stats()
		return st.PayloadIgnored == 2 && st.BadFrames == 3 && st.BadCommands == 2
	})
	h.send(SegmentRequest{ID: 1, RequestID: 1})
	if got, _ := h.receiveSegment(1, 1); !bytes.Equal(got, data) {
		t.Fatal("payload differs after garbage")
	}

	// A flood: the rate cap drops most requests, newest wins for the
	// rest, and the session survives.
	for i := range 50 {
		h.send(SegmentRequest{ID: 9, RequestID: int64(i)})
	}
	waitFor(t, "the flood to be counted", func() bool {
		st := h.sess.Stats()
		return st.Requests+st.RateLimited == 51
	})
	if st := h.sess.Stats(); st.RateLimited < 40 {
		t.Fatalf("rate cap let through %d of 50 requests", 50-st.RateLimited)
	}
	time.Sleep(time.Second) // refill
	for {
		cmd := h.nextCommand()
		if _, ok := cmd.(SegmentAbsent); !ok {
			t.Fatalf("flood answered with %#v", cmd)
		}
		if len(h.msgs) == 0 {
			break
		}
	}
	h.send(SegmentRequest{ID: 1, RequestID: 999})
	if got, _ := h.receiveSegment(1, 999); !bytes.Equal(got, data) {
		t.Fatal("payload differs after flood")
	}
}

// Announcements to a peer that does not read are not queued in our memory:
// while the channel's buffer is above the high-water mark only the newest
// list is kept, and it goes out once the peer reads again.
func TestServeAnnounceToSlowReader(t *testing.T) {
	const size = 12 << 20
	// A fixed window, so that the stalled upload fills the buffer to
	// HighWaterMark, where announcements are held back.
	opts := UploadOptions{MinHighWaterMark: DefaultHighWaterMark}
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: serveTestData(size)}), opts, []int64{1})
	h.nextCommand()
	h.startBlockedUpload(1, 5)
	// The peer's receive window fills first; then our buffer stays full.
	var sent uint64
	waitFor(t, "the upload to stall", func() bool {
		prev := sent
		sent = h.sess.Stats().BytesSent
		time.Sleep(200 * time.Millisecond)
		return sent == prev && h.sdc.BufferedAmount() > DefaultHighWaterMark
	})
	ids := make([]int64, 5000) // about 20 KB per announcement
	for i := range ids {
		ids[i] = int64(i)
	}
	for round := range 200 {
		ids[0] = int64(10000 + round)
		if _, err := h.sess.Announce(ids); err != nil {
			t.Fatal(err)
		}
	}
	limit := uint64(DefaultHighWaterMark + DefaultMaxMessageSize + 4<<10)
	if b := h.sdc.BufferedAmount(); b > limit {
		t.Fatalf("200 announcements to a peer that is not reading: %d bytes buffered, limit %d", b, limit)
	}
	h.blockOnPayload.Store(false)
	h.unblock()
	var last SegmentsAnnouncement
	announcements := 0
	deadline := time.After(30 * time.Second)
	for last.Loaded == nil || last.Loaded[len(last.Loaded)-1] != 10199 {
		var m []byte
		select {
		case m = <-h.msgs:
		case <-deadline:
			t.Fatalf("the newest announcement never arrived (%d announcements seen)", announcements)
		}
		if !IsCommandFrame(m) {
			continue
		}
		if cmd, err := Decode(m[4 : len(m)-4]); err == nil {
			if a, ok := cmd.(SegmentsAnnouncement); ok {
				announcements++
				last = a
			}
		}
	}
	if announcements > 2 {
		t.Errorf("the peer got %d announcements after reading again, want the newest only", announcements)
	}
}

// A peer that announces nonstop has its announcements dropped, undecoded,
// beyond the announcement rate cap; the ones within it still arrive.
func TestServeAnnouncementFlood(t *testing.T) {
	var seen atomic.Int64
	opts := UploadOptions{OnAnnouncement: func(SegmentsAnnouncement) { seen.Add(1) }}
	h := newServeHarness(t, serveTestSource(nil), opts, nil)
	h.nextCommand()
	ids := make([]int64, 2000)
	for i := range ids {
		ids[i] = int64(i)
	}
	a, _ := BuildAnnouncement(ids, nil)
	start := time.Now()
	const sent = 400
	for range sent {
		h.send(a)
	}
	waitFor(t, "every announcement to be handled", func() bool {
		return seen.Load()+int64(h.sess.Stats().AnnouncementsDropped) == sent
	})
	allowed := announcementBurst + maxAnnouncementsPerSecond*time.Since(start).Seconds() + 1
	if n := float64(seen.Load()); n > allowed || n < announcementBurst {
		t.Errorf("%v of %d announcements handled, want between %d and %.0f", n, sent, announcementBurst, allowed)
	}
	time.Sleep(100 * time.Millisecond) // a few tokens come back
	before := seen.Load()
	h.send(a)
	waitFor(t, "an announcement after the flood", func() bool { return seen.Load() == before+1 })
}

func TestServeSlowReader(t *testing.T) {
	const size = 12 << 20
	data := serveTestData(size)
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: data}), UploadOptions{}, []int64{1})
	h.nextCommand()
	h.startBlockedUpload(1, 5)
	// The client reads nothing now. Watch the server's send buffer.
	var maxBuffered uint64
	for range 100 {
		maxBuffered = max(maxBuffered, h.sdc.BufferedAmount())
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("client not reading: max BufferedAmount %d, bytes sent %d", maxBuffered, h.sess.Stats().BytesSent)
	limit := uint64(DefaultHighWaterMark + DefaultMaxMessageSize + 4<<10) // plus room for command frames
	if maxBuffered > limit {
		t.Fatalf("buffered %d bytes, flow control limit %d", maxBuffered, limit)
	}
	// Bytes handed to pion: the client's receive window (1 MiB) plus our
	// high-water mark and a chunk, nowhere near the 12 MiB segment.
	if sent := h.sess.Stats().BytesSent; sent > 4<<20 {
		t.Fatalf("%d bytes sent to a client that is not reading", sent)
	}
	h.blockOnPayload.Store(false)
	h.unblock()
	resumed := time.Now()
	defer func() { t.Logf("rest of the segment took %v after the client resumed", time.Since(resumed)) }()
	var n int
	for {
		m := h.next()
		if IsCommandFrame(m) {
			if c, err := Decode(m[4 : len(m)-4]); err != nil || c.Type() != TypeSegmentDataSendingCompleted {
				t.Fatalf("got %x", m)
			}
			break
		}
		n += len(m)
	}
	if n != size-DefaultMaxMessageSize {
		t.Fatalf("received %d bytes after the first chunk, want %d", n, size-DefaultMaxMessageSize)
	}
}

// The session sizes its send window from what the upload shows, floored
// at its share of the shared window: with three other uploads running
// under the same budget, a 12 MiB upload on loopback ends with a window
// moved from where it started, not below its quarter share, and every
// byte arrives.
func TestServeSendWindowMoves(t *testing.T) {
	const size = 12 << 20
	data := serveTestData(size)
	budget := NewUploadBudget(0, 0)
	for range 3 {
		budget.TryAcquire()
	}
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: data}), UploadOptions{Budget: budget}, []int64{1})
	h.nextCommand()
	start := h.sess.SendWindow()
	if start != DefaultHighWaterMark/4 {
		t.Fatalf("window starts at %d, want %d", start, DefaultHighWaterMark/4)
	}
	h.send(SegmentRequest{ID: 1, RequestID: 1})
	if got, _ := h.receiveSegment(1, 1); !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, want the %d-byte segment", len(got), size)
	}
	w := h.sess.SendWindow()
	t.Logf("send window after a %d-byte upload on loopback: %d", size, w)
	if share := uint64(DefaultSharedWindow / 4); w == start || w < share || w > DefaultHighWaterMark {
		t.Fatalf("window %d after the upload: want it moved from %d, within %d..%d",
			w, start, share, DefaultHighWaterMark)
	}
}

// On a path with a long round trip the window grows with the path's
// bandwidth-delay product, so that a single peer is not held to
// window/RTT: pion's virtual network delays every packet by 25 ms each way
// (its own speed, a few MB/s, is the bottleneck).
func TestServeSendWindowGrowsOnALongPath(t *testing.T) {
	router, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR: "10.0.0.0/24", MinDelay: 25 * time.Millisecond, LoggerFactory: logging.NewDefaultLoggerFactory(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// One Net for both peers: each packet still crosses the router.
	vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := router.AddNet(vn); err != nil {
		t.Fatal(err)
	}
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = router.Stop() })
	var se webrtc.SettingEngine
	se.SetNet(vn)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSCTPRTOMax(500 * time.Millisecond)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))

	const size = 8 << 20
	data := serveTestData(size)
	h := newServeHarnessOn(t, api, serveTestSource(map[int64][]byte{1: data}), UploadOptions{}, []int64{1})
	h.nextCommand()
	start := h.sess.SendWindow()
	began := time.Now()
	h.send(SegmentRequest{ID: 1, RequestID: 1})
	if got, _ := h.receiveSegment(1, 1); !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, want the %d-byte segment", len(got), size)
	}
	elapsed := time.Since(began)
	w := h.sess.SendWindow()
	// The average rate includes the ramp, so it understates the rate
	// the window reached; the window must still cover one and a half
	// times the bandwidth-delay product at it (the window aims at two).
	bdp := float64(size) / elapsed.Seconds() * 0.050
	t.Logf("50 ms round trip: %d bytes in %v (bandwidth-delay product %.0f B), window %d -> %d", size, elapsed, bdp, start, w)
	if float64(w) < 1.5*bdp {
		t.Fatalf("window %d after %d bytes over a 50 ms round trip at %.1f MB/s, want at least %.0f",
			w, size, float64(size)/elapsed.Seconds()/1e6, 1.5*bdp)
	}
}

func TestServeStallTimeout(t *testing.T) {
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: serveTestData(8 << 20), 2: serveTestData(10)}),
		UploadOptions{StallTimeout: 300 * time.Millisecond}, []int64{1, 2})
	h.nextCommand()
	h.startBlockedUpload(1, 1)
	waitFor(t, "the stalled upload to be abandoned", func() bool { return h.sess.Stats().Aborted == 1 })
	h.blockOnPayload.Store(false)
	h.unblock()
	// Let the stale chunks drain so that the next upload does not stall.
	waitFor(t, "the send buffer to drain", func() bool { return h.sdc.BufferedAmount() == 0 })
	h.send(SegmentRequest{ID: 2, RequestID: 2})
	if got, _ := h.receiveSegment(2, 2); len(got) != 10 {
		t.Fatalf("got %d bytes", len(got))
	}
	if st := h.sess.Stats(); st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A peer that reads slowly but steadily is not stalled, however long the
// window takes to drain: with a fixed 1 MiB window resuming at 64 KiB and
// a client reading about 0.8 MB/s, each pause lasts longer than the 1 s
// stall timeout, yet bytes are acknowledged throughout, and the upload
// completes.
func TestServeSlowProgressIsNotAStall(t *testing.T) {
	const size = 2 << 20
	data := serveTestData(size)
	opts := UploadOptions{MinHighWaterMark: DefaultHighWaterMark, LowWaterMark: 64 << 10, StallTimeout: time.Second}
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: data}), opts, []int64{1})
	h.nextCommand()
	h.payloadDelay.Store(int64(80 * time.Millisecond))
	h.send(SegmentRequest{ID: 1, RequestID: 1})
	began := time.Now()
	if got, _ := h.receiveSegment(1, 1); !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, want the %d-byte segment (stats %+v)", len(got), size, h.sess.Stats())
	}
	t.Logf("%d bytes to a slow reader in %v", size, time.Since(began))
	if st := h.sess.Stats(); st.Completed != 1 || st.Aborted != 0 {
		t.Fatalf("stats %+v, want one completed upload and none aborted", st)
	}
}

func serveSessionGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*UploadSession).run")
}

func TestServeCloseEndsGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newServeHarness(t, serveTestSource(map[int64][]byte{1: serveTestData(3000)}), UploadOptions{}, []int64{1})
	h.nextCommand()
	h.send(SegmentRequest{ID: 1, RequestID: 1})
	h.receiveSegment(1, 1)
	if serveSessionGoroutines() != 1 {
		t.Fatal("session goroutine not running")
	}
	if err := h.sess.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-h.sess.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if n := serveSessionGoroutines(); n != 0 {
		t.Fatalf("%d session goroutines after Close", n)
	}
	h.close()
	waitFor(t, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})
	t.Logf("goroutines: baseline %d, after close %d", baseline, runtime.NumGoroutine())
}

func TestServePeerCloseEndsSession(t *testing.T) {
	h := newServeHarness(t, serveTestSource(nil), UploadOptions{}, nil)
	h.nextCommand()
	if err := h.client.Close(); err != nil {
		t.Fatalf("client close: %v", err)
	}
	select {
	case <-h.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session still running after the peer closed")
	}
}

func TestServeOwnPeerConnectionCloseEndsSession(t *testing.T) {
	h := newServeHarness(t, serveTestSource(nil), UploadOptions{}, nil)
	h.nextCommand()
	if err := h.server.Close(); err != nil {
		t.Fatalf("server close: %v", err)
	}
	select {
	case <-h.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session still running after its PeerConnection closed")
	}
}

// TestServeUploadBudget: sessions sharing a budget of one upload answer a
// second concurrent request with SegmentAbsent at once, and serve again
// once the slot is free; the byte rate paces a transfer.
// newSlotTakenPair starts two sessions that share a budget of one upload
// slot and both announce segments 1 (8 MiB) and 2 (3,000 bytes); a's
// upload of segment 1 (request 100) holds the slot, blocked in the client.
func newSlotTakenPair(t *testing.T) (budget *UploadBudget, a, b *serveHarness) {
	t.Helper()
	budget = NewUploadBudget(1, 0)
	src := serveTestSource(map[int64][]byte{1: serveTestData(8 << 20), 2: serveTestData(3000)})
	opts := UploadOptions{HighWaterMark: 256 << 10, LowWaterMark: 64 << 10, Budget: budget}
	a = newServeHarness(t, src, opts, []int64{1, 2})
	b = newServeHarness(t, src, opts, []int64{1, 2})
	a.nextCommand()
	b.nextCommand()
	a.startBlockedUpload(1, 100)
	return budget, a, b
}

func TestServeUploadBudget(t *testing.T) {
	small := serveTestData(3000)
	budget, a, b := newSlotTakenPair(t)
	b.send(SegmentRequest{ID: 2, RequestID: 1})
	if c, ok := b.nextCommand().(SegmentAbsent); !ok || c.RequestID != 1 {
		t.Fatalf("over budget: got %#v, want SegmentAbsent", c)
	}
	if st := b.sess.Stats(); st.OverBudget != 1 {
		t.Fatalf("stats %+v", st)
	}
	a.send(CancelSegmentRequest{ID: 1, RequestID: 100})
	waitFor(t, "the slot to be released", func() bool { return budget.Running() == 0 })
	b.send(SegmentRequest{ID: 2, RequestID: 2})
	if got, _ := b.receiveSegment(2, 2); !bytes.Equal(got, small) {
		t.Fatal("payload differs")
	}
	a.unblock()

	// 300 KiB at 100 KiB/s with a burst of 100 KiB takes about 2 s.
	paced := NewUploadBudget(0, 100<<10)
	c := newServeHarness(t, serveTestSource(map[int64][]byte{3: serveTestData(300 << 10)}), UploadOptions{Budget: paced}, []int64{3})
	c.nextCommand()
	start := time.Now()
	c.send(SegmentRequest{ID: 3, RequestID: 1})
	if got, _ := c.receiveSegment(3, 1); len(got) != 300<<10 {
		t.Fatalf("got %d bytes", len(got))
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("300 KiB at 100 KiB/s took %v", el)
	}
}

// An Absent for an announced segment (here: no upload slot free) is
// temporary, but the browser deletes the id from its copy of the list on
// Absent: the session announces its list again reannounceAfterAbsent
// later. An Absent for an id it never announced changes nothing.
func TestServeReannouncesAfterAbsent(t *testing.T) {
	_, a, b := newSlotTakenPair(t)
	defer a.unblock()

	b.send(SegmentRequest{ID: 7, RequestID: 1}) // never announced
	if c, ok := b.nextCommand().(SegmentAbsent); !ok || c.ID != 7 {
		t.Fatalf("unknown id: got %#v, want SegmentAbsent", c)
	}
	select {
	case m := <-b.msgs:
		t.Fatalf("an Absent for an unannounced id was followed by a %d-byte message", len(m))
	case <-time.After(reannounceAfterAbsent + 300*time.Millisecond):
	}
	start := time.Now()
	b.send(SegmentRequest{ID: 2, RequestID: 2}) // announced, over budget
	if c, ok := b.nextCommand().(SegmentAbsent); !ok || c.ID != 2 {
		t.Fatalf("over budget: got %#v, want SegmentAbsent", c)
	}
	c, ok := b.nextCommand().(SegmentsAnnouncement)
	if !ok || !slices.Contains(c.Loaded, 2) {
		t.Fatalf("after the Absent: got %#v, want the announcement with id 2", c)
	}
	if el := time.Since(start); el < reannounceAfterAbsent/2 {
		t.Errorf("announced again after %v, want about %v", el, reannounceAfterAbsent)
	}
	// Only one re-announcement per Absent: nothing else arrives.
	select {
	case m := <-b.msgs:
		t.Fatalf("unexpected %d-byte message after the re-announcement", len(m))
	case <-time.After(reannounceAfterAbsent + 500*time.Millisecond):
	}
}

// BenchmarkRequestToHeader measures one request's round trip to its
// SegmentData header between two pion peers in this process, with nothing
// else running: the floor under uploadbench's request-to-first-chunk time.
func BenchmarkRequestToHeader(b *testing.B) {
	h := newServeHarness(b, serveTestSource(map[int64][]byte{1: serveTestData(3000)}),
		UploadOptions{MaxRequestsPerSecond: 1e9, RequestBurst: 1 << 30}, []int64{1})
	h.nextCommand()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.send(SegmentRequest{ID: 1, RequestID: int64(i + 1)})
		h.nextCommand() // header
		b.StopTimer()
		h.next()        // payload
		h.nextCommand() // completion
		b.StartTimer()
	}
}
