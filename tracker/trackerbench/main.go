// Command trackerbench is a load benchmark for WebTorrent trackers under the
// traffic of P2P Media Loader 2.x peers. It measures the Go tracker (Caddy
// with the p2p_tracker handler) and, in the same run and under the same
// load, the reference npm bittorrent-tracker server, and prints both sets
// of figures with their ratios and a PASS/MISS line per target.
//
// Usage, from the repository root:
//
//	go build -o bin/caddy ./xcaddy/caddy
//	go run ./tracker/trackerbench                      # 2,000 peers, both trackers
//	go run ./tracker/trackerbench -quick               # CI: well under a minute
//	go run ./tracker/trackerbench -peers 19000 -swarms 400 -rate 2000 -duration 30s
//	go run ./tracker/trackerbench -trackers btt -peers 500 -swarms 20 -rate 200 -duration 10s
//
// Each tracker runs as a child process whose CPU time and resident memory
// are read from /proc. The load comes from worker processes (this binary
// run again with -worker, 4 for 19,000 peers), each holding a share of the
// peers, one WebSocket per peer, from source addresses spread over
// 127.B.T.1-n (one block per tracker, so the second tracker does not meet
// the first one's TIME_WAIT sockets). Per tracker the phases are:
//
//  1. connect: every peer connects and sends its "started" announce with 5
//     offers, at -connect-rate connections per second; the relayed offers
//     are answered;
//  2. idle: no traffic for -idle; the tracker's RSS growth divided by the
//     connected peers gives the memory per idle peer;
//  3. load: peers re-announce with 5 fresh offers each at -rate announces
//     per second in total, spread evenly; every relayed offer is answered.
//     The send time travels in the SDP's o= line, so the receiving worker
//     measures the relay latency of offers and answers, and in the
//     offer_id, so the offerer measures the whole offer-to-answer round
//     trip. The tracker's CPU time in the phase over the relayed offers
//     gives its CPU cost per offer;
//  4. disconnect: every peer closes its socket.
//
// The generator needs about half a core per 1,000 announces/s; on a small
// machine it competes with the tracker for CPU, so the report also gives
// the generator's and the whole machine's busy cores, and latency is only
// meaningful when cores are left over. CPU time per relayed offer is
// comparable regardless.
//
// A missed target does not change the exit status; errors (a tracker that
// does not start or dies, no connection at all, a failing worker) exit
// with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	Peers       int           `json:"peers"`
	Swarms      int           `json:"swarms"`
	Rate        float64       `json:"rate"`
	Duration    time.Duration `json:"duration_ns"`
	ConnectRate float64       `json:"connect_rate"`
	Idle        time.Duration `json:"idle_ns"`
	Drain       time.Duration `json:"drain_ns"`
	Workers     int           `json:"workers"`
	Senders     int           `json:"senders"`
	Trackers    []string      `json:"trackers"`
	Ours        string        `json:"ours"`
	OursEnv     []string      `json:"ours_env,omitempty"`
	Caddyfile   string        `json:"caddyfile,omitempty"`
	BTT         string        `json:"btt"`
	Node        string        `json:"node"`
	Origin      string        `json:"origin"`
	MemGiB      float64       `json:"mem_gib"`
	Quick       bool          `json:"quick"`
	JSON        bool          `json:"-"`
	Logs        string        `json:"-"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		if err := runWorker(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "trackerbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts)
	interrupted := ctx.Err() != nil
	stop()
	allChildren.killAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackerbench:", err)
		if interrupted {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// parseFlags reads the command line.
func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("trackerbench", flag.ContinueOnError)
	fs.IntVar(&o.Peers, "peers", 2000, "simulated peers, one WebSocket each (one tracker process holds at most about 19,500)")
	fs.IntVar(&o.Swarms, "swarms", 0, "swarms the peers are spread over (0: one per 48 peers, as 19,000 peers in 400 swarms)")
	fs.Float64Var(&o.Rate, "rate", 2000, "announces per second in total during the load phase, each with 5 offers")
	fs.DurationVar(&o.Duration, "duration", 15*time.Second, "length of the load phase")
	fs.Float64Var(&o.ConnectRate, "connect-rate", 1000, "new connections per second during the connect phase (each sends a started announce with 5 offers)")
	fs.DurationVar(&o.Idle, "idle", 5*time.Second, "length of the idle phase before memory is read")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "longest wait for the last replies after the connect and load phases")
	fs.IntVar(&o.Workers, "workers", 0, "load generator processes (0: 2, or one per 4,800 peers)")
	fs.IntVar(&o.Senders, "senders", 4, "sending goroutines per worker")
	trackers := fs.String("trackers", "ours,btt", "trackers to measure, in order: ours, btt")
	fs.StringVar(&o.Ours, "ours", "bin/caddy", "Caddy binary with the p2p_tracker handler")
	ourEnv := fs.String("ours-env", "", "comma-separated NAME=VALUE pairs added to ours' environment, e.g. GOGC=50,GOMEMLIMIT=2GiB")
	fs.StringVar(&o.Caddyfile, "caddyfile", "", "Caddyfile for ours instead of the built-in one; {$TRACKERBENCH_PORT} is the port, the tracker must be at /announce")
	fs.StringVar(&o.BTT, "btt", "testdata/bench", "directory of btt-server.mjs and its package.json (bittorrent-tracker)")
	fs.StringVar(&o.Node, "node", "node", "Node.js executable")
	fs.StringVar(&o.Origin, "origin", "https://player.example", "Origin header the peers send (empty: none)")
	fs.Float64Var(&o.MemGiB, "mem-gib", 8, "RAM in GiB for the capacity estimate")
	fs.BoolVar(&o.Quick, "quick", false, "CI mode: 1,000 peers, 20 swarms, 500 announces/s for 5 s, in well under a minute (explicit flags still win)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON on stdout (progress still goes to stderr)")
	fs.StringVar(&o.Logs, "logs", "", "directory for the trackers' logs and Caddyfile (default: a temporary one, removed at exit)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: trackerbench [flags]\n\n"+
			"Load benchmark of the p2p_tracker WebTorrent tracker against npm bittorrent-tracker.\n"+
			"Run it from the repository root. Flags:\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quick("peers", func() { o.Peers = 1000 })
		quick("swarms", func() { o.Swarms = 20 })
		quick("rate", func() { o.Rate = 500 })
		quick("duration", func() { o.Duration = 5 * time.Second })
		quick("idle", func() { o.Idle = 2 * time.Second })
		quick("drain", func() { o.Drain = 3 * time.Second })
	}
	for kv := range strings.SplitSeq(*ourEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
			return nil, fmt.Errorf("-ours-env entry %q is not NAME=VALUE", kv)
		}
		o.OursEnv = append(o.OursEnv, kv)
	}
	for t := range strings.SplitSeq(*trackers, ",") {
		t = strings.TrimSpace(t)
		switch t {
		case "":
		case "ours", "btt":
			o.Trackers = append(o.Trackers, t)
		default:
			return nil, fmt.Errorf("unknown tracker %q in -trackers (want ours, btt)", t)
		}
	}
	switch {
	case len(o.Trackers) == 0:
		return nil, errors.New("-trackers names no tracker")
	case o.Peers < 2:
		return nil, errors.New("-peers must be at least 2")
	case o.Rate < 0 || o.ConnectRate <= 0:
		return nil, errors.New("-rate must not be negative and -connect-rate must be positive")
	case o.Duration <= 0 || o.Idle < 0 || o.Drain < 0:
		return nil, errors.New("-duration must be positive, -idle and -drain not negative")
	}
	if o.Swarms <= 0 {
		o.Swarms = max(1, (o.Peers+47)/48)
	}
	if o.Swarms > o.Peers/2 {
		return nil, errors.New("-swarms must leave at least 2 peers per swarm")
	}
	if o.Workers <= 0 {
		o.Workers = max(2, (o.Peers+4799)/4800)
	}
	if o.Workers > o.Peers {
		return nil, errors.New("-workers must not exceed -peers")
	}
	if o.Peers/o.Workers > 19000 {
		return nil, fmt.Errorf("%d peers per worker exceed the 20,000 open files a process may have: raise -workers", o.Peers/o.Workers)
	}
	return o, nil
}

// logf prints a progress line on stderr.
func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// run measures every selected tracker and prints the report.
func run(ctx context.Context, o *options) error {
	if _, err := raiseFileLimit(); err != nil {
		return fmt.Errorf("raise open file limit: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir := o.Logs
	if dir == "" {
		dir, err = os.MkdirTemp("", "trackerbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res := &Results{
		Options: *o,
		Machine: machineInfo{Cores: runtime.NumCPU(), LoadAvgStart: loadAvg()},
		Started: time.Now().UTC().Format(time.RFC3339),
	}
	logf("trackerbench: %d peers in %d swarms, %g announces/s for %s, %d workers, trackers %s; load average %s",
		o.Peers, o.Swarms, o.Rate, o.Duration, o.Workers, strings.Join(o.Trackers, ","), res.Machine.LoadAvgStart)
	// Each tracker gets its own block of source addresses, so that the
	// second run does not meet the first one's TIME_WAIT sockets; the block
	// also varies between invocations.
	block := 1 + int(time.Now().UnixNano()/int64(time.Second))%200
	var errs []error
	for i, name := range o.Trackers {
		tdir := filepath.Join(dir, name)
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			return err
		}
		tr, err := measure(ctx, o, name, exe, tdir, fmt.Sprintf("127.%d.%d.", block, i+1))
		if tr != nil {
			res.Trackers = append(res.Trackers, tr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			logf("%s: error: %v", name, err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	res.Machine.LoadAvgEnd = loadAvg()
	res.evaluate()
	if o.JSON {
		if err := res.writeJSON(os.Stdout); err != nil {
			return err
		}
	} else if len(res.Trackers) > 0 {
		res.writeText(os.Stdout)
	}
	return errors.Join(errs...)
}
