// Command uploadbench measures the seeder's upload path, p2p.UploadSession,
// against the cheapest way pion can push the same bytes, in the same run,
// over the same PeerConnections and with the same pion settings, so that
// the ratio isolates what the P2P Media Loader protocol layer costs: the
// framing and decoding of commands, the header and completion around each
// segment, the rate cap, cancellation and the flow-control goroutine. It
// also measures what an idle connected peer costs the seeder in memory and
// goroutines, which bounds how many browsers one seeder can hold.
//
// Usage, from the repository root:
//
//	go run ./p2p/uploadbench              # 8 peers, 2 rounds of 10 s per mode, 200 idle peers
//	go run ./p2p/uploadbench -quick       # CI smoke run: 2 peers, 3 s, 20 idle peers
//	go run ./p2p/uploadbench -json        # machine-readable report on stdout
//	go run ./p2p/uploadbench -gap 200ms   # paced requests instead of a saturating load
//	go run ./p2p/uploadbench -cpuprofile cpu.pprof   # writes cpu.seeder.pprof and cpu.raw.pprof
//	go run ./p2p/uploadbench -plain-mux   # serve through pion's plain UDP mux, for comparison
//
// This process is the seeder. It serves every peer through one UDP socket
// with 4 MiB buffers, as pion-notes §2 and §3 recommend, in the seeder's
// own ICE UDP mux (seeder.NewUDPMux, which yields the processor every few
// packets it sends; -plain-mux uses pion's mux as it comes). The browsers
// are client PeerConnections in a child process (this binary run with
// -role client), so their CPU time is not counted against the seeder; the
// two exchange complete, non-trickle SDP over the child's stdin and stdout.
// Each load peer opens two channels: a P2P Media Loader channel, answered
// by an UploadSession with segments from the seeder's cache, and a raw
// channel.
//
// Two modes then run in turn on those peers, each for a warm-up and a
// measured interval:
//
//   - seeder: each client asks for a random segment with a SegmentRequest,
//     reads the SegmentData header, the payload chunks and
//     SegmentDataSendingCompleted as the browser does, and asks again;
//   - raw: each client sends a one-byte request and the server writes the
//     same segment in messages of at most 65535 bytes with the same
//     BufferedAmount flow control (a p2p.ChannelWindow sized as the
//     UploadSession's, message sizes included, under the same budget; or
//     with -raw-window fixed a fixed window of -high-water bytes resuming
//     at -low-water and 65535-byte messages, the flow control the seeder
//     had before its window), and nothing else.
//
// Each peer keeps one request in flight, as a browser does per connection,
// and by default asks again as soon as a segment is complete, which loads
// the seeder as much as the peers can. A client gives up on a request after
// 2 s without a byte and asks again, as the browser does. The benchmark
// runs -rounds rounds of both modes, alternating which goes first, and
// pools the figures, so that drift in the machine's load and any effect of
// going first weigh on both modes alike. The UploadSession's request rate
// cap is raised to -max-rps: its default of 20 requests per second per
// peer is an abuse limit that back-to-back requests for 1 MiB segments on
// loopback can exceed, and each rate-limited request would cost the client
// a 2 s timeout.
//
// For each mode it reports the payload served per second over all peers
// (MB = 10^6 bytes), the seeder process's CPU seconds per GB served (user
// plus system time from getrusage; valid only when the clients run in the
// child process), the p50 and p99 time from sending a request to receiving
// the first payload chunk (in raw mode also split into the request's way
// to the server, the server's part and the first chunk's way back, on the
// machine's one clock), and the seeder/raw ratios. The machine may be
// shared with other work, so the report also gives the cores busy outside
// both processes during the measured intervals.
//
// An idle phase then connects -idle peers, each with an UploadSession that
// has sent its announcement, and reports the growth of this process's
// resident memory (VmRSS, after two garbage collections and returning
// freed memory to the system) and goroutines per connected peer.
//
// Each figure is printed beside its issue target with PASS or MISS. The
// exit status is 0 whether targets are met or not; it is 1 only when the
// benchmark itself fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// options are the command-line settings.
type options struct {
	role       string
	peers      int
	segments   int
	size       int
	duration   time.Duration
	warmup     time.Duration
	idle       int
	rounds     int
	maxRPS     float64
	gap        time.Duration
	inproc     bool
	plainMux   bool
	quick      bool
	json       bool
	cpuprofile string
	highWater  int
	lowWater   int
	minHigh    int
	shared     int
	rawWindow  string
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.role, "role", "server", "server (the benchmark) or client (the child process it starts)")
	flag.IntVar(&o.peers, "peers", 8, "client PeerConnections carrying the load")
	flag.IntVar(&o.segments, "segments", 16, "segments in the in-memory source (at most 256)")
	flag.IntVar(&o.size, "size", 1<<20, "bytes per segment")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured interval per mode")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measured interval")
	flag.IntVar(&o.idle, "idle", 200, "peers connected for the idle-memory phase (0 skips it)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of both modes; the order alternates and the figures are pooled")
	flag.Float64Var(&o.maxRPS, "max-rps", 1000, "UploadOptions.MaxRequestsPerSecond (0: the p2p default, which back-to-back requests on loopback can exceed)")
	flag.DurationVar(&o.gap, "gap", 0, "pause between a completed request and the next one (0: back to back, saturating)")
	flag.BoolVar(&o.plainMux, "plain-mux", false, "serve through pion's plain ICE UDP mux instead of the seeder's (seeder.NewUDPMux, which yields the processor every few packets)")
	flag.BoolVar(&o.inproc, "inproc", false, "run the clients in this process (CPU and memory figures then include them)")
	flag.BoolVar(&o.quick, "quick", false, "CI smoke run: 2 peers, 3 s per mode, 20 idle peers")
	flag.IntVar(&o.highWater, "high-water", p2p.DefaultHighWaterMark, "largest send window, in bytes buffered in a data channel (UploadOptions.HighWaterMark)")
	flag.IntVar(&o.minHigh, "min-high-water", p2p.DefaultMinHighWaterMark, "smallest send window (UploadOptions.MinHighWaterMark); at -high-water or more the window is fixed")
	flag.IntVar(&o.lowWater, "low-water", p2p.DefaultLowWaterMark, "bytes buffered at which a fixed window resumes sending (UploadOptions.LowWaterMark)")
	flag.IntVar(&o.shared, "shared-window", p2p.DefaultSharedWindow, "buffer split among the running uploads as the least window of each (UploadOptions.SharedWindow)")
	flag.StringVar(&o.rawWindow, "raw-window", "same", "raw mode's flow control: same (the seeder's send window) or fixed (-high-water, resuming at -low-water)")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each mode's first measured interval to this path, with the mode inserted before the extension")
	flag.Parse()
	if o.quick {
		// -quick sets what was not given explicitly.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["peers"] {
			o.peers = 2
		}
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["idle"] {
			o.idle = 20
		}
	}
	return o
}

