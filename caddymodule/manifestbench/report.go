package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the whole benchmark's result.
type report struct {
	Config struct {
		Caddy         string `json:"caddy"`
		GoVersion     string `json:"go"`
		CPUs          int    `json:"cpus"`
		Load          string `json:"load"`
		Conns         int    `json:"conns"`
		Rounds        int    `json:"rounds"`
		Duration      string `json:"duration"`
		Warmup        string `json:"warmup"`
		VODSegments   int    `json:"vod_segments"`
		LiveWindow    int    `json:"live_window"`
		LiveUpdate    string `json:"live_update"`
		ServerCPUNote string `json:"server_cpu_note,omitempty"`
	} `json:"config"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
	// OtherBusyCores is the average number of cores busy outside this
	// process and the load child while measuring.
	OtherBusyCores float64        `json:"other_busy_cores"`
	Verify         *verification  `json:"verify"`
	LiveVersions   int64          `json:"live_versions_written"`
	Results        []*caseResult  `json:"results"`
	Ratios         []*ratioResult `json:"ratios"`
	byKey          map[string]*caseResult
	ownCPU         float64
	busy, total    uint64
	measuredWall   float64
	inproc         bool
	playlists      []string
	finishedRatios bool
}

// verification is what the correctness check found.
type verification struct {
	// Sizes are the playlists' sizes as file_server serves them, and
	// RewrittenSizes as C serves them.
	Sizes          map[string]int `json:"sizes"`
	RewrittenSizes map[string]int `json:"rewritten_sizes"`
	// CacheControl is what B sends for each playlist.
	CacheControl map[string]string `json:"cache_control_b"`
	Checks       []check           `json:"checks"`
}

// check is one verification.
type check struct {
	// Case and Playlist are what the check is about.
	Case     string `json:"case"`
	Playlist string `json:"playlist"`
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail,omitempty"`
}

func (v *verification) check(caseName, playlist, name string, ok bool, detail string) {
	c := check{Case: caseName, Playlist: playlist, Name: playlist + ": " + name, OK: ok}
	if !ok {
		c.Detail = detail
	}
	v.Checks = append(v.Checks, c)
}

// ok reports whether every check passed, or only those about the given
// case and playlist ("" matches all).
func (v *verification) ok(caseAndPlaylist ...string) bool {
	for _, c := range v.Checks {
		if len(caseAndPlaylist) == 2 && (c.Case != caseAndPlaylist[0] || c.Playlist != caseAndPlaylist[1]) {
			continue
		}
		if !c.OK {
			return false
		}
	}
	return true
}

// interval is one measured run of one case on one playlist.
type interval struct {
	Case, Playlist string
	Round          int
	res            *loadResult
	serverCPU      float64
	clientCPU      float64
	busy, total    uint64
	validCPU       bool
}

func (iv *interval) fill(before, after snapshot, res *loadResult, child bool) {
	iv.res = res
	iv.serverCPU = after.cpu - before.cpu
	if child {
		iv.clientCPU = res.CPUSeconds
	}
	iv.busy, iv.total = after.machineBusy-before.machineBusy, after.machineTotal-before.machineTotal
	iv.validCPU = child
}

