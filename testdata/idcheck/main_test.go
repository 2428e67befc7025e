package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// racingOrigin publishes an aligned live HLS presentation (one video
// variant, one audio rendition) and moves it on by one segment right after
// every third fetch of the video playlist, which lands the update between a
// pass's video and audio fetches: the timing that made the identity test
// flaky.
type racingOrigin struct {
	mu          sync.Mutex
	seq         int64
	videoGets   int
	updateEvery int
}

func (o *racingOrigin) Fetch(_ context.Context, raw string, _ *manifest.ByteRange) ([]byte, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	name := strings.TrimPrefix(u.Path, "/live/")
	if name == "master.m3u8" {
		return []byte("#EXTM3U\n" +
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"en\",DEFAULT=YES,URI=\"audio.m3u8\"\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aac\"\nvideo.m3u8\n"), raw, nil
	}
	playlist, ok := strings.CutSuffix(name, ".m3u8")
	if !ok || (playlist != "video" && playlist != "audio") {
		return nil, "", fmt.Errorf("no such object %s", raw)
	}
	o.mu.Lock()
	seq := o.seq
	if playlist == "video" {
		o.videoGets++
		if o.videoGets%o.updateEvery == 0 {
			o.seq++
		}
	}
	o.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	for i := range int64(5) {
		fmt.Fprintf(&b, "#EXTINF:2.000,\n%s-%d.ts\n", playlist, seq+i)
	}
	return []byte(b.String()), raw, nil
}

// TestFollowNumbersFromOneMoment: with updates landing between the video
// and the audio fetches, idcheck still numbers every shaka audio segment by
// its media sequence (the playlists are aligned), and no id is given twice.
func TestFollowNumbersFromOneMoment(t *testing.T) {
	origin := &racingOrigin{seq: 100, updateEvery: 3}
	const u = "http://origin.test/live/master.m3u8"
	ctx := context.Background()
	p, err := loadStable(ctx, u, origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, errs := follow(ctx, p, origin, 300*time.Millisecond, 10*time.Millisecond, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if n < 10 {
		t.Fatalf("only %d refresh rounds", n)
	}
	var audio *manifest.Stream
	for _, s := range p.Streams {
		if strings.HasSuffix(s.URL, "audio.m3u8") {
			audio = s
		}
	}
	if audio == nil {
		t.Fatal("no audio stream")
	}
	if len(audio.Segments) < 10 {
		t.Fatalf("only %d audio segments seen", len(audio.Segments))
	}
	seen := map[int64]string{}
	for _, seg := range audio.Segments {
		id := seg.ExternalID[manifest.Shaka]
		if other, ok := seen[id]; ok {
			t.Errorf("shaka id %d given to %s and %s", id, other, seg.URL)
		}
		seen[id] = seg.URL
		if want := fmt.Sprintf("audio-%d.ts", id); !strings.HasSuffix(seg.URL, want) {
			t.Errorf("%s has shaka id %d (want %s)", seg.URL, id, want)
		}
	}
}