func (o options) validate() error {
	switch {
	case o.role != "server" && o.role != "client":
		return fmt.Errorf("-role %q: want server or client", o.role)
	case o.peers < 1:
		return errors.New("-peers must be at least 1")
	case o.segments < 1 || o.segments > 256:
		return errors.New("-segments must be from 1 to 256 (the raw request is one byte)")
	case o.size < 1:
		return errors.New("-size must be at least 1")
	case o.duration <= 0 || o.warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	case o.idle < 0 || o.rounds < 1:
		return errors.New("-idle must not be negative and -rounds must be at least 1")
	case o.gap < 0:
		return errors.New("-gap must not be negative")
	case o.lowWater < 1 || o.minHigh < 1 || o.shared < 1 || o.highWater < o.lowWater:
		return errors.New("-low-water, -min-high-water and -shared-window must be at least 1, and -high-water at least -low-water")
	case o.rawWindow != "same" && o.rawWindow != "fixed":
		return fmt.Errorf("-raw-window %q: want same or fixed", o.rawWindow)
	}
	return nil
}

func main() {
	o := parseFlags()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "uploadbench:", err)
		os.Exit(2)
	}
	if o.role == "client" {
		// stdout carries the protocol; keep anything else off it.
		out := os.Stdout
		os.Stdout = os.Stderr
		// A terminal's Ctrl-C reaches this process too; the server
		// ends it by closing stdin once its own peers are closed.
		signal.Ignore(os.Interrupt)
		if err := runClient(os.Stdin, out, o.segments, o.size, o.gap); err != nil {
			fmt.Fprintln(os.Stderr, "uploadbench client:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, err := run(ctx, o)
	stop()
	if rep != nil {
		if o.json {
			if err := rep.writeJSON(os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "uploadbench:", err)
			}
		} else {
			rep.writeText(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "uploadbench:", err)
		os.Exit(1)
	}
}

// run performs the benchmark. It returns the report so far even on error.
func run(ctx context.Context, o options) (rep *report, err error) {
	startGoroutines := runtime.NumGoroutine()
	rep = newReport(o)
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "uploadbench: "+format+"\n", args...)
	}

	segs := makeSegments(o.segments, o.size)
	srv, err := newServer(segs, p2p.UploadOptions{
		MaxRequestsPerSecond: o.maxRPS,
		HighWaterMark:        uint64(o.highWater),
		MinHighWaterMark:     uint64(o.minHigh),
		SharedWindow:         uint64(o.shared),
		LowWaterMark:         uint64(o.lowWater),
		// An unlimited budget, as the seeder app always has one: the
		// sessions' windows are floored by their share of the shared
		// window, which needs the count of running uploads.
		Budget: p2p.NewUploadBudget(0, 0),
	}, !o.plainMux, o.rawWindow == "fixed")
	if err != nil {
		return rep, err
	}
	rep.describeServer(srv)
	cli, err := startClient(o, srv)
	if err != nil {
		srv.close()
		return rep, err
	}
	rep.Config.ClientPID = cli.pid
	// Clients first, so that the server sees orderly closes; then the
	// server and its socket. Finally check that every goroutine ended.
	defer func() {
		if cerr := cli.close(); cerr != nil && err == nil {
			err = cerr
		}
		srv.close()
		rep.Cleanup = waitGoroutines(startGoroutines)
	}()

	logf("connecting %d load peers", o.peers)
	if _, err := cli.call(message{Op: opConnect, Group: groupLoad, N: o.peers}, opConnected, connectTimeout+10*time.Second); err != nil {
		return rep, fmt.Errorf("connect load peers: %w", err)
	}
	for r := range o.rounds {
		modes := []string{modeSeeder, modeRaw}
		if r%2 == 1 {
			modes[0], modes[1] = modes[1], modes[0]
		}
		mbps := map[string]float64{}
		for _, mode := range modes {
			logf("round %d: %s: %v warm-up, %v measured", r+1, mode, o.warmup, o.duration)
			profile := ""
			if o.cpuprofile != "" && r == 0 {
				profile = profilePath(o.cpuprofile, mode)
			}
			res, err := measureMode(ctx, o, srv, cli, mode, profile, rep.mode(mode))
			if err != nil {
				return rep, fmt.Errorf("%s mode: %w", mode, err)
			}
			if res.Seconds > 0 {
				mbps[mode] = float64(res.Bytes) / res.Seconds / 1e6
			}
		}
		rep.RoundRatios = append(rep.RoundRatios, ratio(mbps[modeSeeder], mbps[modeRaw]))
	}
	if _, err := cli.call(message{Op: opClose, Group: groupLoad}, opClosed, 30*time.Second); err != nil {
		return rep, fmt.Errorf("close load peers: %w", err)
	}
	srv.closeGroup(groupLoad)
	rep.finishModes()

	if o.idle > 0 {
		logf("idle phase: connecting %d peers", o.idle)
		idle, err := measureIdle(ctx, o, cli)
		rep.Idle = idle
		if err != nil {
			return rep, fmt.Errorf("idle phase: %w", err)
		}
		if _, err := cli.call(message{Op: opClose, Group: groupIdle}, opClosed, 60*time.Second); err != nil {
			return rep, fmt.Errorf("close idle peers: %w", err)
		}
		srv.closeGroup(groupIdle)
	}
	rep.evaluate()
	return rep, nil
}

