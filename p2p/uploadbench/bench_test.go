package main

import (
	"context"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := sortedCopy([]float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6})
	for _, c := range []struct {
		q, want float64
	}{{0, 1}, {0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

func TestProfilePath(t *testing.T) {
	for in, want := range map[string]string{
		"cpu.pprof":        "cpu.seeder.pprof",
		"cpu":              "cpu.seeder",
		"out.d/cpu":        "out.d/cpu.seeder",
		"/tmp/x/cpu.pprof": "/tmp/x/cpu.seeder.pprof",
	} {
		if got := profilePath(in, modeSeeder); got != want {
			t.Errorf("profilePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRunInProcess runs a tiny benchmark with the clients in this process
// and checks that both modes moved data, that the client saw no protocol
// error, and that every goroutine ended.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("connects real pion peers")
	}
	o := options{
		role: "server", peers: 1, segments: 4, size: 200 << 10,
		duration: 500 * time.Millisecond, warmup: 200 * time.Millisecond,
		idle: 2, rounds: 1, maxRPS: 1000, inproc: true,
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, m := range []*modeResult{rep.Seeder, rep.Raw} {
		if m.Bytes == 0 || m.Completed == 0 || m.Samples == 0 {
			t.Errorf("%s: %d bytes, %d completed, %d samples", m.Mode, m.Bytes, m.Completed, m.Samples)
		}
		if m.Errors != 0 || m.Timeouts != 0 {
			t.Errorf("%s: %d errors, %d timeouts", m.Mode, m.Errors, m.Timeouts)
		}
	}
	if s := rep.Seeder.Sessions; s == nil || s.Completed == 0 || s.BadCommands != 0 {
		t.Errorf("session stats %+v", s)
	}
	if rep.Idle == nil || rep.Idle.GoroutinesAfter <= rep.Idle.GoroutinesBefore {
		t.Errorf("idle phase %+v", rep.Idle)
	}
	if c := rep.Cleanup; c == nil || c.GoroutinesAtEnd > c.GoroutinesAtStart {
		t.Errorf("goroutines %+v", c)
	}
	if len(rep.Targets) != 3 {
		t.Errorf("%d targets", len(rep.Targets))
	}
}
