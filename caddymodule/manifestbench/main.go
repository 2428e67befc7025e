// Command manifestbench measures what the p2p_manifest handler costs on
// the path every player polls: how many playlist requests per second Caddy
// serves with it in front of file_server, against file_server alone. The
// issue's target is that p2p_manifest serves at least 0.8x the requests
// per second of plain file_server.
//
// Usage, from the repository root:
//
//	go run ./caddymodule/manifestbench             # 2 rounds x 5 s per case and playlist, 16 connections
//	go run ./caddymodule/manifestbench -quick      # 1 round x 1 s: checks the command works
//	go run ./caddymodule/manifestbench -json       # machine-readable report on stdout
//	go run ./caddymodule/manifestbench -cpuprofile cpu.pprof   # cpu.C-vod.pprof etc., first round
//
// This process runs Caddy in-process (caddyconfig's Caddyfile adapter and
// caddy.Load, admin off, auto_https off, persist_config off) with three
// sites on their own localhost ports, all serving the same directory:
//
//   - A: file_server alone, the baseline;
//   - B: p2p_manifest { discover off } in front of file_server: no
//     rewrite, so the handler buffers the playlist, keys its cache by the
//     file's ETag, applies the live max-age logic and writes the body;
//   - C: p2p_manifest { strip_query token; base_url https://cdn.example }
//     in front of file_server: the rewrite path. The first request for a
//     version rewrites it (line by line) and checks it by re-parsing;
//     later requests are served from the handler's cache, still paying
//     for file_server reading the file into the handler's buffer.
//
// No p2p app is configured, so nothing is seeded (C leaves discovery on,
// but with no app to register with it only logs that once, at start).
// Caddy logs at -log-level, ERROR by default, so that the figures are not
// of the log output.
//
// The playlists are generated into a temporary directory at start: a VOD
// HLS media playlist of -segments segments (EXTINF 4.000, URIs like
// seg00001.ts?token=abc, 1,000 by default, 37 KB) and a live
// sliding-window media playlist of -live-window (10) such segments
// without ENDLIST. For
// the whole run a goroutine rewrites the live playlist every second
// (written aside and renamed into place) with its media sequence advanced
// by one, so its modification time and therefore file_server's ETag change
// and B and C miss their cache once a second, as they would behind a live
// packager.
//
// Before measuring, the benchmark checks once that B returns exactly A's
// bytes, that C's bodies carry no "token=" and point every segment at
// https://cdn.example with a -p2p ETag, that B gives the live playlist a
// max-age, and that an update of the live playlist reaches B and C on the
// next request. A failed check is printed and the cases are measured
// anyway; a ratio whose case failed a check on that playlist is marked
// UNVERIFIED, since it then measures another path than the one named.
//
// The load comes from a child process (this binary run with -role load)
// with -conns keep-alive connections, each with one request in flight,
// asking again as soon as the body is read. A child process rather than
// goroutines in this one, because on two cores the client costs about as
// much CPU as the server: in-process, its goroutines and garbage would
// share Caddy's scheduler and garbage collector, and the server's CPU per
// request could not be told apart. The two processes still share the
// machine's cores, so req/s is what the pair reaches together; the
// server's CPU per request (getrusage of this process over the measured
// interval) is the steadier figure on a busy machine. -inproc runs the
// load in this process instead (used by the test).
//
// Each case and playlist (-playlists, both by default) is measured
// -rounds times after a warm-up, with the cases interleaved per playlist
// (A,B,C, then C,B,A in the next round, ...) so that drift in the
// machine's load weighs on all alike; the figures are pooled over rounds.
// The report gives req/s per case and playlist (and per round), p50 and
// p99 request latency, server CPU per request, the ratios B/A and C/A with
// PASS or MISS against the 0.8x target, the load average at start and end,
// and the cores busy outside both processes while measuring. The exit
// status is 0 whether targets are met or not; it is 1 only when the
// benchmark itself fails.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-p2p/caddy-p2p/caddymodule"
)

