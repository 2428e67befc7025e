package seeder

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// liveOrigin publishes a sliding-window live HLS playlist whose media
// sequence advances every step.
type liveOrigin struct {
	mu    sync.Mutex
	start time.Time
	step  time.Duration
	win   int
}

const liveURL = "http://live.test/live/master.m3u8"

func (o *liveOrigin) seq() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int64(time.Since(o.start) / o.step)
}

func liveSegment(n int64) []byte { return bytes.Repeat([]byte(fmt.Sprintf("segment-%06d|", n)), 2000) }

// Fetch implements manifest.Fetcher.
func (o *liveOrigin) Fetch(_ context.Context, raw string, _ *manifest.ByteRange) ([]byte, string, error) {
	u, _ := url.Parse(raw)
	switch {
	case strings.HasSuffix(u.Path, "master.m3u8"):
		return []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\nmedia.m3u8\n"), raw, nil
	case strings.HasSuffix(u.Path, "media.m3u8"):
		seq := o.seq()
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
		for i := range int64(o.win) {
			fmt.Fprintf(&b, "#EXTINF:%.3f,\nseg%d.ts\n", o.step.Seconds(), seq+i)
		}
		return []byte(b.String()), raw, nil
	default:
		var n int64
		if _, err := fmt.Sscanf(u.Path, "/live/seg%d.ts", &n); err != nil {
			return nil, "", fmt.Errorf("no such object %s", raw)
		}
		return liveSegment(n), raw, nil
	}
}

// TestSeederFollowsLivePlaylist: new segments of a live playlist are
// fetched and announced as they appear, and served with their bytes.
func TestSeederFollowsLivePlaylist(t *testing.T) {
	origin := &liveOrigin{start: time.Now(), step: 400 * time.Millisecond, win: 4}
	env := newTestEnv(t, func(c *Config) { c.Source = origin })
	p, err := manifest.Load(context.Background(), liveURL, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	ih := p.Streams[0].Swarms[manifest.HLSJS].InfoHash
	env.seed(liveURL, ih)
	b, dc := env.connect(ih)
	var last []int64
	deadline := time.Now().Add(10 * time.Second)
	seen := map[int64]bool{}
	for time.Now().Before(deadline) && len(seen) < 10 {
		a, ok := b.command().(p2p.SegmentsAnnouncement)
		if !ok {
			t.Fatal("expected announcements only")
		}
		for _, id := range a.Loaded {
			seen[id] = true
		}
		last = a.Loaded
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct ids announced in 10 s: %v", len(seen), last)
	}
	// hls.js ids of a live stream are media sequence numbers.
	newest := slices.Max(last)
	if cur := origin.seq() + int64(origin.win) - 1; newest < cur-2 || newest > cur {
		t.Errorf("newest announced id %d, playlist's newest %d", newest, cur)
	}
	if len(last) > origin.win+1 {
		t.Errorf("announced %d ids, the window is %d: %v", len(last), origin.win, last)
	}
	got := b.request(dc, newest, 1, 0)
	if !bytes.Equal(got, liveSegment(newest)) {
		t.Fatalf("segment %d: wrong bytes", newest)
	}
}

// TestSeederRareOnly: with the rare-only policy a segment that another peer
// holds is withdrawn from the seeder's announcement.
func TestSeederRareOnly(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.RareOnly, c.RareThreshold = true, 1 })
	ih, ms := demoSwarm(t)
	env.seed(demoURL, ih)
	b, dc := env.connect(ih)
	a := b.command().(p2p.SegmentsAnnouncement)
	if len(a.Loaded) != len(ms.Segments) {
		t.Fatalf("first announcement has %d ids, want all %d", len(a.Loaded), len(ms.Segments))
	}
	// The browser now holds 0..9: the seeder stops announcing them.
	frames, _ := p2p.Encode(p2p.SegmentsAnnouncement{Loaded: []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, p2p.DefaultMaxMessageSize)
	for _, f := range frames {
		dc.Send(f)
	}
	a2, ok := b.command().(p2p.SegmentsAnnouncement)
	if !ok || len(a2.Loaded) != len(ms.Segments)-10 || a2.Loaded[0] != 10 {
		t.Fatalf("after the browser announced 0..9 the seeder announced %v", a2.Loaded)
	}
}

