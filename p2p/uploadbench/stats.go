package main

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSeconds returns this process's user plus system CPU time so far, over
// all threads (getrusage RUSAGE_SELF).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// rssKiB returns VmRSS from /proc/self/status, or -1.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// openFiles returns the number of this process's open file descriptors,
// or -1.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// machineTimes returns the busy and total jiffies of all CPUs from the
// first line of /proc/stat, or zeros.
func machineTimes() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0
		}
		// Fields: user nice system idle iowait irq softirq steal
		// (guest time is already counted in user).
		if i >= 8 {
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total
}

// udpRcvbufErrors returns the system's UDP RcvbufErrors counter from
// /proc/net/snmp: datagrams dropped because a socket's receive buffer was
// full. It returns -1 if the counter cannot be read.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		vals := strings.Fields(rest)
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(vals) {
				if v, err := strconv.ParseInt(vals[i], 10, 64); err == nil {
					return v
				}
			}
		}
		return -1
	}
	return -1
}

// snapshot is the server-side state read at each end of a measured
// interval.
type snapshot struct {
	at           time.Time
	cpu          float64
	machineBusy  float64
	machineTotal float64
	udpDrops     int64
}

func takeSnapshot() snapshot {
	s := snapshot{at: time.Now(), cpu: cpuSeconds(), udpDrops: udpRcvbufErrors()}
	s.machineBusy, s.machineTotal = machineTimes()
	return s
}

// percentile returns the q-quantile (0 <= q <= 1) of sorted by the
// nearest-rank method, or NaN for no values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// sortedCopy returns the values in increasing order.
func sortedCopy(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}
