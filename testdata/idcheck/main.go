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
//	go run ./testdata/idcheck -url URL -watch 60s [-interval 1s]
//
// -url is the manifest URL exactly as the player is given it: the base swarm
// id is that URL without its query (after redirects), unless -swarm sets the
// application's swarmId. The manifest, its media playlists and DASH segment
// indexes are fetched over HTTP (manifest.Load).
//
// -watch follows every live HLS media playlist for that long (or until
// SIGINT/SIGTERM), refreshing each every -interval with manifest.LiveStream,
// and then prints every segment seen, with the id it got when first seen.
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
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
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
	flag.Parse()
	if *manifestURL == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: idcheck -url <manifest URL> [-swarm ID] [-watch D [-interval I]]")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := httpFetcher{client: &http.Client{Timeout: 15 * time.Second}}
	opts := &manifest.Options{SwarmID: *swarm}

	out := output{URL: *manifestURL, Streams: []streamOut{}, Errors: []string{}}
	loadCtx, cancel := context.WithTimeout(ctx, *timeout)
	p, err := manifest.Load(loadCtx, *manifestURL, f, opts)
	cancel()
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
	}
	if p != nil && *watch > 0 {
		n, errs := follow(ctx, p, f, *watch, *interval)
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

// follow refreshes every loaded live HLS stream of p every interval until
// d has passed or ctx ends, then leaves in each stream's Segments every
// segment ever seen (the departed ones first), so that Describe lists them
// all with the ids they got when first seen.
func follow(ctx context.Context, p *manifest.Presentation, f manifest.Fetcher, d, interval time.Duration) (int, []error) {
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
		for _, l := range live { // Streams order: video before audio, as shaka
			s := l.Stream()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			body, final, err := f.Fetch(rctx, s.URL, nil)
			cancel()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					errs = append(errs, fmt.Errorf("refresh %s: %w", s.URL, err))
				}
				continue
			}
			if _, err := l.Refresh(final, body); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, l := range live {
		s := l.Stream()
		s.Segments = append(l.Retained(), s.Segments...)
	}
	return n, errs
}
