// Command idcheck prints what our Go code computes for a manifest: for each
// P2P Media Loader client generation and each stream it plays, the swarm
// (stream type, index, swarm string, info_hash) and the externalId of every
// segment. testdata/browser/test/identity.test.mjs compares it with what
// the real clients (hls.js + p2p-media-loader-hlsjs 2.3.1, shaka-player +
// p2p-media-loader-shaka 2.2.2) announce on the wire.
//
// Usage:
//
//	go run ./testdata/idcheck -url http://host/path/master.m3u8 [-swarm ID]
//	go run ./testdata/idcheck -url URL -watch 60s [-interval 1s] [-trace]
//
// -url is the manifest URL exactly as the player is given it: the base swarm
// id is that URL without its query (after redirects), unless -swarm sets the
// application's swarmId. The manifest, its media playlists and DASH segment
// indexes are fetched over HTTP (manifest.Load).
//
// -watch follows every live HLS media playlist for that long (or until
// SIGINT/SIGTERM), refreshing each every -interval with manifest.LiveStream,
// and then prints every segment seen, with the id it got when first seen.
// Each load and refresh round is a copy of all the playlists from one moment
// (fetched again until two passes agree; see fetchRound). -trace logs each
// refresh to stderr.
//
// Output (stdout, JSON):
//
//	{"url", "baseSwarmId", "format", "refreshes",
//	 "streams": [{"client", "generation", "kind", "playlist", "streamType",
//	              "index", "swarm", "infoHash",
//	              "segments": [{"url", "byteRange": [start, end] | null, "externalId"}]}],
//	 "errors": ["..."]}
//
// Errors while loading are listed in "errors" (and the exit status is 1)
// with whatever could be computed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

type segmentOut struct {
	URL        string    `json:"url"`
	ByteRange  *[2]int64 `json:"byteRange"`
	ExternalID int64     `json:"externalId"`
}

type streamOut struct {
	Client     string       `json:"client"`
	Generation string       `json:"generation"`
	Kind       string       `json:"kind"`
	Playlist   string       `json:"playlist"`
	StreamType string       `json:"streamType"`
	Index      string       `json:"index"`
	Swarm      string       `json:"swarm"`
	InfoHash   string       `json:"infoHash"`
	Segments   []segmentOut `json:"segments"`
}

type output struct {
	URL         string      `json:"url"`
	BaseSwarmID string      `json:"baseSwarmId"`
	Format      string      `json:"format"`
	Refreshes   int         `json:"refreshes"`
	Streams     []streamOut `json:"streams"`
	Errors      []string    `json:"errors"`
}

type httpFetcher struct{ client *http.Client }

func (f httpFetcher) Fetch(ctx context.Context, u string, r *manifest.ByteRange) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	if r != nil {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.Start, 10)+"-"+strconv.FormatInt(r.End, 10))
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	switch {
	case resp.StatusCode == http.StatusOK && r != nil:
		// The server ignored the range: cut it out ourselves.
		if r.End >= int64(len(body)) || r.Start > r.End {
			return nil, "", fmt.Errorf("GET %s: range %d-%d beyond %d bytes", u, r.Start, r.End, len(body))
		}
		body = body[r.Start : r.End+1]
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusPartialContent && r != nil:
	default:
		return nil, "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, resp.Request.URL.String(), nil
}

func main() {
	manifestURL := flag.String("url", "", "manifest URL as the player is given it")
	swarm := flag.String("swarm", "", "the application's swarmId (default: the manifest URL without its query)")
	watch := flag.Duration("watch", 0, "follow live HLS playlists for this long (or until SIGINT/SIGTERM)")
	interval := flag.Duration("interval", time.Second, "refresh interval with -watch")
	timeout := flag.Duration("timeout", 20*time.Second, "timeout of the initial load")
	trace := flag.Bool("trace", false, "log every live refresh (media sequence, new segments and their ids) to stderr")
	flag.Parse()
	if *manifestURL == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: idcheck -url <manifest URL> [-swarm ID] [-watch D [-interval I] [-trace]]")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := httpFetcher{client: &http.Client{Timeout: 15 * time.Second}}
	opts := &manifest.Options{SwarmID: *swarm}

	out := output{URL: *manifestURL, Streams: []streamOut{}, Errors: []string{}}
	loadCtx, cancel := context.WithTimeout(ctx, *timeout)
	var p *manifest.Presentation
	var err error
	if *watch > 0 {
		p, err = loadStable(loadCtx, *manifestURL, f, opts)
	} else {
		p, err = manifest.Load(loadCtx, *manifestURL, f, opts)
	}
	cancel()
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
	}
	if p != nil && *watch > 0 {
		var tr io.Writer
		if *trace {
			tr = os.Stderr
		}
		n, errs := follow(ctx, p, f, *watch, *interval, tr)
		out.Refreshes = n
		for _, e := range errs {
			out.Errors = append(out.Errors, e.Error())
		}
	}
	if p != nil {
		out.URL = p.URL
		out.BaseSwarmID = p.BaseSwarmID
		out.Format = p.Format.String()
		for _, d := range p.Describe() {
			s := streamOut{
				Client: d.Client, Generation: d.Generation, Kind: d.Kind, Playlist: d.Playlist,
				StreamType: d.StreamType, Index: d.Index, Swarm: d.Swarm, InfoHash: d.InfoHash,
				Segments: make([]segmentOut, 0, len(d.Segments)),
			}
			for _, seg := range d.Segments {
				so := segmentOut{URL: seg.URL, ExternalID: seg.ExternalID}
				if seg.ByteRange != nil {
					so.ByteRange = &[2]int64{seg.ByteRange.Start, seg.ByteRange.End}
				}
				s.Segments = append(s.Segments, so)
			}
			out.Streams = append(out.Streams, s)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "idcheck:", err)
		os.Exit(1)
	}
	if len(out.Errors) > 0 {
		for _, e := range out.Errors {
			fmt.Fprintln(os.Stderr, "idcheck:", e)
		}
		os.Exit(1)
	}
}

