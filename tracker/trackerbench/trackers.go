package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// trackerProc is a running tracker under test.
type trackerProc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	url     string
	logPath string
	logFile *os.File
}

// pid returns the tracker's process id.
func (t *trackerProc) pid() int { return t.cmd.Process.Pid }

// alive reports whether the tracker process is still running.
func (t *trackerProc) alive() bool {
	select {
	case <-t.exited:
		return false
	default:
		return true
	}
}

// stop ends the tracker and closes its log.
func (t *trackerProc) stop() {
	allChildren.stop(t.cmd, t.exited, 5*time.Second)
	if t.logFile != nil {
		_ = t.logFile.Close()
	}
}

// logTail returns the last lines of the tracker's output, for error reports.
func (t *trackerProc) logTail(n int) string {
	data, err := os.ReadFile(t.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// failure wraps err with the tail of the tracker's log.
func (t *trackerProc) failure(err error) error {
	tail := t.logTail(20)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, t.logPath, tail)
}

// freePort returns a TCP port that is free on 127.0.0.1 right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startChild starts cmd with its output going to a log file in dir and
// registers it for cleanup.
func startChild(name string, cmd *exec.Cmd, dir string) (*trackerProc, error) {
	t := &trackerProc{name: name, cmd: cmd, exited: make(chan struct{})}
	t.logPath = filepath.Join(dir, name+".log")
	f, err := os.Create(t.logPath)
	if err != nil {
		return nil, err
	}
	t.logFile = f
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	allChildren.prepare(cmd)
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	allChildren.add(cmd)
	go func() {
		t.waitErr = cmd.Wait()
		close(t.exited)
	}()
	return t, nil
}

// defaultCaddyfile is the configuration of the Go tracker under test: no
// admin endpoint, plain HTTP on loopback, limits off for load testing.
const defaultCaddyfile = `{
	admin off
	auto_https off
	persist_config off
}

http://127.0.0.1:{$TRACKERBENCH_PORT} {
	bind 127.0.0.1
	p2p_tracker /announce {
		interval 120s
		max_conns_per_ip 0
		max_messages_per_second 0
	}
}
`

// startOurs starts the Caddy binary bin with the p2p_tracker handler. A
// custom Caddyfile may use {$TRACKERBENCH_PORT} for the port to listen on
// and must serve the tracker at /announce. env is added to its environment.
func startOurs(ctx context.Context, bin, caddyfile string, env []string, dir string) (*trackerProc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("our tracker binary: %w (build it with: go build -o bin/caddy ./xcaddy/caddy)", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := defaultCaddyfile
	if caddyfile != "" {
		data, err := os.ReadFile(caddyfile)
		if err != nil {
			return nil, err
		}
		conf = string(data)
	}
	conf = strings.ReplaceAll(conf, "{$TRACKERBENCH_PORT}", strconv.Itoa(port))
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", confPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"TRACKERBENCH_PORT="+strconv.Itoa(port),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	cmd.Env = append(cmd.Env, env...)
	t, err := startChild("ours", cmd, dir)
	if err != nil {
		return nil, err
	}
	t.url = fmt.Sprintf("ws://127.0.0.1:%d/announce", port)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !t.alive() {
			return t, t.failure(fmt.Errorf("caddy exited during start: %v", t.waitErr))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, t.failure(fmt.Errorf("caddy did not listen on %s within 30 s", addr))
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startBTT starts testdata/bench/btt-server.mjs (the npm bittorrent-tracker
// server) with node, installing its package first if node_modules is
// missing.
func startBTT(ctx context.Context, node, benchDir, dir string) (*trackerProc, error) {
	script := filepath.Join(benchDir, "btt-server.mjs")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("bittorrent-tracker server script: %w", err)
	}
	if _, err := os.Stat(filepath.Join(benchDir, "node_modules", "bittorrent-tracker", "server.js")); err != nil {
		// node-datachannel's install script fails offline and the server
		// does not need it, hence --ignore-scripts.
		logf("installing bittorrent-tracker in %s (npm ci --ignore-scripts)", benchDir)
		npm := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		npm.Dir = benchDir
		npm.Stdout = os.Stderr
		npm.Stderr = os.Stderr
		if err := npm.Run(); err != nil {
			return nil, fmt.Errorf("npm ci in %s: %w", benchDir, err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "btt-server.mjs", "--port", strconv.Itoa(port), "--host", "127.0.0.1")
	cmd.Dir = benchDir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The server exits when its stdin closes; keep the pipe open.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, err
	}
	t, err := startChild("btt", cmd, dir)
	if err != nil {
		return nil, err
	}
	t.url = fmt.Sprintf("ws://127.0.0.1:%d/announce", port)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(t.logFile, line)
			if !signalled && strings.HasPrefix(line, "listening") {
				signalled = true
				ready <- nil
			}
		}
		if !signalled {
			ready <- errors.New("bittorrent-tracker server exited before listening")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			return t, t.failure(err)
		}
		return t, nil
	case <-time.After(30 * time.Second):
		return t, t.failure(errors.New("bittorrent-tracker server did not listen within 30 s"))
	case <-ctx.Done():
		return t, ctx.Err()
	}
}

// probe checks that the tracker at url answers an announce like a
// WebTorrent tracker before the load starts.
func probe(ctx context.Context, url, origin string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var hdr map[string][]string
	if origin != "" {
		hdr = map[string][]string{"Origin": {origin}}
	}
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, url, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("probe %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer conn.Close()
	infoHash := "trackerbench-probe00"
	msg := `{"numwant":5,"uploaded":0,"downloaded":0,"event":"started","action":"announce","info_hash":"` +
		infoHash + `","peer_id":"` + newPeerID() + `","offers":[]}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("probe %s: no announce response: %w", url, err)
	}
	var m inMessage
	if err := parseInMessage(data, &m); err != nil {
		return fmt.Errorf("probe %s: bad announce response %.200q: %w", url, data, err)
	}
	if m.Failure != nil {
		return fmt.Errorf("probe %s: announce failed: %s", url, *m.Failure)
	}
	if m.Action != "announce" || m.InfoHash == nil || *m.InfoHash != infoHash {
		return fmt.Errorf("probe %s: unexpected announce response %.200q", url, data)
	}
	return nil
}