// TestSeederMaxPeers: offers beyond the peer connection cap are not
// answered.
func TestSeederMaxPeers(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxPeers = 1 })
	ih, _ := demoSwarm(t)
	env.seed(demoURL, ih)
	env.connect(ih)
	b2 := newBrowser(t, env, ih)
	b2.serveTracker()
	b2.announceWithOffer()
	waitFor(t, "the second peer to be refused", func() bool { return env.seeder.Stats().PeersRefused >= 1 })
	select {
	case <-b2.dc:
		t.Fatal("the seeder connected beyond max_peers")
	case <-time.After(500 * time.Millisecond):
	}
	if n := env.seeder.Stats().PeerConnections; n != 1 {
		t.Errorf("%d peer connections, cap 1", n)
	}
}

// TestSeederRemoveStream leaves the swarms and closes their connections.
func TestSeederRemoveStream(t *testing.T) {
	env := newTestEnv(t, nil)
	ih, _ := demoSwarm(t)
	env.seed(demoURL, ih)
	env.connect(ih)
	if !env.seeder.RemoveStream(demoURL) {
		t.Fatal("RemoveStream: unknown")
	}
	waitFor(t, "the seeder to leave the swarm", func() bool {
		e, _ := env.tracker.Swarms().Scrape(string(ih))
		return e.Complete == 0
	})
	if n := env.seeder.Stats().PeerConnections; n != 0 {
		t.Errorf("%d peer connections after RemoveStream", n)
	}
	if len(env.seeder.Streams()) != 0 {
		t.Error("stream still listed")
	}
}

// mpdOrigin serves a dynamic MPD whose window moves with the clock.
type mpdOrigin struct {
	start time.Time
	// audio adds an audio AdaptationSet; stallAudio makes its segments
	// hang until the fetch is given up.
	audio, stallAudio bool
}

const mpdURL = "http://live.test/dash/live.mpd"

func (o *mpdOrigin) Fetch(ctx context.Context, raw string, _ *manifest.ByteRange) ([]byte, string, error) {
	u, _ := url.Parse(raw)
	if strings.HasSuffix(u.Path, ".mpd") {
		audio := ""
		if o.audio {
			audio = `
    <AdaptationSet contentType="audio" mimeType="audio/mp4" lang="en">
      <SegmentTemplate timescale="1000" duration="1000" startNumber="1" media="a-$Number$.m4s" initialization="a-init.mp4"/>
      <Representation id="a" bandwidth="64000" codecs="mp4a.40.2" audioSamplingRate="48000"/>
    </AdaptationSet>`
		}
		return []byte(`<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="` + o.start.UTC().Format(time.RFC3339) + `" timeShiftBufferDepth="PT6S" minimumUpdatePeriod="PT1S">
  <Period id="p0" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="1000" duration="1000" startNumber="1" media="v-$Number$.m4s" initialization="v-init.mp4"/>
      <Representation id="v" bandwidth="100000" codecs="avc1.64001e" width="320" height="180"/>
    </AdaptationSet>` + audio + `
  </Period>
</MPD>`), raw, nil
	}
	var n int64
	if _, err := fmt.Sscanf(u.Path, "/dash/a-%d.m4s", &n); err == nil && o.audio {
		if o.stallAudio {
			<-ctx.Done()
			return nil, "", ctx.Err()
		}
		return liveSegment(-n), raw, nil
	}
	if _, err := fmt.Sscanf(u.Path, "/dash/v-%d.m4s", &n); err != nil {
		return nil, "", fmt.Errorf("no such object %s", raw)
	}
	return liveSegment(n), raw, nil
}

