package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// PhaseResult holds the measurements of one phase of one tracker.
type PhaseResult struct {
	Name        string  `json:"name"`
	WallSeconds float64 `json:"wall_seconds"`
	// TrackerCPUSeconds is the tracker's user+system CPU time in the phase
	// and TrackerCores the same divided by the wall time.
	TrackerCPUSeconds float64 `json:"tracker_cpu_seconds"`
	TrackerCores      float64 `json:"tracker_cores"`
	// TrackerSysSeconds is the system (kernel) part of TrackerCPUSeconds.
	TrackerSysSeconds float64 `json:"tracker_sys_seconds"`
	// WorkersCPUSeconds is the load generator's CPU time in the phase.
	WorkersCPUSeconds float64 `json:"workers_cpu_seconds"`
	// MachineBusyCores is the average number of busy cores on the whole
	// machine (tracker, generator and everything else running).
	MachineBusyCores float64 `json:"machine_busy_cores"`
	RSSStartKiB      int64   `json:"rss_start_kib"`
	RSSEndKiB        int64   `json:"rss_end_kib"`
	RSSPeakKiB       int64   `json:"rss_peak_kib"`
	Stats            *Stats  `json:"stats"`
}

// TrackerResult holds everything measured for one tracker and the figures
// derived from it.
type TrackerResult struct {
	Name      string        `json:"name"`
	URL       string        `json:"url"`
	FileLimit string        `json:"file_limit"`
	Phases    []PhaseResult `json:"phases"`

	PeersConnected  int64   `json:"peers_connected"`
	PeersAfterLoad  int64   `json:"peers_after_load"`
	ConnectFailures int64   `json:"connect_failures"`
	ConnectSeconds  float64 `json:"connect_seconds"`

	RSSBaseKiB        int64   `json:"rss_base_kib"`
	RSSIdleKiB        int64   `json:"rss_idle_kib"`
	RSSPerIdlePeerKiB float64 `json:"rss_per_idle_peer_kib"`
	RSSPeakKiB        int64   `json:"rss_peak_kib"`
	RSSAfterCloseKiB  int64   `json:"rss_after_close_kib"`

	AnnouncesSentPerSec  float64 `json:"announces_sent_per_sec"`
	AcksPerSec           float64 `json:"acks_per_sec"`
	OffersRelayedPerSec  float64 `json:"offers_relayed_per_sec"`
	AnswersRelayedPerSec float64 `json:"answers_relayed_per_sec"`
	// RelayRatio is relayed offers received over the offers the tracker
	// could relay (5 per announce, fewer in swarms of under 6 peers).
	RelayRatio float64 `json:"relay_ratio"`

	OfferP50MS  float64 `json:"offer_p50_ms"`
	OfferP99MS  float64 `json:"offer_p99_ms"`
	OfferMaxMS  float64 `json:"offer_max_ms"`
	AnswerP50MS float64 `json:"answer_p50_ms"`
	AnswerP99MS float64 `json:"answer_p99_ms"`
	AnswerMaxMS float64 `json:"answer_max_ms"`
	AckP50MS    float64 `json:"ack_p50_ms"`
	AckP99MS    float64 `json:"ack_p99_ms"`
	// SignalP50MS and SignalP99MS time the whole round trip from the
	// announce to the answer arriving back at the offerer.
	SignalP50MS float64 `json:"signal_p50_ms"`
	SignalP99MS float64 `json:"signal_p99_ms"`

	LoadCPUSeconds        float64 `json:"load_cpu_seconds"`
	LoadTrackerCores      float64 `json:"load_tracker_cores"`
	CPUSecondsPer1kOffers float64 `json:"cpu_seconds_per_1k_offers"`
	// AnnouncesPerCore is how many announces (with their relayed offers
	// and answers) one core would handle per second at the measured cost.
	AnnouncesPerCore float64 `json:"announces_per_core"`
	// PeersInMem is how many idle peers the -mem-gib budget would hold at
	// the measured memory per peer.
	PeersInMem float64 `json:"peers_in_mem"`
}

// workerProc is a running load generator process.
type workerProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	stdin   io.WriteCloser
	replies chan workerReply
}

