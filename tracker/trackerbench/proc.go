package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), the unit of the CPU
// times in /proc/<pid>/stat.
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

// procSample is what /proc tells about a process at one moment.
type procSample struct {
	At time.Time
	// CPU is user plus system time in seconds, over all threads, and Sys
	// the system part (on loopback it includes the kernel's TCP work for
	// delivering what the process sends).
	CPU float64
	Sys float64
	// RSSKiB is the resident set size and HWMKiB its peak so far.
	RSSKiB int64
	HWMKiB int64
}

// sampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func sampleProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may contain spaces; fields are counted
	// from the closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ")" come state (field 3), ... utime (14) and stime (15).
	if len(f) < 13 {
		return s, errors.New("short /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return s, fmt.Errorf("process %d has exited", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return s, errors.New("malformed /proc stat times")
	}
	s.CPU = (ut + st) / clockTicks
	s.Sys = st / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &s.RSSKiB}, {"VmHWM:", &s.HWMKiB}} {
			if rest, ok := strings.CutPrefix(line, k.name); ok {
				fs := strings.Fields(rest)
				if len(fs) > 0 {
					*k.dst, _ = strconv.ParseInt(fs[0], 10, 64)
				}
			}
		}
	}
	return s, nil
}

// procFileLimit returns the soft "Max open files" limit of a process.
func procFileLimit(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}

// cpuTimes is the machine-wide CPU time from /proc/stat, in seconds.
type cpuTimes struct {
	Busy, Total float64
}

// sampleSystem reads the aggregate "cpu" line of /proc/stat.
func sampleSystem() cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		// guest and guest_nice (fields 9 and 10) are already in user time.
		if i >= 8 {
			break
		}
		t.Total += x
		// idle (3) and iowait (4) are not busy.
		if i != 3 && i != 4 {
			t.Busy += x
		}
	}
	t.Busy /= clockTicks
	t.Total /= clockTicks
	return t
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// children tracks the processes this program started, so that all of them
// are killed on exit, including on errors and interrupts. Each child runs
// in its own process group, which is killed as a whole, and gets SIGKILL
// from the kernel if this process dies first.
type children struct {
	mu    sync.Mutex
	procs map[int]*exec.Cmd
}

// allChildren is the registry of every started child.
var allChildren = &children{procs: make(map[int]*exec.Cmd)}

// prepare sets the process attributes that make cmd killable with its
// whole process group and tied to this process's life.
func (c *children) prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// add registers a started child.
func (c *children) add(cmd *exec.Cmd) {
	c.mu.Lock()
	c.procs[cmd.Process.Pid] = cmd
	c.mu.Unlock()
}

// stop sends SIGTERM to the child's process group, then SIGKILL if it has
// not exited within grace, and waits for it. exited must be closed when the
// child's Wait has returned.
func (c *children) stop(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
		}
	}
	// Kill what may be left of the group (grandchildren).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	c.mu.Lock()
	delete(c.procs, pid)
	c.mu.Unlock()
}

// killAll kills the process groups of all children still registered. It is
// the last resort on exit.
func (c *children) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid := range c.procs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		delete(c.procs, pid)
	}
}