// recordingFetcher keeps the last body it fetched of each URL.
type recordingFetcher struct {
	manifest.Fetcher
	bodies map[string][]byte
}

func (r recordingFetcher) Fetch(ctx context.Context, u string, br *manifest.ByteRange) ([]byte, string, error) {
	body, final, err := r.Fetcher.Fetch(ctx, u, br)
	if err == nil && br == nil {
		r.bodies[u] = body
	}
	return body, final, err
}

// loadStable loads a manifest that may be live, again until its media
// playlists are unchanged right after the load, for the reason fetchRound
// gives: a load whose video and audio playlists straddle a publisher update
// numbers the audio from a stale video playlist.
func loadStable(ctx context.Context, u string, f manifest.Fetcher, opts *manifest.Options) (*manifest.Presentation, error) {
	const maxLoads = 10
	for range maxLoads {
		rf := recordingFetcher{Fetcher: f, bodies: map[string][]byte{}}
		p, err := manifest.Load(ctx, u, rf, opts)
		if err != nil || p.Format != manifest.FormatHLS {
			return p, err
		}
		stable := true
		for _, s := range p.Streams {
			if !s.Loaded || !s.Live {
				continue
			}
			body, _, err := f.Fetch(ctx, s.URL, nil)
			if err != nil {
				return p, fmt.Errorf("refetching %s: %w", s.URL, err)
			}
			if !bytes.Equal(body, rf.bodies[s.URL]) {
				stable = false
				break
			}
		}
		if stable {
			return p, nil
		}
	}
	return nil, fmt.Errorf("loading %s: the live playlists changed during each of %d loads", u, maxLoads)
}

// follow refreshes every loaded live HLS stream of p every interval until
// d has passed or ctx ends, then leaves in each stream's Segments every
// segment ever seen (the departed ones first), so that Describe lists them
// all with the ids they got when first seen. With trace set, each refresh is
// logged there: round, stream, media sequence, segment count and the new
// segments with their ids per client.
func follow(ctx context.Context, p *manifest.Presentation, f manifest.Fetcher, d, interval time.Duration, trace io.Writer) (int, []error) {
	var live []*manifest.LiveStream
	if p.Format == manifest.FormatHLS {
		for _, s := range p.Streams {
			if s.Loaded && s.Live {
				l := manifest.NewLiveStream(p, s)
				l.Retain = 1 << 20
				live = append(live, l)
			}
		}
	}
	if len(live) == 0 {
		return 0, nil
	}
	var errs []error
	n := 0
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline.C:
			break loop
		case <-tick.C:
		}
		n++
		bodies, finals, err := fetchRound(ctx, f, live)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				errs = append(errs, err)
			}
			continue
		}
		for i, l := range live { // Streams order: video before audio, as shaka
			r, err := l.Refresh(finals[i], bodies[i])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if trace != nil {
				traceRefresh(trace, n, l.Stream(), r)
			}
		}
	}
	for _, l := range live {
		s := l.Stream()
		s.Segments = append(l.Retained(), s.Segments...)
	}
	return n, errs
}

// fetchRound fetches every followed playlist, again and again until two
// passes in a row bring the same bodies, so that a round is a copy of the
// playlists as they stood at one moment. A publisher update between the
// video and the audio fetches of a single pass would have the audio
// numbered from a stale video playlist, giving two audio segments one
// shaka id, which is the test tool's timing, not our model.
func fetchRound(ctx context.Context, f manifest.Fetcher, live []*manifest.LiveStream) (bodies [][]byte, finals []string, err error) {
	const maxPasses = 10
	for pass := 0; pass < maxPasses; pass++ {
		next := make([][]byte, len(live))
		nextFinals := make([]string, len(live))
		for i, l := range live {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			next[i], nextFinals[i], err = f.Fetch(rctx, l.Stream().URL, nil)
			cancel()
			if err != nil {
				return nil, nil, fmt.Errorf("refresh %s: %w", l.Stream().URL, err)
			}
		}
		if bodies != nil && slices.EqualFunc(bodies, next, bytes.Equal) {
			return next, nextFinals, nil
		}
		bodies, finals = next, nextFinals
	}
	return nil, nil, fmt.Errorf("refresh: the live playlists changed in each of %d passes in a row", maxPasses)
}

// traceRefresh writes one line per refresh of s in round n.
func traceRefresh(w io.Writer, n int, s *manifest.Stream, r *manifest.Refresh) {
	var b strings.Builder
	fmt.Fprintf(&b, "idcheck trace %s round %d %s seq %d n %d new", time.Now().Format("15:04:05.000"), n, s.URL, s.MediaSequence, len(s.Segments))
	for _, seg := range r.New {
		b.WriteString(" " + path.Base(seg.URL) + "=")
		for c, id := range seg.ExternalID {
			if c > 0 {
				b.WriteByte('/')
			}
			if id == manifest.NoExternalID {
				b.WriteByte('-')
			} else {
				b.WriteString(strconv.FormatInt(id, 10))
			}
		}
	}
	fmt.Fprintln(w, b.String())
}
