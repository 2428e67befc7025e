package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Phases of a load run, as the child reports them on its stdout.
const (
	phaseMeasuring = "measuring"
	phaseStop      = "stop"
)

// loadConfig is one load run.
type loadConfig struct {
	URL      string
	Conns    int
	Warmup   time.Duration
	Duration time.Duration
}

// loadResult is what the load generator saw in the measured interval.
type loadResult struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Bytes    int64 `json:"bytes"`
	// Seconds is the measured wall time.
	Seconds float64 `json:"seconds"`
	// CPUSeconds is the load generator's own CPU time in the measured
	// interval (meaningful in a child process only).
	CPUSeconds float64    `json:"cpu_seconds"`
	Hist       *histogram `json:"hist"`
	FirstError string     `json:"first_error,omitempty"`
}

// runLoad keeps cfg.Conns requests in flight, one per keep-alive
// connection, for the warm-up and the measured interval, and calls mark
// at the start and the end of the latter. Requests that complete inside
// the measured interval count.
func runLoad(ctx context.Context, cfg loadConfig, mark func(phase string)) *loadResult {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        cfg.Conns,
		MaxIdleConnsPerHost: cfg.Conns,
		MaxConnsPerHost:     cfg.Conns,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// 0 warm-up, 1 measuring, 2 stopped.
	var phase atomic.Int32
	type worker struct {
		requests, errors, bytes int64
		hist                    histogram
		firstErr                string
	}
	workers := make([]worker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for phase.Load() < 2 && ctx.Err() == nil {
				t0 := time.Now()
				n, err := fetch(client, cfg.URL)
				d := time.Since(t0)
				if phase.Load() != 1 {
					continue
				}
				if err != nil {
					w.errors++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				w.requests++
				w.bytes += n
				w.hist.add(d)
			}
		}()
	}
	sleepCtx(ctx, cfg.Warmup)
	cpu0 := selfCPU()
	phase.Store(1)
	mark(phaseMeasuring)
	t0 := time.Now()
	sleepCtx(ctx, cfg.Duration)
	phase.Store(2)
	elapsed := time.Since(t0)
	mark(phaseStop)
	cpu1 := selfCPU()
	wg.Wait()

	res := &loadResult{Seconds: elapsed.Seconds(), CPUSeconds: cpu1 - cpu0, Hist: &histogram{}}
	for i := range workers {
		w := &workers[i]
		res.Requests += w.requests
		res.Errors += w.errors
		res.Bytes += w.bytes
		res.Hist.merge(&w.hist)
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	return res
}

// fetch GETs u and reads the whole body.
func fetch(c *http.Client, u string) (int64, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %s", resp.Status)
	}
	return n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// childLoad is -role load: runLoad with the phases and the result on
// stdout.
func childLoad(o options) error {
	if o.url == "" {
		return fmt.Errorf("-url is required")
	}
	out := bufio.NewWriter(os.Stdout)
	mark := func(phase string) {
		fmt.Fprintln(out, phase)
		out.Flush()
	}
	res := runLoad(context.Background(), loadConfig{URL: o.url, Conns: o.conns, Warmup: o.warmup, Duration: o.duration}, mark)
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return err
	}
	return out.Flush()
}

// runChild runs the load in a child process, calling mark as it reports
// its phases.
func runChild(ctx context.Context, cfg loadConfig, mark func(phase string)) (*loadResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-role", "load", "-url", cfg.URL,
		"-conns", strconv.Itoa(cfg.Conns), "-warmup", cfg.Warmup.String(), "-duration", cfg.Duration.String())
	cmd.Stderr = os.Stderr
	// The child dies with this process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start load process: %w", err)
	}
	var res *loadResult
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == phaseMeasuring || line == phaseStop:
			mark(line)
		case strings.HasPrefix(line, "{"):
			res = new(loadResult)
			if err := json.Unmarshal([]byte(line), res); err != nil {
				_ = cmd.Wait()
				return nil, fmt.Errorf("load process result: %w", err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("load process: %w", err)
	}
	if res == nil {
		return nil, fmt.Errorf("load process gave no result")
	}
	return res, nil
}

// histogram counts durations in log-linear buckets: exact below 64 ns,
// then 64 buckets per power of two (under 1.6% apart).
type histogram struct {
	Counts map[int]uint64 `json:"counts"`
	N      uint64         `json:"n"`
}

const histSub = 64

func histBucket(ns int64) int {
	if ns < histSub {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 7 // ns>>e is in [64, 128)
	return histSub*(e+1) + int(ns>>e) - histSub
}

// histValue is the lower bound of bucket i.
func histValue(i int) time.Duration {
	if i < histSub {
		return time.Duration(i)
	}
	e := i/histSub - 1
	m := int64(i%histSub + histSub)
	return time.Duration(m << e)
}

func (h *histogram) add(d time.Duration) {
	if h.Counts == nil {
		h.Counts = map[int]uint64{}
	}
	h.Counts[histBucket(int64(d))]++
	h.N++
}

func (h *histogram) merge(o *histogram) {
	if o == nil {
		return
	}
	for i, c := range o.Counts {
		if h.Counts == nil {
			h.Counts = map[int]uint64{}
		}
		h.Counts[i] += c
	}
	h.N += o.N
}

// quantile is the q-quantile, to the bucket's lower bound.
func (h *histogram) quantile(q float64) time.Duration {
	if h == nil || h.N == 0 {
		return 0
	}
	keys := make([]int, 0, len(h.Counts))
	for k := range h.Counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rank := uint64(q*float64(h.N-1)) + 1
	var seen uint64
	for _, k := range keys {
		seen += h.Counts[k]
		if seen >= rank {
			return histValue(k)
		}
	}
	return histValue(keys[len(keys)-1])
}

// snapshot is this process's CPU time and the machine's CPU counters.
type snapshot struct {
	at           time.Time
	cpu          float64
	machineBusy  uint64
	machineTotal uint64
}

func takeSnapshot() snapshot {
	s := snapshot{at: time.Now(), cpu: selfCPU()}
	s.machineBusy, s.machineTotal = machineCPU()
	return s
}

// selfCPU is this process's user plus system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// machineCPU reads the busy and total jiffies of all cores from
// /proc/stat.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

func gcNow() {
	runtime.GC()
	debug.FreeOSMemory()
}

var profFile *os.File

func startProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	profFile = f
	return nil
}

func stopProfile() {
	pprof.StopCPUProfile()
	if profFile != nil {
		profFile.Close()
		profFile = nil
	}
}