// makeSegments returns n segments of size pseudo-random bytes (fixed seed).
func makeSegments(n, size int) [][]byte {
	src := rand.NewChaCha8([32]byte{'u', 'p', 'l', 'o', 'a', 'd'})
	segs := make([][]byte, n)
	for i := range segs {
		segs[i] = make([]byte, size)
		_, _ = src.Read(segs[i])
	}
	return segs
}

// profilePath inserts mode before the extension of path.
func profilePath(path, mode string) string {
	i := strings.LastIndexByte(path, '.')
	if i <= strings.LastIndexByte(path, '/') {
		return path + "." + mode
	}
	return path[:i] + "." + mode + path[i:]
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measureMode runs one warm-up and measured interval of mode, adds its
// figures to res and returns what the client measured.
func measureMode(ctx context.Context, o options, srv *server, cli *clientHandle, mode, profile string, res *modeResult) (*clientResult, error) {
	if err := cli.send(message{Op: opStart, Mode: mode}); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, o.warmup); err != nil {
		return nil, err
	}
	var prof *os.File
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, err
		}
		prof = f
		res.Profile = profile
	}
	statsBefore := srv.sessionStats(groupLoad)
	before := takeSnapshot()
	sendErr := cli.send(message{Op: opMeasure})
	if sendErr == nil {
		sendErr = sleepCtx(ctx, o.duration)
	}
	stopErr := cli.send(message{Op: opStop, Mode: mode})
	after := takeSnapshot()
	statsAfter := srv.sessionStats(groupLoad)
	if prof != nil {
		pprof.StopCPUProfile()
		_ = prof.Close()
	}
	if sendErr != nil {
		return nil, sendErr
	}
	if stopErr != nil {
		return nil, stopErr
	}
	m, err := cli.wait(opResult, drainTimeout+10*time.Second)
	if err != nil {
		return nil, err
	}
	if m.Result == nil {
		return nil, errors.New("client sent no result")
	}
	res.add(before, after, statsBefore, statsAfter, m.Result)
	return m.Result, nil
}