// caseResult pools one case on one playlist over the rounds.
type caseResult struct {
	Case         string    `json:"case"`
	Label        string    `json:"label"`
	Playlist     string    `json:"playlist"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	Bytes        int64     `json:"bytes"`
	Seconds      float64   `json:"seconds"`
	ReqPerSec    float64   `json:"req_per_sec"`
	RoundsReqSec []float64 `json:"rounds_req_per_sec"`
	P50Ms        float64   `json:"p50_ms"`
	P99Ms        float64   `json:"p99_ms"`
	// ServerCPUPerReqUs is this process's CPU time per request; it
	// includes the load when that runs in-process.
	ServerCPUPerReqUs float64 `json:"server_cpu_per_req_us"`
	ServerCPUCores    float64 `json:"server_cpu_cores"`
	ClientCPUCores    float64 `json:"client_cpu_cores,omitempty"`
	hist              histogram
	serverCPU         float64
	clientCPU         float64
}

// ratioResult compares B and C with A on one playlist.
type ratioResult struct {
	Playlist string  `json:"playlist"`
	Case     string  `json:"case"`
	Ratio    float64 `json:"req_per_sec_ratio"`
	// CPURatio is the ratio of server CPU per request.
	CPURatio float64 `json:"server_cpu_per_req_ratio"`
	Target   float64 `json:"target"`
	Pass     bool    `json:"pass"`
	// Verified is false when the case failed its verification on this
	// playlist: the figure is then of another path than the one named.
	Verified bool `json:"verified"`
}

func newReport(o options) *report {
	r := &report{byKey: map[string]*caseResult{}, inproc: o.inproc, playlists: o.playlists}
	r.Config.Caddy = "in-process"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/caddyserver/caddy/v2" {
				r.Config.Caddy = d.Version + " in-process"
			}
		}
	}
	r.Config.GoVersion = runtime.Version()
	r.Config.CPUs = runtime.NumCPU()
	r.Config.Load = "from a child process"
	if o.inproc {
		r.Config.Load = "in this process"
		r.Config.ServerCPUNote = "server CPU includes the load generator (-inproc)"
	}
	r.Config.Conns, r.Config.Rounds = o.conns, o.rounds
	r.Config.Duration, r.Config.Warmup = o.duration.String(), o.warmup.String()
	r.Config.VODSegments, r.Config.LiveWindow = o.segments, o.liveWindow
	r.Config.LiveUpdate = "rewritten every 1s, media sequence +1"
	r.LoadAvgStart = loadAvg()
	for _, pl := range r.playlists {
		for _, c := range caseNames {
			cr := &caseResult{Case: c, Label: caseLabels[c], Playlist: pl}
			r.byKey[c+"/"+pl] = cr
			r.Results = append(r.Results, cr)
		}
	}
	return r
}

// add pools an interval.
func (r *report) add(iv *interval) {
	cr := r.byKey[iv.Case+"/"+iv.Playlist]
	res := iv.res
	cr.Requests += res.Requests
	cr.Errors += res.Errors
	cr.Bytes += res.Bytes
	cr.Seconds += res.Seconds
	cr.RoundsReqSec = append(cr.RoundsReqSec, float64(res.Requests)/res.Seconds)
	cr.hist.merge(res.Hist)
	cr.serverCPU += iv.serverCPU
	cr.clientCPU += iv.clientCPU
	r.ownCPU += iv.serverCPU + iv.clientCPU
	r.busy += iv.busy
	r.total += iv.total
	r.measuredWall += res.Seconds
}

// finish computes the pooled figures and ratios.
func (r *report) finish() {
	if r.finishedRatios {
		return
	}
	r.finishedRatios = true
	for _, cr := range r.Results {
		if cr.Seconds == 0 {
			continue
		}
		cr.ReqPerSec = float64(cr.Requests) / cr.Seconds
		cr.P50Ms = ms(cr.hist.quantile(0.5))
		cr.P99Ms = ms(cr.hist.quantile(0.99))
		if cr.Requests > 0 {
			cr.ServerCPUPerReqUs = cr.serverCPU / float64(cr.Requests) * 1e6
		}
		cr.ServerCPUCores = cr.serverCPU / cr.Seconds
		if !r.inproc {
			cr.ClientCPUCores = cr.clientCPU / cr.Seconds
		}
	}
	for _, pl := range r.playlists {
		a := r.byKey["A/"+pl]
		for _, c := range []string{"B", "C"} {
			x := r.byKey[c+"/"+pl]
			if a.ReqPerSec == 0 {
				continue
			}
			rr := &ratioResult{Playlist: pl, Case: c, Ratio: x.ReqPerSec / a.ReqPerSec, Target: targetRatio}
			if a.ServerCPUPerReqUs > 0 {
				rr.CPURatio = x.ServerCPUPerReqUs / a.ServerCPUPerReqUs
			}
			rr.Pass = rr.Ratio >= targetRatio
			rr.Verified = r.Verify == nil || r.Verify.ok(c, pl)
			r.Ratios = append(r.Ratios, rr)
		}
	}
	if r.total > 0 && r.measuredWall > 0 && !r.inproc {
		machine := float64(r.busy) / float64(r.total) * float64(r.Config.CPUs)
		r.OtherBusyCores = max(0, machine-r.ownCPU/r.measuredWall)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *report) writeJSON(w io.Writer) error {
	r.finish()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) error {
	r.finish()
	c := r.Config
	v := r.Verify
	var sb strings.Builder
	fmt.Fprintf(&sb, "manifestbench: Caddy %s, one site per case; load %s, %d keep-alive connections, 1 request in flight each\n",
		c.Caddy, c.Load, c.Conns)
	fmt.Fprintf(&sb, "%d round(s) x %s per case and playlist (+%s warm-up), cases interleaved A,B,C / C,B,A; %s, %d CPUs\n",
		c.Rounds, c.Duration, c.Warmup, c.GoVersion, c.CPUs)
	fmt.Fprintf(&sb, "load average: %s at start, %s at end", r.LoadAvgStart, r.LoadAvgEnd)
	if !r.inproc {
		fmt.Fprintf(&sb, "; cores busy outside the two processes while measuring: %.2f of %d", r.OtherBusyCores, c.CPUs)
	}
	sb.WriteString("\n\n")
	if v != nil {
		fmt.Fprintf(&sb, "playlists: vod = %s segments, %s B (%s B after C's rewrite); live = %d-segment window, %s B, rewritten every 1 s\n",
			group(int64(c.VODSegments)), group(int64(v.Sizes["vod"])), group(int64(v.RewrittenSizes["vod"])), c.LiveWindow, group(int64(v.Sizes["live"])))
		fmt.Fprintf(&sb, "  with its media sequence +1 (%d versions written during the run: B and C miss their cache once a second)\n", r.LiveVersions)
		if v.ok() {
			fmt.Fprintf(&sb, "verified: B = A byte for byte; C has no token= and every URI under %s; C's ETag has -p2p;\n", cdnBase)
			fmt.Fprintf(&sb, "  B's live Cache-Control %q; a live update reaches B and C on the next request\n\n", v.CacheControl["live"])
		} else {
			sb.WriteString("verification FAILED (figures of a failed case do not measure the path named):\n")
			for _, c := range v.Checks {
				mark := "ok  "
				if !c.OK {
					mark = "FAIL"
				}
				fmt.Fprintf(&sb, "  %s %s", mark, c.Name)
				if c.Detail != "" {
					fmt.Fprintf(&sb, ": %s", c.Detail)
				}
				sb.WriteString("\n")
			}
			sb.WriteString("\n")
		}
	}
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "playlist\tcase\treq/s\tper round\tp50\tp99\tserver CPU/req\tserver cores\terrors")
	for _, cr := range r.Results {
		var rounds []string
		for _, x := range cr.RoundsReqSec {
			rounds = append(rounds, group(int64(x+0.5)))
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%.2f ms\t%.2f ms\t%.1f µs\t%.2f\t%d\n",
			cr.Playlist, cr.Case, cr.Label, group(int64(cr.ReqPerSec+0.5)), strings.Join(rounds, " "),
			cr.P50Ms, cr.P99Ms, cr.ServerCPUPerReqUs, cr.ServerCPUCores, cr.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&sb, "\ntarget: p2p_manifest >= %.1fx file_server req/s\n", targetRatio)
	for _, pl := range r.playlists {
		fmt.Fprintf(&sb, "  %-5s", pl+":")
		for _, rr := range r.Ratios {
			if rr.Playlist != pl {
				continue
			}
			verdict := "MISS"
			if rr.Pass {
				verdict = "PASS"
			}
			if !rr.Verified {
				verdict += " UNVERIFIED"
			}
			fmt.Fprintf(&sb, "  %s/A %.2fx %s (server CPU/req %.2fx)", rr.Case, rr.Ratio, verdict, rr.CPURatio)
		}
		sb.WriteString("\n")
	}
	for _, rr := range r.Ratios {
		if !rr.Verified {
			fmt.Fprintf(&sb, "UNVERIFIED: %s failed its checks on %s (above), so its figure there is not of the path named\n", rr.Case, rr.Playlist)
		}
	}
	if c.ServerCPUNote != "" {
		fmt.Fprintf(&sb, "note: %s\n", c.ServerCPUNote)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// group writes n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