// options are the command-line flags.
type options struct {
	role       string
	duration   time.Duration
	warmup     time.Duration
	conns      int
	rounds     int
	segments   int
	liveWindow int
	logLevel   string
	playlists  []string
	quick      bool
	json       bool
	inproc     bool
	cpuprofile string
	// Set for -role load.
	url string
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "bench", "bench (the benchmark) or load (the child process it starts)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per case, playlist and round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measured interval")
	flag.IntVar(&o.conns, "conns", 16, "keep-alive connections, one request in flight each")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of all cases, interleaved")
	flag.IntVar(&o.segments, "segments", 1000, "segments in the VOD playlist")
	flag.IntVar(&o.liveWindow, "live-window", 10, "segments in the live playlist")
	flag.StringVar(&o.logLevel, "log-level", "ERROR", "Caddy's log level (p2p_manifest logs a WARN per request for a manifest it could not rewrite)")
	playlists := flag.String("playlists", "vod,live", "playlists to measure (all are verified)")
	flag.BoolVar(&o.quick, "quick", false, "1 s per case and playlist, 1 round, 0.3 s warm-up (unless given)")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.BoolVar(&o.inproc, "inproc", false, "run the load in this process instead of a child process")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process per case and playlist (first round) to FILE with .<case>-<playlist> inserted")
	flag.StringVar(&o.url, "url", "", "for -role load: the URL to request")
	flag.Parse()

	for _, p := range strings.Split(*playlists, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.playlists = append(o.playlists, p)
		}
	}
	if o.role == "load" {
		if err := childLoad(o); err != nil {
			fmt.Fprintln(os.Stderr, "manifestbench load:", err)
			os.Exit(1)
		}
		return
	}
	if o.quick {
		// -quick sets what was not given explicitly.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["warmup"] {
			o.warmup = 300 * time.Millisecond
		}
	}
	for _, p := range o.playlists {
		if !slices.Contains(playlistNames, p) {
			fmt.Fprintf(os.Stderr, "manifestbench: unknown playlist %q (want vod or live)\n", p)
			os.Exit(2)
		}
	}
	if o.conns < 1 || o.rounds < 1 || o.duration <= 0 || o.segments < 1 || o.liveWindow < 1 {
		fmt.Fprintln(os.Stderr, "manifestbench: -conns, -rounds, -duration, -segments and -live-window must be positive")
		os.Exit(2)
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manifestbench:", err)
		os.Exit(1)
	}
	if o.json {
		err = rep.writeJSON(os.Stdout)
	} else {
		err = rep.writeText(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manifestbench:", err)
		os.Exit(1)
	}
}

// The cases and playlists, in report order.
var (
	caseNames     = []string{"A", "B", "C"}
	playlistNames = []string{"vod", "live"}
	caseLabels    = map[string]string{
		"A": "file_server",
		"B": "p2p_manifest (no rewrite) + file_server",
		"C": "p2p_manifest (strip_query, base_url) + file_server",
	}
)

const (
	cdnBase     = "https://cdn.example"
	targetRatio = 0.8
)

// bench is the running benchmark: Caddy's sites, the playlists and the
// live updater.
type bench struct {
	o     options
	dir   string
	ports map[string]int

	liveMu  sync.Mutex
	liveSeq int
	// liveVersions counts versions of the live playlist written.
	liveVersions atomic.Int64
}

func (b *bench) url(caseName, playlist string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s.m3u8", b.ports[caseName], playlist)
}