// TestSeederFollowsDynamicMPD: a live MPD's new segments are fetched and
// announced as the window moves, under shaka's time-derived ids.
func TestSeederFollowsDynamicMPD(t *testing.T) {
	origin := &mpdOrigin{start: time.Now().Add(-60 * time.Second).Truncate(time.Second)}
	env := newTestEnv(t, func(c *Config) { c.Source = origin })
	p, err := manifest.Load(context.Background(), mpdURL, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	ih := p.Streams[0].Swarms[manifest.Shaka].InfoHash
	env.seed(mpdURL, ih)
	b, dc := env.connect(ih)
	first := b.command().(p2p.SegmentsAnnouncement).Loaded
	var last []int64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		last = b.command().(p2p.SegmentsAnnouncement).Loaded
		if len(last) > 0 && len(first) > 0 && slices.Max(last) >= slices.Max(first)+4 {
			break
		}
	}
	if len(first) == 0 || len(last) == 0 || slices.Max(last) < slices.Max(first)+4 {
		t.Fatalf("the announced window did not move: first %v, last %v", first, last)
	}
	// Shaka's DASH id is trunc(start / 0.5): segment n starts at n-1 s.
	newest := slices.Max(last)
	if newest%2 != 0 {
		t.Fatalf("id %d is not a 1 s segment start / 0.5", newest)
	}
	n := newest/2 + 1
	if got := b.request(dc, newest, 1, 0); !bytes.Equal(got, liveSegment(n)) {
		t.Fatalf("segment %d (number %d): wrong bytes", newest, n)
	}
}

// TestSeederDynamicMPDStreamsDoNotWaitForEachOther: an audio stream whose
// segments never arrive holds up neither the MPD's reloads nor the video
// stream's announcements (the follower once prefetched every stream's new
// segments in turn, inside its reload loop).
func TestSeederDynamicMPDStreamsDoNotWaitForEachOther(t *testing.T) {
	origin := &mpdOrigin{start: time.Now().Add(-60 * time.Second).Truncate(time.Second), audio: true, stallAudio: true}
	env := newTestEnv(t, func(c *Config) { c.Source = origin })
	p, err := manifest.Load(context.Background(), mpdURL, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 2 {
		t.Fatalf("%d streams, want video and audio", len(p.Streams))
	}
	ih := p.Streams[0].Swarms[manifest.Shaka].InfoHash
	env.seed(mpdURL, ih)
	b, _ := env.connect(ih)
	first := b.command().(p2p.SegmentsAnnouncement).Loaded
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		last := b.command().(p2p.SegmentsAnnouncement).Loaded
		if len(first) > 0 && len(last) > 0 && slices.Max(last) >= slices.Max(first)+4 {
			return
		}
		if len(first) == 0 {
			first = last
		}
	}
	t.Fatalf("the video announcements did not move while the audio segments stalled (first %v)", first)
}

// renditionOrigin publishes a live HLS presentation with two video
// variants and an audio rendition, aligned (one media sequence for all).
// The sequence advances once every playlist has been fetched twice at the
// current one, so a refresh round never straddles an update and the
// expected ids are exact.
type renditionOrigin struct {
	mu      sync.Mutex
	seq     int64
	fetched map[string]int // playlist -> fetches at seq
	// stall, if set, makes the segments of that playlist hang until the
	// fetch is given up.
	stall string
}

const renditionURL = "http://live.test/renditions/master.m3u8"

var renditionPlaylists = []string{"v0", "v1", "audio"}

func renditionSegment(playlist string, n int64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%s-%06d|", playlist, n)), 1500)
}