// startWorkers starts o.Workers generator processes for the tracker at url,
// with source addresses prefix+1, prefix+2, ...
func startWorkers(ctx context.Context, o *options, exe, url, prefix string) ([]*workerProc, error) {
	n := o.Workers
	addrs := max(n, (o.Peers+3999)/4000)
	addrs = (addrs + n - 1) / n * n
	if addrs > 250 {
		return nil, errors.New("too many source addresses needed")
	}
	var ws []*workerProc
	first := 0
	for i := range n {
		count := o.Peers / n
		if i < o.Peers%n {
			count++
		}
		cfg := workerConfig{
			ID:          i + 1,
			URL:         url,
			Origin:      o.Origin,
			FirstPeer:   first,
			Peers:       count,
			Swarms:      o.Swarms,
			ConnectRate: o.ConnectRate / float64(n),
			Senders:     o.Senders,
		}
		for j := range addrs / n {
			cfg.LocalAddrs = append(cfg.LocalAddrs, fmt.Sprintf("%s%d", prefix, i*addrs/n+j+1))
		}
		first += count
		wp, err := startWorker(exe, cfg)
		if err != nil {
			stopWorkers(ws)
			return nil, err
		}
		ws = append(ws, wp)
	}
	for i, wp := range ws {
		select {
		case r, ok := <-wp.replies:
			if !ok || r.Type != "ready" {
				stopWorkers(ws)
				return nil, fmt.Errorf("worker %d did not start: %s", i+1, r.Error)
			}
		case <-time.After(30 * time.Second):
			stopWorkers(ws)
			return nil, fmt.Errorf("worker %d did not start within 30 s", i+1)
		case <-ctx.Done():
			stopWorkers(ws)
			return nil, ctx.Err()
		}
	}
	return ws, nil
}

// startWorker starts one generator process and sends it cfg.
func startWorker(exe string, cfg workerConfig) (*workerProc, error) {
	cmd := exec.Command(exe, "-worker")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	allChildren.prepare(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	allChildren.add(cmd)
	wp := &workerProc{cmd: cmd, exited: make(chan struct{}), stdin: stdin, replies: make(chan workerReply, 4)}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		copyLines(os.Stderr, stderr, fmt.Sprintf("[worker %d] ", cfg.ID))
	}()
	go func() {
		defer pipes.Done()
		defer close(wp.replies)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var r workerReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = workerReply{Type: "error", Error: fmt.Sprintf("bad reply %.100q", sc.Bytes())}
			}
			wp.replies <- r
		}
	}()
	go func() {
		// Wait must not close the pipes before they are read to the end.
		pipes.Wait()
		_ = cmd.Wait()
		close(wp.exited)
	}()
	if err := json.NewEncoder(stdin).Encode(cfg); err != nil {
		allChildren.stop(cmd, wp.exited, time.Second)
		return nil, fmt.Errorf("configure worker: %w", err)
	}
	return wp, nil
}

// stopWorkers ends the generator processes: closing stdin makes a worker
// close its sockets and exit; stragglers are killed.
func stopWorkers(ws []*workerProc) {
	for _, wp := range ws {
		_ = wp.stdin.Close()
	}
	deadline := time.After(5 * time.Second)
	for _, wp := range ws {
		select {
		case <-wp.exited:
		case <-deadline:
		}
		allChildren.stop(wp.cmd, wp.exited, 5*time.Second)
	}
}