// run sets everything up, verifies, measures and stops Caddy.
func run(ctx context.Context, o options) (_ *report, err error) {
	if len(o.playlists) == 0 {
		o.playlists = playlistNames
	}
	rep := newReport(o)
	dir, err := os.MkdirTemp("", "manifestbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir, ports: map[string]int{}}
	if err := b.writePlaylists(); err != nil {
		return nil, err
	}
	for _, c := range caseNames {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		b.ports[c] = p
	}
	if err := b.startCaddy(); err != nil {
		return nil, err
	}
	defer func() {
		if serr := caddy.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping caddy: %w", serr)
		}
	}()
	if err := waitUp(b.url("A", "vod")); err != nil {
		return nil, err
	}
	v, err := b.verify()
	if err != nil {
		return nil, fmt.Errorf("verification: %w", err)
	}
	if !v.ok() {
		fmt.Fprintln(os.Stderr, "manifestbench: verification failed; measuring anyway (see the report)")
	}
	rep.Verify = v

	upCtx, stopUpdater := context.WithCancel(ctx)
	updaterDone := make(chan struct{})
	go func() {
		defer close(updaterDone)
		b.updateLive(upCtx)
	}()
	defer func() {
		stopUpdater()
		<-updaterDone
		rep.LiveVersions = b.liveVersions.Load()
		rep.LoadAvgEnd = loadAvg()
	}()

	for r := 0; r < o.rounds; r++ {
		order := caseNames
		if r%2 == 1 {
			order = []string{"C", "B", "A"}
		}
		for _, pl := range o.playlists {
			for _, c := range order {
				iv, err := b.measure(ctx, c, pl, r)
				if err != nil {
					return nil, fmt.Errorf("round %d, case %s, %s: %w", r+1, c, pl, err)
				}
				rep.add(iv)
			}
		}
	}
	return rep, nil
}

// caddyfile is the benchmark's configuration: one site per case.
func (b *bench) caddyfile() string {
	var sb strings.Builder
	sb.WriteString("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\tlog {\n\t\tlevel " + b.o.logLevel + "\n\t}\n}\n")
	site := func(c, handler string) {
		fmt.Fprintf(&sb, ":%d {\n\tbind 127.0.0.1\n\troot * %s\n%s\tfile_server\n}\n", b.ports[c], b.dir, handler)
	}
	site("A", "")
	site("B", "\tp2p_manifest {\n\t\tdiscover off\n\t}\n")
	site("C", "\tp2p_manifest {\n\t\tstrip_query token\n\t\tbase_url "+cdnBase+"\n\t}\n")
	return sb.String()
}

func (b *bench) startCaddy() error {
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(b.caddyfile()), nil)
	if err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "manifestbench: adapt warning:", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

// freePort asks the kernel for a free localhost port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitUp(u string) error {
	var err error
	for i := 0; i < 100; i++ {
		var resp *http.Response
		if resp, err = http.Get(u); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("caddy not up at %s: %w", u, err)
}

// vodPlaylist is the VOD media playlist.
func vodPlaylist(n int) []byte {
	var sb bytes.Buffer
	sb.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, "#EXTINF:4.000,\nseg%05d.ts?token=abc\n", i)
	}
	sb.WriteString("#EXT-X-ENDLIST\n")
	return sb.Bytes()
}

// livePlaylist is the live window starting at media sequence seq.
func livePlaylist(seq, window int) []byte {
	var sb bytes.Buffer
	fmt.Fprintf(&sb, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	for i := seq; i < seq+window; i++ {
		fmt.Fprintf(&sb, "#EXTINF:4.000,\nlive%05d.ts?token=abc\n", i)
	}
	return sb.Bytes()
}

func (b *bench) writePlaylists() error {
	if err := os.WriteFile(filepath.Join(b.dir, "vod.m3u8"), vodPlaylist(b.o.segments), 0o644); err != nil {
		return err
	}
	b.liveSeq = 1
	return b.writeLive(b.liveSeq)
}

// writeLive replaces the live playlist atomically, so that file_server
// never serves a half-written one.
func (b *bench) writeLive(seq int) error {
	tmp := filepath.Join(b.dir, ".live.tmp")
	if err := os.WriteFile(tmp, livePlaylist(seq, b.o.liveWindow), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(b.dir, "live.m3u8")); err != nil {
		return err
	}
	b.liveVersions.Add(1)
	return nil
}

// advanceLive moves the live window by one segment.
func (b *bench) advanceLive() (int, error) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	b.liveSeq++
	return b.liveSeq, b.writeLive(b.liveSeq)
}

// updateLive advances the live playlist every second until ctx ends.
func (b *bench) updateLive(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.advanceLive(); err != nil {
				fmt.Fprintln(os.Stderr, "manifestbench: live update:", err)
			}
		}
	}
}

// fetched is one verification response.
type fetched struct {
	body []byte
	hdr  http.Header
}

