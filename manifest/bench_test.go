package manifest

import (
	"fmt"
	"strings"
	"testing"
)

// vodPlaylist generates a VOD media playlist of n segments, like ffmpeg's.
func vodPlaylist(n int) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "#EXTINF:2.000000,\nseg_%05d.ts\n", i)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return []byte(b.String())
}

func BenchmarkParseHLSMediaPlaylist10000(b *testing.B) {
	body := vodPlaylist(10000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseHLS("https://cdn.example.com/vod/360p/index.m3u8", body, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(p.Streams[0].Segments); n != 10000 {
			b.Fatalf("%d segments", n)
		}
	}
}

func BenchmarkParseHLSMasterAndMedia(b *testing.B) {
	master := readTestdata(b, "hls/vod/master.m3u8")
	media := map[string][]byte{}
	for _, name := range []string{"360p/index.m3u8", "180p/index.m3u8", "audio/en.m3u8", "audio/surround.m3u8"} {
		media[vodBase+name] = readTestdata(b, "hls/vod/"+name)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseHLS(vodBase+"master.m3u8", master, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range p.Streams {
			if err := p.LoadMediaPlaylist(s, "", media[s.URL]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseDASHNumber(b *testing.B) {
	body := readTestdata(b, "dash/number.mpd")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDASH(mpdURL, body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