// command sends cmd to every worker and returns their merged stats once
// all replied.
func command(ctx context.Context, ws []*workerProc, cmd workerCommand, timeout time.Duration) (*Stats, error) {
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	line = append(line, '\n')
	for i, wp := range ws {
		if _, err := wp.stdin.Write(line); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i+1, err)
		}
	}
	total := &Stats{}
	deadline := time.After(timeout)
	for i, wp := range ws {
		select {
		case r, ok := <-wp.replies:
			switch {
			case !ok:
				return nil, fmt.Errorf("worker %d exited during %q", i+1, cmd.Cmd)
			case r.Type == "error":
				return nil, fmt.Errorf("worker %d: %s", i+1, r.Error)
			case r.Type != cmd.Cmd || r.Stats == nil:
				return nil, fmt.Errorf("worker %d: unexpected reply %q to %q", i+1, r.Type, cmd.Cmd)
			}
			total.Merge(r.Stats)
		case <-deadline:
			return nil, fmt.Errorf("workers did not finish %q within %s", cmd.Cmd, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return total, nil
}

// meter samples the tracker and the generator around phases.
type meter struct {
	tracker *trackerProc
	workers []*workerProc
	// workerCPU is the last CPU time read for each worker; a worker that
	// has exited keeps its last value.
	workerCPU []float64
}

// workersCPU returns the generator's total CPU time so far.
func (m *meter) workersCPU() float64 {
	if m.workerCPU == nil {
		m.workerCPU = make([]float64, len(m.workers))
	}
	var cpu float64
	for i, wp := range m.workers {
		if s, err := sampleProc(wp.cmd.Process.Pid); err == nil {
			m.workerCPU[i] = max(m.workerCPU[i], s.CPU)
		}
		cpu += m.workerCPU[i]
	}
	return cpu
}

// sample reads the tracker's counters, failing if it has exited.
func (m *meter) sample() (procSample, error) {
	if !m.tracker.alive() {
		return procSample{}, m.tracker.failure(fmt.Errorf("tracker exited: %v", m.tracker.waitErr))
	}
	s, err := sampleProc(m.tracker.pid())
	if err != nil {
		return s, m.tracker.failure(fmt.Errorf("tracker: %w", err))
	}
	return s, nil
}

// phase runs f, which returns the generator's stats for the phase, and
// records the tracker's CPU and memory around it.
func (m *meter) phase(name string, f func() (*Stats, error)) (PhaseResult, error) {
	r := PhaseResult{Name: name}
	s0, err := m.sample()
	if err != nil {
		return r, err
	}
	w0 := m.workersCPU()
	sys0 := sampleSystem()
	peak := s0.RSSKiB
	var mu sync.Mutex
	done := make(chan struct{})
	var poller sync.WaitGroup
	poller.Add(1)
	go func() {
		defer poller.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s, err := sampleProc(m.tracker.pid()); err == nil {
					mu.Lock()
					peak = max(peak, s.RSSKiB)
					mu.Unlock()
				}
			}
		}
	}()
	st, ferr := f()
	close(done)
	poller.Wait()
	s1, err := m.sample()
	if ferr != nil {
		return r, ferr
	}
	if err != nil {
		return r, err
	}
	sys1 := sampleSystem()
	r.Stats = st
	r.WallSeconds = s1.At.Sub(s0.At).Seconds()
	r.TrackerCPUSeconds = s1.CPU - s0.CPU
	r.TrackerSysSeconds = s1.Sys - s0.Sys
	if r.WallSeconds > 0 {
		r.TrackerCores = r.TrackerCPUSeconds / r.WallSeconds
		r.MachineBusyCores = (sys1.Busy - sys0.Busy) / r.WallSeconds
	}
	r.WorkersCPUSeconds = m.workersCPU() - w0
	r.RSSStartKiB = s0.RSSKiB
	r.RSSEndKiB = s1.RSSKiB
	r.RSSPeakKiB = max(peak, s1.RSSKiB)
	return r, nil
}

