package p2p

import (
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// ChannelWindow drives a SendWindow from a pion data channel: it counts the
// bytes handed to the channel, so that what the peer has acknowledged is
// that count minus BufferedAmount; it feeds the window the association's
// smoothed round-trip time and the upload's share of the shared window;
// and it moves the channel's BufferedAmountLowThreshold with the window.
//
// UploadSession uses one per session, and so does p2p/uploadbench's raw
// mode. Begin, Paused, HighWater and MessageLimit belong to the one
// goroutine that sends the uploads; Sending, Acked and Window are safe for
// concurrent use.
type ChannelWindow struct {
	dc     *webrtc.DataChannel
	window *SendWindow
	budget *UploadBudget
	shared uint64

	sent atomic.Uint64 // bytes handed to dc
	high atomic.Uint64 // window.HighWater(), for Window
}

// NewChannelWindow returns the flow control of uploads over dc, sized by
// opts' HighWaterMark, MinHighWaterMark, LowWaterMark, SharedWindow and
// Budget (their defaults if zero), and sets dc's low-water threshold.
func NewChannelWindow(dc *webrtc.DataChannel, opts UploadOptions) *ChannelWindow {
	opts = opts.withDefaults()
	c := &ChannelWindow{
		dc:     dc,
		window: NewSendWindow(opts.MinHighWaterMark, opts.HighWaterMark, opts.LowWaterMark),
		budget: opts.Budget,
		shared: opts.SharedWindow,
	}
	c.high.Store(c.window.HighWater())
	dc.SetBufferedAmountLowThreshold(c.window.LowWater())
	return c
}

// Sending counts n bytes about to be handed to the channel.
func (c *ChannelWindow) Sending(n int) { c.sent.Add(uint64(n)) }

// Acked reports how many bytes handed to the channel the peer has
// acknowledged.
func (c *ChannelWindow) Acked() uint64 {
	sent, buffered := c.sent.Load(), c.dc.BufferedAmount()
	return sent - min(sent, buffered)
}

// Begin is called when an upload starts, with nothing of it in flight: it
// samples the round trip and starts a rate sample.
func (c *ChannelWindow) Begin() {
	now := time.Now()
	c.window.NoteRTT(now, c.smoothedRTT())
	c.window.Start(now, c.Acked())
	c.apply(c.window.SetFloor(c.budget.Share(c.shared)))
}

// Paused is called after each pause of an upload for the buffer to drain:
// it resizes the window from what the pause showed.
func (c *ChannelWindow) Paused() {
	floorMoved := c.window.SetFloor(c.budget.Share(c.shared))
	c.apply(c.window.Observe(time.Now(), c.Acked(), c.smoothedRTT()) || floorMoved)
}

// HighWater is the BufferedAmount above which the upload pauses.
func (c *ChannelWindow) HighWater() uint64 { return c.window.HighWater() }

// MessageLimit is the largest payload message to send next (see
// SendWindow.MessageLimit).
func (c *ChannelWindow) MessageLimit(maxMessage int) int {
	return c.window.MessageLimit(c.dc.BufferedAmount(), maxMessage)
}

// Window reports the current send window.
func (c *ChannelWindow) Window() uint64 { return c.high.Load() }

// smoothedRTT is the smoothed round-trip time of the channel's SCTP
// association (0 before the first sample).
func (c *ChannelWindow) smoothedRTT() time.Duration {
	return time.Duration(c.dc.Transport().Stats().SmoothedRoundTripTime * float64(time.Second))
}

// apply publishes a changed window and moves the low-water threshold.
func (c *ChannelWindow) apply(changed bool) {
	if changed {
		c.high.Store(c.window.HighWater())
		c.dc.SetBufferedAmountLowThreshold(c.window.LowWater())
	}
}