// measureIdle connects o.idle peers and measures what each one costs while
// idle.
func measureIdle(ctx context.Context, o options, cli *clientHandle) (*idleResult, error) {
	res := &idleResult{Peers: o.idle, Valid: !o.inproc}
	// Let the goroutines of the closed load peers end, then settle.
	settleGoroutines()
	settleMemory()
	res.RSSBeforeKiB = rssKiB()
	res.GoroutinesBefore = runtime.NumGoroutine()
	res.FilesBefore = openFiles()
	goBefore := goMemory()

	start := time.Now()
	timeout := connectTimeout + time.Duration(o.idle)*200*time.Millisecond
	if _, err := cli.call(message{Op: opConnect, Group: groupIdle, N: o.idle}, opConnected, timeout); err != nil {
		return res, err
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	// Let the handshakes' transient goroutines and timers end.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return res, err
	}
	settleMemory()
	res.RSSAfterKiB = rssKiB()
	res.GoroutinesAfter = runtime.NumGoroutine()
	res.FilesAfter = openFiles()
	n := float64(o.idle)
	res.RSSPerPeerKiB = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / n
	res.GoMemPerPeerKiB = float64(goMemory()-goBefore) / 1024 / n
	res.GoroutinesPerPeer = float64(res.GoroutinesAfter-res.GoroutinesBefore) / n
	return res, nil
}

// settleMemory collects garbage twice and returns freed memory to the
// system, so that VmRSS reflects live data.
func settleMemory() {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
}