// Fetch implements manifest.Fetcher.
func (o *renditionOrigin) Fetch(ctx context.Context, raw string, _ *manifest.ByteRange) ([]byte, string, error) {
	u, _ := url.Parse(raw)
	name := strings.TrimPrefix(u.Path, "/renditions/")
	if name == "master.m3u8" {
		return []byte("#EXTM3U\n" +
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"en\",DEFAULT=YES,URI=\"audio.m3u8\"\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aac\"\nv0.m3u8\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=1600000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aac\"\nv1.m3u8\n"), raw, nil
	}
	if playlist, ok := strings.CutSuffix(name, ".m3u8"); ok && slices.Contains(renditionPlaylists, playlist) {
		o.mu.Lock()
		seq := o.seq
		o.fetched[playlist]++
		advance := true
		for _, p := range renditionPlaylists {
			advance = advance && o.fetched[p] >= 2
		}
		if advance {
			o.seq++
			clear(o.fetched)
		}
		o.mu.Unlock()
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
		for i := range int64(4) {
			fmt.Fprintf(&b, "#EXTINF:0.600,\n%s-%d.ts\n", playlist, seq+i)
		}
		return []byte(b.String()), raw, nil
	}
	var playlist string
	var n int64
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		playlist = name[:i]
		if _, err := fmt.Sscanf(name[i+1:], "%d.ts", &n); err == nil && slices.Contains(renditionPlaylists, playlist) {
			if playlist == o.stall {
				<-ctx.Done()
				return nil, "", ctx.Err()
			}
			return renditionSegment(playlist, n), raw, nil
		}
	}
	return nil, "", fmt.Errorf("no such object %s", raw)
}

// TestSeederFollowsLiveRenditionsTogether: the playlists of a live HLS
// presentation are refreshed together, video before audio, so that the
// shaka (core 2.2) ids of new audio segments, which are numbered from the
// newest video segment, are right, and each id serves its own segment.
// Followers that refreshed each playlist on its own goroutine shared the
// presentation's video counter without a lock (go test -race) and could
// number an audio segment from a stale video copy, giving two segments one
// id.
func TestSeederFollowsLiveRenditionsTogether(t *testing.T) {
	followRenditions(t, &renditionOrigin{seq: 100, fetched: map[string]int{}})
}

// TestSeederLivePlaylistsDoNotWaitForEachOther: segments of one playlist
// that never arrive hold up neither the refreshes nor the other playlists'
// segments (each playlist has its own prefetch worker).
func TestSeederLivePlaylistsDoNotWaitForEachOther(t *testing.T) {
	followRenditions(t, &renditionOrigin{seq: 100, fetched: map[string]int{}, stall: "v0"})
}

// followRenditions seeds origin's presentation and checks that the shaka
// audio swarm's announcement advances and that each id serves its own
// audio segment.
func followRenditions(t *testing.T, origin *renditionOrigin) {
	t.Helper()
	env := newTestEnv(t, func(c *Config) { c.Source = origin })
	p, err := manifest.Load(context.Background(), renditionURL, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	var audio *manifest.Stream
	for _, s := range p.Streams {
		if s.Attributes.Kind == p2p.KindAudioRendition {
			audio = s
		}
	}
	if audio == nil || len(p.Streams) != 3 || !audio.PlayedBy(manifest.Shaka) {
		t.Fatalf("want 2 variants and an audio rendition shaka plays, got %d streams", len(p.Streams))
	}
	ih := audio.Swarms[manifest.Shaka].InfoHash
	env.seed(renditionURL, ih)
	b, dc := env.connect(ih)
	first := int64(-1)
	var newest int64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && newest < first+5 {
		a, ok := b.command().(p2p.SegmentsAnnouncement)
		if !ok {
			t.Fatal("expected announcements only")
		}
		if len(a.Loaded) == 0 {
			continue
		}
		if first < 0 {
			first = slices.Max(a.Loaded)
		}
		newest = slices.Max(a.Loaded)
	}
	if newest < first+5 {
		t.Fatalf("the newest announced id went from %d to only %d in 15 s", first, newest)
	}
	// Aligned playlists: shaka's id of an audio segment is its media
	// sequence number.
	for id := newest - 3; id <= newest; id++ {
		if got := b.request(dc, id, id, 0); !bytes.Equal(got, renditionSegment("audio", id)) {
			t.Fatalf("id %d served %.12q…, want audio segment %d", id, got, id)
		}
	}
}