func get(u string) (fetched, error) {
	resp, err := http.Get(u)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return fetched{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return fetched{body, resp.Header}, nil
}

// verify checks once that the three sites serve what they should. A
// failed check is reported, not fatal: the cases are still measured, and
// the report says which figures are not of the path they are named after.
func (b *bench) verify() (*verification, error) {
	v := &verification{Sizes: map[string]int{}, RewrittenSizes: map[string]int{}, CacheControl: map[string]string{}}
	for _, pl := range playlistNames {
		var res [3]fetched
		for i, c := range caseNames {
			f, err := get(b.url(c, pl))
			if err != nil {
				return nil, err
			}
			res[i] = f
		}
		a, bb, c := res[0], res[1], res[2]
		v.check("B", pl, "B returns A's bytes", bytes.Equal(a.body, bb.body),
			fmt.Sprintf("B sent %d bytes, A %d", len(bb.body), len(a.body)))
		v.check("C", pl, "C's body has no token=", !bytes.Contains(c.body, []byte("token=")),
			fmt.Sprintf("%d token= left", bytes.Count(c.body, []byte("token="))))
		want := b.o.segments
		if pl == "live" {
			want = b.o.liveWindow
		}
		n := bytes.Count(c.body, []byte("\n"+cdnBase+"/"))
		v.check("C", pl, "C's segment URIs all under "+cdnBase, n == want,
			fmt.Sprintf("%d of %d", n, want))
		et := c.hdr.Get("ETag")
		v.check("C", pl, "C's ETag has the -p2p suffix", strings.HasSuffix(et, `-p2p"`), fmt.Sprintf("ETag %s", et))
		v.Sizes[pl] = len(a.body)
		v.RewrittenSizes[pl] = len(c.body)
		v.CacheControl[pl] = bb.hdr.Get("Cache-Control")
	}
	v.check("B", "live", "B sends a max-age", strings.HasPrefix(v.CacheControl["live"], "max-age="),
		fmt.Sprintf("Cache-Control %q", v.CacheControl["live"]))
	// A new live version must reach B and C on the next request, not
	// wait behind their caches.
	seq, err := b.advanceLive()
	if err != nil {
		return nil, err
	}
	tag := []byte(fmt.Sprintf("#EXT-X-MEDIA-SEQUENCE:%d\n", seq))
	for _, c := range []string{"B", "C"} {
		f, err := get(b.url(c, "live"))
		if err != nil {
			return nil, err
		}
		v.check(c, "live", "an update reaches "+c+" on the next request", bytes.Contains(f.body, tag), "the previous version was served")
	}
	return v, nil
}

// measure runs one measured interval of one case on one playlist.
func (b *bench) measure(ctx context.Context, caseName, playlist string, round int) (*interval, error) {
	iv := &interval{Case: caseName, Playlist: playlist, Round: round + 1}
	var before, after snapshot
	var profErr error
	profiling := b.o.cpuprofile != "" && round == 0
	mark := func(phase string) {
		switch phase {
		case phaseMeasuring:
			if profiling {
				profErr = startProfile(profilePath(b.o.cpuprofile, caseName+"-"+playlist))
			}
			before = takeSnapshot()
		case phaseStop:
			after = takeSnapshot()
			if profiling && profErr == nil {
				stopProfile()
			}
		}
	}
	gcNow()
	cfg := loadConfig{URL: b.url(caseName, playlist), Conns: b.o.conns, Warmup: b.o.warmup, Duration: b.o.duration}
	var res *loadResult
	var err error
	if b.o.inproc {
		res = runLoad(ctx, cfg, mark)
	} else {
		res, err = runChild(ctx, cfg, mark)
		if err != nil {
			return nil, err
		}
	}
	if profErr != nil {
		return nil, fmt.Errorf("cpu profile: %w", profErr)
	}
	if res.Requests == 0 {
		return nil, errors.New("no request completed: " + res.FirstError)
	}
	iv.fill(before, after, res, !b.o.inproc)
	return iv, nil
}

// profilePath inserts .<tag> before the extension of base.
func profilePath(base, tag string) string {
	ext := filepath.Ext(base)
	if strings.Contains(ext, "/") {
		ext = ""
	}
	return strings.TrimSuffix(base, ext) + "." + tag + ext
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
