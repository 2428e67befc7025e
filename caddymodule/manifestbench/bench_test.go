package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if got > c.want || float64(c.want-got) > 0.02*float64(c.want) {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	for _, ns := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<33 + 12345} {
		if v := int64(histValue(histBucket(ns))); v > ns || float64(ns-v) > 0.016*float64(ns) {
			t.Errorf("bucket of %d starts at %d", ns, v)
		}
	}
}

func TestProfilePath(t *testing.T) {
	for in, want := range map[string]string{
		"cpu.pprof":   "cpu.C-vod.pprof",
		"cpu":         "cpu.C-vod",
		"out.d/cpu":   "out.d/cpu.C-vod",
		"/x/cpu.prof": "/x/cpu.C-vod.prof",
	} {
		if got := profilePath(in, "C-vod"); got != want {
			t.Errorf("profilePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRunInProcess runs a tiny benchmark with the load in this process
// and checks that every case served requests without errors.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy")
	}
	o := options{
		duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, conns: 2, rounds: 1,
		segments: 50, liveWindow: 5, logLevel: "ERROR", inproc: true,
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verify.ok() {
		t.Errorf("verification: %+v", rep.Verify.Checks)
	}
	rep.finish()
	for _, cr := range rep.Results {
		if cr.Requests == 0 || cr.Errors != 0 {
			t.Errorf("%s %s: %d requests, %d errors", cr.Case, cr.Playlist, cr.Requests, cr.Errors)
		}
	}
	if len(rep.Ratios) != 4 {
		t.Errorf("%d ratios, want 4", len(rep.Ratios))
	}
	var sb strings.Builder
	if err := rep.writeText(&sb); err != nil || !strings.Contains(sb.String(), "C/A") {
		t.Errorf("text report (%v):\n%s", err, sb.String())
	}
}
