package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// Issue targets.
const (
	targetThroughputRatio = 0.9 // served MB/s at least this fraction of raw
	targetP99MS           = 20  // p99 request-to-first-chunk below this
	targetIdleKiB         = 300 // RSS per idle connected peer at most this

	// noisyOtherCores is the load from other processes above which the
	// throughput ratio is flagged as unreliable.
	noisyOtherCores = 0.25
)

// report is everything the benchmark prints.
type report struct {
	Config config      `json:"config"`
	Seeder *modeResult `json:"seeder"`
	Raw    *modeResult `json:"raw"`
	Ratio  ratios      `json:"seeder_over_raw"`
	// RoundRatios is the seeder/raw throughput ratio of each round, to
	// show how much it moves between rounds.
	RoundRatios []float64      `json:"round_throughput_ratios"`
	Idle        *idleResult    `json:"idle,omitempty"`
	Targets     []target       `json:"targets"`
	Cleanup     *cleanupResult `json:"cleanup,omitempty"`
}

// config describes the run.
type config struct {
	Peers           int     `json:"peers"`
	Segments        int     `json:"segments"`
	SegmentBytes    int     `json:"segment_bytes"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Rounds          int     `json:"rounds"`
	GapSeconds      float64 `json:"gap_seconds"`
	IdlePeers       int     `json:"idle_peers"`
	// Clients is "child process" or "in-process"; CPUValid is false in
	// the latter case, because the server's CPU time then includes the
	// clients'.
	Clients              string  `json:"clients"`
	ClientPID            int     `json:"client_pid,omitempty"`
	CPUValid             bool    `json:"cpu_valid"`
	ServerAddr           string  `json:"server_addr"`
	ServerMux            string  `json:"server_mux"`
	SocketRcvbuf         int     `json:"socket_rcvbuf"`
	SocketSndbuf         int     `json:"socket_sndbuf"`
	SCTPMaxMessageSize   int     `json:"sctp_max_message_size"`
	SCTPRTOMaxMS         int64   `json:"sctp_rto_max_ms"`
	MessageBytes         int     `json:"message_bytes"`
	HighWaterMark        int     `json:"high_water_mark"`
	MinHighWaterMark     int     `json:"min_high_water_mark"`
	SharedWindow         int     `json:"shared_window"`
	LowWaterMark         int     `json:"low_water_mark"`
	RawWindow            string  `json:"raw_window"`
	MaxRequestsPerSecond float64 `json:"max_requests_per_second"`
	PionWebRTC           string  `json:"pion_webrtc"`
	GoVersion            string  `json:"go_version"`
	CPUs                 int     `json:"cpus"`
	LoadAverage          string  `json:"load_average"`
}

// modeResult holds the pooled figures of one mode over every round.
type modeResult struct {
	Mode string `json:"mode"`
	// Seconds is the measured time (client clock), Bytes the payload
	// received in it, MBps their ratio in 10^6 bytes per second.
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
	MBps    float64 `json:"mb_per_s"`
	// ServerCPUSeconds is this process's user+system time over the
	// measured intervals; ServerCPUPercent is relative to one core and
	// CPUSecondsPerGB per 10^9 payload bytes.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	ServerCPUPercent float64 `json:"server_cpu_percent"`
	CPUSecondsPerGB  float64 `json:"server_cpu_seconds_per_gb"`
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	// MachineBusyCores is the whole machine's busy time over the
	// intervals, in cores, and OtherCores the part used by neither this
	// process nor the client process: other work on the machine, which
	// competes for the same cores.
	MachineBusyCores float64 `json:"machine_busy_cores"`
	OtherCores       float64 `json:"other_cores"`
	// P50MS, P99MS and MaxMS are request-to-first-chunk times over
	// Samples requests.
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
	Samples int     `json:"samples"`
	// HeaderP50MS and HeaderP99MS are the times from the same requests
	// to the SegmentData header (seeder mode only): the part of the
	// latency spent before the payload starts.
	HeaderP50MS float64 `json:"header_p50_ms,omitempty"`
	HeaderP99MS float64 `json:"header_p99_ms,omitempty"`
	// SplitP50MS and SplitP99MS split the same times (raw mode only) into
	// the request's way to the server, the server's part and the first
	// chunk's way back to the client, each with its own percentiles (so
	// they need not add up).
	SplitP50MS [3]float64 `json:"split_p50_ms,omitzero"`
	SplitP99MS [3]float64 `json:"split_p99_ms,omitzero"`

	Requests  int64 `json:"requests"`
	Completed int64 `json:"completed"`
	Timeouts  int64 `json:"timeouts"`
	Absent    int64 `json:"absent"`
	Errors    int64 `json:"errors"`
	// UDPRcvbufErrors counts datagrams the kernel dropped for a full
	// socket receive buffer, system-wide, during the intervals.
	UDPRcvbufErrors int64 `json:"udp_rcvbuf_errors"`
	// Sessions sums the UploadSession counters over the intervals (seeder
	// mode only).
	Sessions *p2p.UploadStats `json:"sessions,omitempty"`
	Profile  string           `json:"cpu_profile,omitempty"`

	wallSeconds  float64
	machineBusy  float64
	machineTotal float64
	clientCPU    float64
	latencies    []float64
	headerLat    []float64
	split        [3][]float64
}

// ratios compares the seeder with raw pion.
type ratios struct {
	Throughput float64 `json:"throughput"`
	CPUPerGB   float64 `json:"cpu_per_gb"`
}

// idleResult is the idle-memory phase.
type idleResult struct {
	Peers          int     `json:"peers"`
	ConnectSeconds float64 `json:"connect_seconds"`
	RSSBeforeKiB   int64   `json:"rss_before_kib"`
	RSSAfterKiB    int64   `json:"rss_after_kib"`
	RSSPerPeerKiB  float64 `json:"rss_per_peer_kib"`
	// GoMemPerPeerKiB is the growth of Go heap spans and stacks in use.
	GoMemPerPeerKiB   float64 `json:"go_heap_stacks_per_peer_kib"`
	GoroutinesBefore  int     `json:"goroutines_before"`
	GoroutinesAfter   int     `json:"goroutines_after"`
	GoroutinesPerPeer float64 `json:"goroutines_per_peer"`
	FilesBefore       int     `json:"open_files_before"`
	FilesAfter        int     `json:"open_files_after"`
	// Valid is false when the clients ran in this process, whose memory
	// then holds both ends of every connection.
	Valid bool `json:"valid"`
}

// cleanupResult checks that every goroutine ended.
type cleanupResult struct {
	GoroutinesAtStart int `json:"goroutines_at_start"`
	GoroutinesAtEnd   int `json:"goroutines_at_end"`
}

// target is one issue target and whether the run met it.
type target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Pass  bool    `json:"pass"`
	Note  string  `json:"note,omitempty"`
}

func newReport(o options) *report {
	r := &report{
		Config: config{
			Peers:                o.peers,
			Segments:             o.segments,
			SegmentBytes:         o.size,
			WarmupSeconds:        o.warmup.Seconds(),
			DurationSeconds:      o.duration.Seconds(),
			Rounds:               o.rounds,
			GapSeconds:           o.gap.Seconds(),
			IdlePeers:            o.idle,
			Clients:              "child process",
			CPUValid:             !o.inproc,
			SCTPMaxMessageSize:   sctpMaxMessageSize,
			SCTPRTOMaxMS:         sctpRTOMax.Milliseconds(),
			MessageBytes:         p2p.DefaultMaxMessageSize,
			HighWaterMark:        o.highWater,
			MinHighWaterMark:     o.minHigh,
			SharedWindow:         o.shared,
			LowWaterMark:         o.lowWater,
			RawWindow:            o.rawWindow,
			MaxRequestsPerSecond: o.maxRPS,
			GoVersion:            runtime.Version(),
			CPUs:                 runtime.NumCPU(),
		},
		Seeder: &modeResult{Mode: modeSeeder},
		Raw:    &modeResult{Mode: modeRaw},
	}
	if o.inproc {
		r.Config.Clients = "in-process"
	}
	if r.Config.MaxRequestsPerSecond == 0 {
		r.Config.MaxRequestsPerSecond = p2p.DefaultMaxRequestsPerSecond
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/pion/webrtc/v4" {
				r.Config.PionWebRTC = d.Version
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			r.Config.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return r
}

func (r *report) describeServer(s *server) {
	r.Config.ServerAddr = s.mux.addr.String()
	r.Config.ServerMux = s.mux.kind
	r.Config.SocketRcvbuf, r.Config.SocketSndbuf = s.mux.rcvbuf, s.mux.sndbuf
}

func (r *report) mode(mode string) *modeResult {
	if mode == modeSeeder {
		return r.Seeder
	}
	return r.Raw
}

// add pools one measured interval into m.
func (m *modeResult) add(before, after snapshot, sb, sa p2p.UploadStats, c *clientResult) {
	m.wallSeconds += after.at.Sub(before.at).Seconds()
	m.ServerCPUSeconds += after.cpu - before.cpu
	m.machineBusy += after.machineBusy - before.machineBusy
	m.machineTotal += after.machineTotal - before.machineTotal
	if before.udpDrops >= 0 && after.udpDrops >= 0 {
		m.UDPRcvbufErrors += after.udpDrops - before.udpDrops
	}
	if m.Mode == modeSeeder {
		if m.Sessions == nil {
			m.Sessions = &p2p.UploadStats{}
		}
		s := m.Sessions
		s.Requests += sa.Requests - sb.Requests
		s.RateLimited += sa.RateLimited - sb.RateLimited
		s.Completed += sa.Completed - sb.Completed
		s.Absent += sa.Absent - sb.Absent
		s.Aborted += sa.Aborted - sb.Aborted
		s.BytesSent += sa.BytesSent - sb.BytesSent
		s.PayloadIgnored += sa.PayloadIgnored - sb.PayloadIgnored
		s.BadFrames += sa.BadFrames - sb.BadFrames
		s.BadCommands += sa.BadCommands - sb.BadCommands
		s.SendErrors += sa.SendErrors - sb.SendErrors
	}
	if c == nil {
		return
	}
	m.Seconds += c.Seconds
	m.Bytes += c.Bytes
	m.clientCPU += c.CPUSeconds
	m.latencies = append(m.latencies, c.LatencyMS...)
	m.headerLat = append(m.headerLat, c.HeaderLatencyMS...)
	for i := range m.split {
		m.split[i] = append(m.split[i], c.RawSplitMS[i]...)
	}
	m.Requests += c.Requests
	m.Completed += c.Completed
	m.Timeouts += c.Timeouts
	m.Absent += c.Absent
	m.Errors += c.Errors
}

// finish computes the derived figures; inproc tells that the clients ran
// in this process.
func (m *modeResult) finish(inproc bool) {
	if m.Seconds > 0 {
		m.MBps = float64(m.Bytes) / m.Seconds / 1e6
	}
	if m.wallSeconds > 0 {
		m.ServerCPUPercent = 100 * m.ServerCPUSeconds / m.wallSeconds
		if !inproc {
			// In-process clients have no CPU time of their own.
			m.ClientCPUPercent = 100 * m.clientCPU / m.wallSeconds
		}
	}
	if m.Bytes > 0 {
		m.CPUSecondsPerGB = m.ServerCPUSeconds / (float64(m.Bytes) / 1e9)
	}
	if m.machineTotal > 0 {
		m.MachineBusyCores = m.machineBusy / m.machineTotal * float64(runtime.NumCPU())
		m.OtherCores = m.MachineBusyCores - m.ServerCPUPercent/100
		m.OtherCores -= m.ClientCPUPercent / 100
		m.OtherCores = max(m.OtherCores, 0)
	}
	s := sortedCopy(m.latencies)
	m.Samples = len(s)
	if len(s) > 0 {
		m.P50MS, m.P99MS, m.MaxMS = percentile(s, 0.5), percentile(s, 0.99), s[len(s)-1]
	}
	if h := sortedCopy(m.headerLat); len(h) > 0 {
		m.HeaderP50MS, m.HeaderP99MS = percentile(h, 0.5), percentile(h, 0.99)
	}
	for i, v := range m.split {
		if v := sortedCopy(v); len(v) > 0 {
			m.SplitP50MS[i], m.SplitP99MS[i] = percentile(v, 0.5), percentile(v, 0.99)
		}
	}
}

func (r *report) finishModes() {
	r.Seeder.finish(!r.Config.CPUValid)
	r.Raw.finish(!r.Config.CPUValid)
	r.Ratio.Throughput = ratio(r.Seeder.MBps, r.Raw.MBps)
	r.Ratio.CPUPerGB = ratio(r.Seeder.CPUSecondsPerGB, r.Raw.CPUSecondsPerGB)
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// evaluate compares the figures with the issue targets.
func (r *report) evaluate() {
	tput := target{
		Name:  fmt.Sprintf("served throughput >= %.1fx raw", targetThroughputRatio),
		Value: r.Ratio.Throughput,
		Unit:  "x",
		Pass:  r.Ratio.Throughput >= targetThroughputRatio,
	}
	if other := max(r.Seeder.OtherCores, r.Raw.OtherCores); other > noisyOtherCores {
		// Both ends are CPU-bound on a small machine, so a neighbour's
		// load moves the throughput of whichever mode it overlaps.
		tput.Note = fmt.Sprintf("other load up to %.2f cores: unreliable, compare CPU per GB", other)
	}
	r.Targets = []target{tput, {
		Name:  fmt.Sprintf("p99 request-to-first-chunk < %d ms", targetP99MS),
		Value: r.Seeder.P99MS,
		Unit:  "ms",
		Pass:  r.Seeder.Samples > 0 && r.Seeder.P99MS < targetP99MS,
	}}
	if r.Idle != nil {
		t := target{
			Name:  fmt.Sprintf("<= %d KiB per idle connected peer", targetIdleKiB),
			Value: r.Idle.RSSPerPeerKiB,
			Unit:  "KiB",
			Pass:  r.Idle.RSSPerPeerKiB <= targetIdleKiB,
		}
		if !r.Idle.Valid {
			t.Note = "clients in this process: both ends counted"
		}
		r.Targets = append(r.Targets, t)
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "uploadbench: p2p.UploadSession (seeder) vs raw pion writes, same connections, loopback\n")
	fmt.Fprintf(w, "  pion/webrtc %s, %s, %d CPUs, load average %s at start\n", c.PionWebRTC, c.GoVersion, c.CPUs, c.LoadAverage)
	clients := "clients in a child process"
	if c.ClientPID != 0 {
		clients += fmt.Sprintf(" (pid %d)", c.ClientPID)
	}
	if !c.CPUValid {
		clients = "clients IN THIS PROCESS: server CPU and memory figures include the clients"
	}
	fmt.Fprintf(w, "  %d peers, one server UDP socket %s via %s (SO_RCVBUF %d, SO_SNDBUF %d); %s\n",
		c.Peers, c.ServerAddr, c.ServerMux, c.SocketRcvbuf, c.SocketSndbuf, clients)
	window := fmt.Sprintf("send window %d-%d B, at least a share of %d B", c.MinHighWaterMark, c.HighWaterMark, c.SharedWindow)
	if c.MinHighWaterMark >= c.HighWaterMark {
		window = fmt.Sprintf("fixed send window %d B, resuming at %d B", c.HighWaterMark, c.LowWaterMark)
	}
	rawWindow := "the same"
	if c.RawWindow == "fixed" {
		rawWindow = fmt.Sprintf("fixed at %d B, resuming at %d B", c.HighWaterMark, c.LowWaterMark)
	}
	fmt.Fprintf(w, "  %d segments x %d B; %d-byte messages; %s, raw mode's %s; rate cap %g req/s\n",
		c.Segments, c.SegmentBytes, c.MessageBytes, window, rawWindow, c.MaxRequestsPerSecond)
	fmt.Fprintf(w, "  SCTP max-message-size %d, RTO max %d ms, mDNS off; warm-up %gs, measured %gs per mode per round, %d round(s) in alternating order\n",
		c.SCTPMaxMessageSize, c.SCTPRTOMaxMS, c.WarmupSeconds, c.DurationSeconds, c.Rounds)
	pacing := "back to back (saturating load)"
	if c.GapSeconds > 0 {
		pacing = fmt.Sprintf("with a %gs gap after each", c.GapSeconds)
	}
	fmt.Fprintf(w, "  each peer has one request in flight, %s\n", pacing)
	fmt.Fprintln(w)

	fmt.Fprintf(w, "%-7s %8s %10s %9s %10s %11s %7s %7s %7s %9s %8s %6s %9s\n",
		"mode", "MB/s", "server CPU", "CPU-s/GB", "client CPU", "other load", "p50 ms", "p99 ms", "max ms", "requests", "timeouts", "errors", "UDP drops")
	for _, m := range []*modeResult{r.Seeder, r.Raw} {
		clientCPU := fmt.Sprintf("%.0f%%", m.ClientCPUPercent)
		if !c.CPUValid {
			clientCPU = "in server"
		}
		fmt.Fprintf(w, "%-7s %8.2f %9.0f%% %9.2f %10s %5.2f cores %7.2f %7.2f %7.2f %9d %8d %6d %9d\n",
			m.Mode, m.MBps, m.ServerCPUPercent, m.CPUSecondsPerGB, clientCPU, m.OtherCores,
			m.P50MS, m.P99MS, m.MaxMS, m.Completed, m.Timeouts, m.Errors, m.UDPRcvbufErrors)
	}
	cpuNote := ""
	if !c.CPUValid {
		cpuNote = " (not valid: clients share this process)"
	}
	rounds := make([]string, len(r.RoundRatios))
	for i, v := range r.RoundRatios {
		rounds[i] = fmt.Sprintf("%.3fx", v)
	}
	fmt.Fprintf(w, "seeder/raw: throughput %.3fx (per round: %s), CPU per GB %.3fx%s\n",
		r.Ratio.Throughput, strings.Join(rounds, ", "), r.Ratio.CPUPerGB, cpuNote)
	if m := r.Raw; m.SplitP99MS[0] > 0 {
		fmt.Fprintf(w, "raw request-to-first-chunk, split (p50 / p99 ms): request to the server %.2f / %.2f, in the server %.2f / %.2f, first chunk to the client %.2f / %.2f\n",
			m.SplitP50MS[0], m.SplitP99MS[0], m.SplitP50MS[1], m.SplitP99MS[1], m.SplitP50MS[2], m.SplitP99MS[2])
	}
	if m := r.Seeder; m.HeaderP99MS > 0 {
		fmt.Fprintf(w, "seeder request-to-header: p50 %.2f ms, p99 %.2f ms (the rest of the first-chunk time is the first payload message's transfer, 16-64 KiB)\n",
			m.HeaderP50MS, m.HeaderP99MS)
	}
	if s := r.Seeder.Sessions; s != nil {
		fmt.Fprintf(w, "UploadSessions in the measured intervals: %d requests, %d completed, %d rate-limited, %d absent, %d aborted, %d send errors\n",
			s.Requests, s.Completed, s.RateLimited, s.Absent, s.Aborted, s.SendErrors)
	}
	for _, m := range []*modeResult{r.Seeder, r.Raw} {
		if m.Profile != "" {
			fmt.Fprintf(w, "CPU profile of %s: %s\n", m.Mode, m.Profile)
		}
	}
	fmt.Fprintf(w, "(MB = 10^6 bytes, GB = 10^9 bytes; CPU %% is of one core; other load: cores busy outside both processes;\n latency: request sent to first payload chunk received; requests: completed in the measured intervals)\n")

	if i := r.Idle; i != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "idle: %d peers, each an UploadSession that has sent its announcement, connected in %.1f s\n", i.Peers, i.ConnectSeconds)
		fmt.Fprintf(w, "  VmRSS %.1f -> %.1f MiB: %.0f KiB per peer (Go heap+stacks %.0f KiB per peer)\n",
			float64(i.RSSBeforeKiB)/1024, float64(i.RSSAfterKiB)/1024, i.RSSPerPeerKiB, i.GoMemPerPeerKiB)
		fmt.Fprintf(w, "  goroutines %d -> %d: %.1f per peer; open files %d -> %d\n",
			i.GoroutinesBefore, i.GoroutinesAfter, i.GoroutinesPerPeer, i.FilesBefore, i.FilesAfter)
		if !i.Valid {
			fmt.Fprintf(w, "  (clients in this process: both ends of every connection are counted)\n")
		}
	}

	if len(r.Targets) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "targets")
		for _, t := range r.Targets {
			verdict := "MISS"
			if t.Pass {
				verdict = "PASS"
			}
			val := fmt.Sprintf("%.2f %s", t.Value, t.Unit)
			if t.Unit == "x" {
				val = fmt.Sprintf("%.3fx", t.Value)
			}
			line := fmt.Sprintf("  %-40s %12s  %s", t.Name, val, verdict)
			if t.Note != "" {
				line += "  (" + t.Note + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	if cl := r.Cleanup; cl != nil {
		fmt.Fprintf(w, "\ngoroutines: %d at start, %d after closing every peer\n", cl.GoroutinesAtStart, cl.GoroutinesAtEnd)
	}
}