// measure runs all phases against one tracker.
func measure(ctx context.Context, o *options, name, exe, dir, prefix string) (*TrackerResult, error) {
	res := &TrackerResult{Name: name}
	var t *trackerProc
	var err error
	logf("%s: starting tracker", name)
	switch name {
	case "ours":
		t, err = startOurs(ctx, o.Ours, o.Caddyfile, o.OursEnv, dir)
	case "btt":
		t, err = startBTT(ctx, o.Node, o.BTT, dir)
	}
	if t != nil {
		defer t.stop()
	}
	if err != nil {
		return nil, err
	}
	res.URL = t.url
	res.FileLimit = procFileLimit(t.pid())
	if err := probe(ctx, t.url, o.Origin); err != nil {
		return nil, t.failure(err)
	}
	logf("%s: %s answers (pid %d, open files limit %s); starting %d workers", name, t.url, t.pid(), res.FileLimit, o.Workers)
	ws, err := startWorkers(ctx, o, exe, t.url, prefix)
	if err != nil {
		return nil, err
	}
	defer stopWorkers(ws)
	m := &meter{tracker: t, workers: ws}

	// Let the tracker settle after start and probe before the baseline.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	connectTime := time.Duration(float64(o.Peers)/o.ConnectRate*float64(time.Second)) + o.Drain + time.Minute
	logf("%s: connecting %d peers at %g/s", name, o.Peers, o.ConnectRate)
	pc, err := m.phase("connect", func() (*Stats, error) {
		return command(ctx, ws, workerCommand{Cmd: "connect", Drain: o.Drain}, connectTime)
	})
	if err != nil {
		return nil, err
	}
	res.Phases = append(res.Phases, pc)
	res.RSSBaseKiB = pc.RSSStartKiB
	res.PeersConnected = pc.Stats.Connected
	res.ConnectFailures = pc.Stats.DialsFailed
	res.ConnectSeconds = pc.WallSeconds
	logf("%s: %d peers connected in %.1f s, %d failed%s", name, pc.Stats.Connected, pc.WallSeconds,
		pc.Stats.DialsFailed, errorSuffix(pc.Stats))
	if pc.Stats.Connected == 0 {
		return res, errors.New("no peer could connect")
	}

	logf("%s: idle for %s", name, o.Idle)
	pi, err := m.phase("idle", func() (*Stats, error) {
		select {
		case <-time.After(o.Idle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return command(ctx, ws, workerCommand{Cmd: "snapshot"}, time.Minute)
	})
	if err != nil {
		return res, err
	}
	res.Phases = append(res.Phases, pi)
	res.RSSIdleKiB = pi.RSSEndKiB
	if pi.Stats.Connected > 0 {
		res.RSSPerIdlePeerKiB = float64(res.RSSIdleKiB-res.RSSBaseKiB) / float64(pi.Stats.Connected)
	}
	logf("%s: idle RSS %.1f MiB (base %.1f MiB): %.2f KiB per peer", name,
		float64(res.RSSIdleKiB)/1024, float64(res.RSSBaseKiB)/1024, res.RSSPerIdlePeerKiB)

	logf("%s: load at %g announces/s for %s", name, o.Rate, o.Duration)
	pl, err := m.phase("load", func() (*Stats, error) {
		return command(ctx, ws, workerCommand{
			Cmd: "load", Rate: o.Rate / float64(len(ws)), Duration: o.Duration, Drain: o.Drain,
		}, o.Duration+o.Drain+time.Minute)
	})
	if err != nil {
		return res, err
	}
	res.Phases = append(res.Phases, pl)
	res.derive(o, pl)
	logf("%s: %.0f announces/s sent, %.0f acked, %.0f offers/s relayed; offer p99 %.2f ms, answer p99 %.2f ms; tracker CPU %.2f s (%.2f cores)%s",
		name, res.AnnouncesSentPerSec, res.AcksPerSec, res.OffersRelayedPerSec, res.OfferP99MS, res.AnswerP99MS,
		pl.TrackerCPUSeconds, pl.TrackerCores, errorSuffix(pl.Stats))

	logf("%s: disconnecting", name)
	pd, err := m.phase("disconnect", func() (*Stats, error) {
		st, err := command(ctx, ws, workerCommand{Cmd: "close"}, time.Minute)
		if err == nil {
			// Give the tracker time to drop the closed peers.
			time.Sleep(2 * time.Second)
		}
		return st, err
	})
	if err != nil {
		return res, err
	}
	res.Phases = append(res.Phases, pd)
	res.RSSAfterCloseKiB = pd.RSSEndKiB
	if s, err := m.sample(); err == nil {
		res.RSSPeakKiB = s.HWMKiB
	}
	return res, nil
}

// derive computes the load-phase figures.
func (r *TrackerResult) derive(o *options, pl PhaseResult) {
	st := pl.Stats
	secs := o.Duration.Seconds()
	r.PeersAfterLoad = st.Connected
	r.AnnouncesSentPerSec = float64(st.AnnouncesSent) / secs
	r.AcksPerSec = float64(st.Acks) / secs
	r.OffersRelayedPerSec = float64(st.OffersReceived) / secs
	r.AnswersRelayedPerSec = float64(st.AnswersReceived) / secs
	if exp := float64(st.AnnouncesSent) * float64(min(offersPerAnnounce, o.Peers/o.Swarms-1)); exp > 0 {
		r.RelayRatio = float64(st.OffersReceived) / exp
	}
	r.OfferP50MS = st.OfferLatency.Quantile(0.5)
	r.OfferP99MS = st.OfferLatency.Quantile(0.99)
	r.OfferMaxMS = float64(st.OfferLatency.MaxUS) / 1000
	r.AnswerP50MS = st.AnswerLatency.Quantile(0.5)
	r.AnswerP99MS = st.AnswerLatency.Quantile(0.99)
	r.AnswerMaxMS = float64(st.AnswerLatency.MaxUS) / 1000
	r.AckP50MS = st.AckLatency.Quantile(0.5)
	r.AckP99MS = st.AckLatency.Quantile(0.99)
	r.SignalP50MS = st.SignalRTT.Quantile(0.5)
	r.SignalP99MS = st.SignalRTT.Quantile(0.99)
	r.LoadCPUSeconds = pl.TrackerCPUSeconds
	r.LoadTrackerCores = pl.TrackerCores
	if st.OffersReceived > 0 {
		r.CPUSecondsPer1kOffers = pl.TrackerCPUSeconds / float64(st.OffersReceived) * 1000
	}
	if pl.TrackerCPUSeconds > 0 {
		r.AnnouncesPerCore = float64(st.Acks) / pl.TrackerCPUSeconds
	}
	if r.RSSPerIdlePeerKiB > 0 {
		r.PeersInMem = o.MemGiB * 1024 * 1024 / r.RSSPerIdlePeerKiB
	}
}

// errorSuffix summarises a phase's errors and failures for a log line.
func errorSuffix(s *Stats) string {
	out := ""
	if len(s.Errors) > 0 {
		out += "; errors: " + topTexts(s.Errors, 3)
	}
	if len(s.Failures) > 0 {
		out += "; failure replies: " + topTexts(s.Failures, 3)
	}
	return out
}