// goMemory returns the bytes of heap spans and goroutine stacks in use.
func goMemory() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// settleGoroutines waits, for at most 5 s, until the goroutine count has
// not changed for 200 ms.
func settleGoroutines() {
	deadline := time.Now().Add(5 * time.Second)
	last := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			return
		}
		last = n
	}
}

// waitGoroutines waits, for at most 5 s, for the goroutine count to fall
// back to start, and reports both counts.
func waitGoroutines(start int) *cleanupResult {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > start && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return &cleanupResult{GoroutinesAtStart: start, GoroutinesAtEnd: runtime.NumGoroutine()}
}

// clientHandle is the server's end of the client: a child process, or a
// goroutine with -inproc.
type clientHandle struct {
	c    *conn
	in   io.Closer
	msgs chan message
	// readDone is closed when the client's output has ended.
	readDone chan struct{}
	pid      int
	cmd      *exec.Cmd
	// inprocDone is closed when an in-process client has returned.
	inprocDone chan struct{}
}

// startClient starts the client and a loop that answers its offers
// through srv and queues its other messages.
func startClient(o options, srv *server) (*clientHandle, error) {
	h := &clientHandle{msgs: make(chan message, 1024), readDone: make(chan struct{})}
	var out io.Reader
	if o.inproc {
		toClientR, toClientW := io.Pipe()
		fromClientR, fromClientW := io.Pipe()
		h.in, out = toClientW, fromClientR
		h.inprocDone = make(chan struct{})
		go func() {
			defer close(h.inprocDone)
			err := runClient(toClientR, fromClientW, o.segments, o.size, o.gap)
			_ = fromClientW.CloseWithError(err)
			_ = toClientR.Close()
		}()
		h.c = newConn(out, toClientW)
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(exe, "-role", "client",
			"-segments", strconv.Itoa(o.segments), "-size", strconv.Itoa(o.size), "-gap", o.gap.String())
		cmd.Stderr = os.Stderr
		// The child dies with this process, whatever happens to it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start client process: %w", err)
		}
		h.cmd, h.pid, h.in, out = cmd, cmd.Process.Pid, stdin, stdout
		h.c = newConn(out, stdin)
	}
	go h.readLoop(srv)
	return h, nil
}

// readLoop answers offers and queues every other message.
func (h *clientHandle) readLoop(srv *server) {
	defer close(h.readDone)
	defer close(h.msgs)
	for {
		m, err := h.c.recv()
		if err != nil {
			return
		}
		if m.Op != opOffer {
			h.msgs <- m
			continue
		}
		go func() {
			reply := message{Op: opAnswer, Group: m.Group, ID: m.ID}
			if m.SDP == nil {
				reply.Err = "offer without an SDP"
			} else if sd, err := srv.answer(m.Group, *m.SDP); err != nil {
				reply.Err = err.Error()
			} else {
				reply.SDP = &sd
			}
			// A failed send means the client is gone.
			_ = h.c.send(reply)
		}()
	}
}

func (h *clientHandle) send(m message) error { return h.c.send(m) }

func (h *clientHandle) wait(op string, timeout time.Duration) (message, error) {
	return waitFor(h.msgs, op, timeout)
}

// call sends m and waits for a reply whose op is want.
func (h *clientHandle) call(m message, want string, timeout time.Duration) (message, error) {
	if err := h.send(m); err != nil {
		return message{}, err
	}
	return h.wait(want, timeout)
}

// close ends the client: closing its input makes it close its peers and
// return. A child that has not exited after 15 s is killed.
func (h *clientHandle) close() error {
	_ = h.in.Close()
	timeout := time.NewTimer(15 * time.Second)
	defer timeout.Stop()
	if h.cmd == nil {
		select {
		case <-h.inprocDone:
		case <-timeout.C:
			return errors.New("in-process client did not stop")
		}
		<-h.readDone
		return nil
	}
	exited := make(chan error, 1)
	go func() {
		<-h.readDone
		exited <- h.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("client process: %w", err)
		}
		return nil
	case <-timeout.C:
		_ = h.cmd.Process.Kill()
		<-exited
		return errors.New("client process did not exit; killed")
	}
}
