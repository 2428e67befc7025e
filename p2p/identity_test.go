package p2p

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// Spec §7.1 rows, each with attributes that produce its preimage.
var streamIndexVectors = []struct {
	name     string
	attrs    StreamAttributes
	preimage string
	index    string
}{
	{
		name: "720p variant",
		attrs: StreamAttributes{Bandwidth: 2000000, Resolution: "1280x720",
			Codecs: "avc1.64001f,mp4a.40.2", FrameRate: "30.000", VideoRange: "SDR"},
		preimage: "2000000-avc1.64001f-1280-720----30-SDR",
		index:    "EDSJuhWcg4AyVz2Iky/BJ8hVmjA=",
	},
	{
		name: "360p variant",
		attrs: StreamAttributes{Bandwidth: 800000, AverageBandwidth: 700000, Resolution: "640x360",
			Codecs: "mp4a.40.2, avc1.42C01E", FrameRate: "30"},
		preimage: "800000-avc1.42c01e-640-360----30-",
		index:    "sdkPgPpvDXIajE4Z4o8cng9Pn/s=",
	},
	{
		name: "decimal avc1 codec",
		attrs: StreamAttributes{AverageBandwidth: 500000, Resolution: "416x234",
			Codecs: "avc1.66.30,mp4a.40.2"},
		preimage: "500000-avc1.42001e-416-234-----",
		index:    "Wt1dTpPPhyarU6TIitnARpy7usg=",
	},
	{
		name:     "media playlist loaded directly",
		attrs:    StreamAttributes{},
		preimage: "0--------",
		index:    "UYnLxGhQilEV4D0HbCx+kRv0ZF0=",
	},
	{
		name: "audio rendition",
		attrs: StreamAttributes{Kind: KindAudioRendition, GroupCodecs: "avc1.64001f,mp4a.40.2",
			Language: "en", Channels: "2", Name: "English"},
		preimage: "0-mp4a.40.2---en-2-english--",
		index:    "bdjQ1B4N2yrcTDHyU5j7iDGV9sY=",
	},
	{
		name: "audio rendition und, 6/JOC, padded name",
		attrs: StreamAttributes{Kind: KindAudioRendition, GroupCodecs: "hvc1.2.4.L153.B0,ec-3",
			Language: "und", Channels: "6/JOC", Name: " Surround "},
		preimage: "0-ec-3----6-surround--",
		index:    "24RxUCKslMG/Md2leM2T1iz0hH8=",
	},
}

func TestStreamIndexVectors(t *testing.T) {
	for _, v := range streamIndexVectors {
		t.Run(v.name, func(t *testing.T) {
			if got := StreamShortID(v.preimage); got != v.index {
				t.Errorf("StreamShortID(%q) = %q, want %q", v.preimage, got, v.index)
			}
			if got := StreamPreimage(v.attrs); got != v.preimage {
				t.Errorf("StreamPreimage = %q, want %q", got, v.preimage)
			}
			if got := (Core23{}).StreamIndex(v.attrs); got != v.index {
				t.Errorf("Core23.StreamIndex = %q, want %q", got, v.index)
			}
		})
	}
}

func TestInfoHashVectors(t *testing.T) {
	tests := []struct {
		gen   ClientGeneration
		swarm string
		hash  InfoHash
		hex   string
	}{
		{Core23{}, "v2-https://cdn.example.com/live/master.m3u8-main-EDSJuhWcg4AyVz2Iky/BJ8hVmjA=",
			"tBBwJ0eaWm83RZGsvsTu", "744242774a306561576d3833525a477376735475"},
		{Core23{}, "v2-https://cdn.example.com/live/master.m3u8-secondary-bdjQ1B4N2yrcTDHyU5j7iDGV9sY=",
			"pWlB9P4lKCYQrRLIdUfn", "70576c423950346c4b43595172524c496455666e"},
		{Core23{}, "v2-my-custom-swarm-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=",
			"D+9WRUIkje9XktY2+kTZ", "442b39575255496b6a6539586b7459322b6b545a"},
		{Core22{}, "v2-https://cdn.example.com/vod/manifest.mpd-main-0",
			"JnFsqAw8aq1j2LcC9a7Y", "4a6e4673714177386171316a324c634339613759"},
		{Core22{}, "v2-https://cdn.example.com/vod/manifest.mpd-secondary-0",
			"tCR2uFj8pnaz+lxfC6tD", "7443523275466a38706e617a2b6c786643367444"},
		{Core22{}, "v2-https://cdn.example.com/vod/master.m3u8-main-1",
			"u4zNRpCFQMwa8sXWFWHG", "75347a4e52704346514d77613873585746574847"},
	}
	for _, tc := range tests {
		got := tc.gen.InfoHash(tc.swarm)
		if got != tc.hash {
			t.Errorf("%s.InfoHash(%q) = %q, want %q", tc.gen.Name(), tc.swarm, got, tc.hash)
		}
		if got.Hex() != tc.hex {
			t.Errorf("%s.InfoHash(%q).Hex() = %s, want %s", tc.gen.Name(), tc.swarm, got.Hex(), tc.hex)
		}
		if b := got.Bytes(); !bytes.Equal(b[:], []byte(tc.hash)) || len(got) != InfoHashLen {
			t.Errorf("Bytes() = %q", b)
		}
	}
}

func TestIdentify(t *testing.T) {
	live := BaseSwarmID("https://cdn.example.com/live/master.m3u8?token=abc&x=1")
	tests := []struct {
		gen   ClientGeneration
		base  string
		attrs StreamAttributes
		want  SwarmIdentity
	}{
		{Core23{}, live, streamIndexVectors[0].attrs, SwarmIdentity{
			Generation: "core-2.3", Type: StreamMain, Index: "EDSJuhWcg4AyVz2Iky/BJ8hVmjA=",
			Swarm:    "v2-https://cdn.example.com/live/master.m3u8-main-EDSJuhWcg4AyVz2Iky/BJ8hVmjA=",
			InfoHash: "tBBwJ0eaWm83RZGsvsTu"}},
		{Core23{}, live, streamIndexVectors[4].attrs, SwarmIdentity{
			Generation: "core-2.3", Type: StreamSecondary, Index: "bdjQ1B4N2yrcTDHyU5j7iDGV9sY=",
			Swarm:    "v2-https://cdn.example.com/live/master.m3u8-secondary-bdjQ1B4N2yrcTDHyU5j7iDGV9sY=",
			InfoHash: "pWlB9P4lKCYQrRLIdUfn"}},
		{Core23{}, "my-custom-swarm", StreamAttributes{}, SwarmIdentity{
			Generation: "core-2.3", Type: StreamMain, Index: "UYnLxGhQilEV4D0HbCx+kRv0ZF0=",
			Swarm: "v2-my-custom-swarm-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", InfoHash: "D+9WRUIkje9XktY2+kTZ"}},
		{Core22{}, "https://cdn.example.com/vod/manifest.mpd", StreamAttributes{Ordinal: 0}, SwarmIdentity{
			Generation: "core-2.2", Type: StreamMain, Index: "0",
			Swarm: "v2-https://cdn.example.com/vod/manifest.mpd-main-0", InfoHash: "JnFsqAw8aq1j2LcC9a7Y"}},
		{Core22{}, "https://cdn.example.com/vod/manifest.mpd", StreamAttributes{Kind: KindAudioRendition}, SwarmIdentity{
			Generation: "core-2.2", Type: StreamSecondary, Index: "0",
			Swarm: "v2-https://cdn.example.com/vod/manifest.mpd-secondary-0", InfoHash: "tCR2uFj8pnaz+lxfC6tD"}},
		{Core22{}, "https://cdn.example.com/vod/master.m3u8", StreamAttributes{Ordinal: 1, Bandwidth: 5}, SwarmIdentity{
			Generation: "core-2.2", Type: StreamMain, Index: "1",
			Swarm: "v2-https://cdn.example.com/vod/master.m3u8-main-1", InfoHash: "u4zNRpCFQMwa8sXWFWHG"}},
	}
	for _, tc := range tests {
		if got := Identify(tc.gen, tc.base, tc.attrs); got != tc.want {
			t.Errorf("Identify(%s, %q) =\n%+v, want\n%+v", tc.gen.Name(), tc.base, got, tc.want)
		}
	}
	// An explicit type wins over the default (shaka audio-only content).
	if got := Identify(Core22{}, "b", StreamAttributes{Kind: KindAudioRendition, Type: StreamMain, Ordinal: 2}); got.Swarm != "v2-b-main-2" {
		t.Errorf("explicit type ignored: %q", got.Swarm)
	}
	gens := Generations()
	if len(gens) != 2 || gens[0].Name() != "core-2.3" || gens[1].Name() != "core-2.2" ||
		gens[0].PeerIDPrefix() != "-PM0203-" || gens[1].PeerIDPrefix() != "-PM0202-" {
		t.Errorf("Generations() = %v", gens)
	}
}

func TestBaseSwarmID(t *testing.T) {
	for in, want := range map[string]string{
		"https://cdn.example.com/live/master.m3u8":          "https://cdn.example.com/live/master.m3u8",
		"https://cdn.example.com/live/master.m3u8?a=1?b=2":  "https://cdn.example.com/live/master.m3u8",
		"https://cdn.example.com/live/master.m3u8#frag":     "https://cdn.example.com/live/master.m3u8#frag",
		"https://cdn.example.com/live/master.m3u8#frag?x=1": "https://cdn.example.com/live/master.m3u8#frag",
		"https://cdn.example.com/live/master.m3u8?x=1#frag": "https://cdn.example.com/live/master.m3u8",
		"": "",
	} {
		if got := BaseSwarmID(in); got != want {
			t.Errorf("BaseSwarmID(%q) = %q, want %q", in, got, want)
		}
	}
	if got := StreamSwarm("base", StreamSecondary, "3"); got != "v2-base-secondary-3" {
		t.Errorf("StreamSwarm = %q", got)
	}
}

func TestNormalizeCodecs(t *testing.T) {
	for in, want := range map[string]string{
		"avc1.66.30":                    "avc1.42001e",
		"avc.77.30":                     "avc.4d001e",
		"AVC1.100.40":                   "avc1.640028",
		"avc1.66.30 , mp4a.40.2":        "avc1.42001e,mp4a.40.2",
		" hvc1.1.6.L93.B0 ,avc1.64001F": "avc1.64001f,hvc1.1.6.l93.b0",
		"avc1.066.30":                   "avc1.066.30", // not canonical decimal
		"avc1.66.30.1":                  "avc1.66.30.1",
		"avc1.66":                       "avc1.66",
		"avc1.-5.7":                     "avc1.-50007", // as JavaScript prints it
		"avc1.0.0":                      "avc1.000000",
		"avc3.66.30":                    "avc3.66.30",
		"avc1.4d401f":                   "avc1.4d401f",
		"":                              "",
		"b,a,,C":                        ",a,b,c",
	} {
		if got := NormalizeCodecs(in); got != want {
			t.Errorf("NormalizeCodecs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHLSCodecsOfType(t *testing.T) {
	tests := []struct{ in, video, audio string }{
		{"avc1.64001f,mp4a.40.2", "avc1.64001f", "mp4a.40.2"},
		{"mp4a.40.2, avc1.64001f", "avc1.64001f", "mp4a.40.2"},
		{"hvc1.2.4.L123.B0/foo,ec-3", "hvc1.2.4.L123.B0", "ec-3"},
		{"dvh1.05.06,hvc1.2.4.L153.B0, ec-3 mp4a.40.2", "dvh1.05.06,hvc1.2.4.L153.B0", "ec-3,mp4a.40.2"},
		{"AVC1.64001f,MP4A.40.2", "", ""}, // hls.js matches four-character codes case-sensitively
		{"av01.0.08M.08,Opus,fLaC", "av01.0.08M.08", "Opus,fLaC"},
		{"wvtt,stpp.ttml.im1t", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		if got := HLSVideoCodecs(tc.in); got != tc.video {
			t.Errorf("HLSVideoCodecs(%q) = %q, want %q", tc.in, got, tc.video)
		}
		if got := HLSAudioCodecs(tc.in); got != tc.audio {
			t.Errorf("HLSAudioCodecs(%q) = %q, want %q", tc.in, got, tc.audio)
		}
	}
}

func TestStreamPreimageFields(t *testing.T) {
	base := StreamAttributes{Bandwidth: 1000, Codecs: "avc1.64001f", Resolution: "640x360"}
	fps := map[string]string{
		"30.000": "30", "29.970": "29.97", "59.94": "59.94", "25": "25", "23.976": "23.976",
		" 30 ": "30", "0x1E": "30", "1e3": "1000", "0": "0", "abc": "", "": "", "30fps": "",
		"Infinity": "Infinity", ".5": "0.5", "5.": "5", "-0": "0", "1e400": "Infinity",
		"0b11": "3", "0o17": "15", "0x": "", "-0x1E": "", "1_000": "", "0x1_0": "", "inf": "",
		"NaN": "", "+30": "30", "3e": "", ".": "", "1e-400": "0", "0x1p3": "",
	}
	for in, want := range fps {
		a := base
		a.FrameRate = in
		if got, w := StreamPreimage(a), "1000-avc1.64001f-640-360----"+want+"-"; got != w {
			t.Errorf("FRAME-RATE %q: preimage %q, want %q", in, got, w)
		}
	}
	for _, tc := range []struct {
		attrs StreamAttributes
		want  string
	}{
		{StreamAttributes{Bandwidth: 1000, VideoRange: " pq "}, "1000-------" + "-PQ"},
		{StreamAttributes{Bandwidth: 1000, Resolution: "01280x0720"}, "1000--1280-720-----"},
		{StreamAttributes{Bandwidth: 1000, Resolution: "1280X720"}, "1000--------"},
		{StreamAttributes{Bandwidth: 1000, Resolution: "1280x"}, "1000--------"},
		{StreamAttributes{Bandwidth: 1000, Resolution: "0x0"}, "1000--0-0-----"},
		// Bitrate 0: every other field is empty.
		{StreamAttributes{Codecs: "avc1.64001f", Resolution: "1x1", FrameRate: "30", VideoRange: "SDR"}, "0--------"},
		{StreamAttributes{Bandwidth: MaxSafeInteger + 1}, "Infinity--------"},
		// Variants never carry audio-only fields.
		{StreamAttributes{Bandwidth: 1, Language: "en", Channels: "2", Name: "x"}, "1--------"},
		{StreamAttributes{Kind: KindAudioRendition, Language: "ENG"}, "0----en--eng--"},
		{StreamAttributes{Kind: KindAudioRendition, Language: "UND", Name: "Und"}, "0----un--und--"},
		{StreamAttributes{Kind: KindAudioRendition, Language: "und"}, "0------und--"},
		{StreamAttributes{Kind: KindAudioRendition, Channels: "16/IMMERSIVE", Name: "\u00a0Dolby Atmos\ufeff"}, "0-----16-dolby atmos--"},
		{StreamAttributes{Kind: KindAudioRendition, GroupCodecs: "mp4a.40.5,mp4a.40.2"}, "0-mp4a.40.2,mp4a.40.5-------"},
		{StreamAttributes{Kind: KindAudioRendition, Name: "ΟΔΟΣ"}, "0------\u03bf\u03b4\u03bf\u03c2--"},
	} {
		if got := StreamPreimage(tc.attrs); got != tc.want {
			t.Errorf("StreamPreimage(%+v) = %q, want %q", tc.attrs, got, tc.want)
		}
	}
}

func TestJSNumberToString(t *testing.T) {
	for v, want := range map[float64]string{
		30: "30", 29.97: "29.97", 1e21: "1e+21", 1.5e-7: "1.5e-7", 123e-20: "1.23e-18",
		0.000001: "0.000001", 1e-7: "1e-7", 123456789012345680000: "123456789012345680000",
		-2.5: "-2.5", math.Copysign(0, -1): "0", math.NaN(): "NaN", math.Inf(-1): "-Infinity",
	} {
		if got := jsNumberToString(v); got != want {
			t.Errorf("jsNumberToString(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestJSStringHelpers(t *testing.T) {
	if got := jsSliceUTF16("😀x", 1); got != "\ufffd" {
		t.Errorf("jsSliceUTF16 split pair = %q", got)
	}
	if got := jsSliceUTF16("éa😀", 2); got != "éa" {
		t.Errorf("jsSliceUTF16 = %q", got)
	}
	if got := jsToLower("İ"); got != "i\u0307" {
		t.Errorf("jsToLower(İ) = %q", got)
	}
	if compareUTF16("\uffff", "😀") <= 0 || compareUTF16("a", "ab") >= 0 || compareUTF16("b", "a") <= 0 || compareUTF16("x", "x") != 0 {
		t.Errorf("compareUTF16 does not order by UTF-16 code units")
	}
}

func TestNewPeerID(t *testing.T) {
	rnd := bytes.NewReader(bytes.Repeat([]byte{0, 61, 62, 247, 248, 255, 25, 26}, 8))
	id, err := NewPeerID("-CP0001-", rnd)
	if err != nil {
		t.Fatal(err)
	}
	// 248 and 255 are rejected; 62 and 247 wrap around to 'A' and '9'.
	if want := "-CP0001-A9A9ZaA9A9Za"; id != want {
		t.Errorf("NewPeerID = %q, want %q", id, want)
	}
	id, err = NewPeerID("", bytes.NewReader(make([]byte, 64)))
	if err != nil || id != strings.Repeat("A", 20) {
		t.Errorf("NewPeerID empty prefix = %q, %v", id, err)
	}
	id, err = NewPeerID("-GO0001-abcdefghijkl", bytes.NewReader(nil))
	if err != nil || id != "-GO0001-abcdefghijkl" {
		t.Errorf("NewPeerID full prefix = %q, %v", id, err)
	}
	for _, p := range []string{"-GO0001-abcdefghijklm", "-GÖ0001-", "-GO\x000001-"} {
		if _, err := NewPeerID(p, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrInvalidPeerIDPrefix) {
			t.Errorf("NewPeerID(%q) error = %v", p, err)
		}
	}
	if _, err := NewPeerID("-GO0001-", bytes.NewReader(make([]byte, 5))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short random source: error = %v", err)
	}
	for range 100 {
		id, err := NewPeerID("-GO0001-", rand.Reader)
		if err != nil || len(id) != PeerIDLen || !strings.HasPrefix(id, "-GO0001-") {
			t.Fatalf("NewPeerID = %q, %v", id, err)
		}
		for _, c := range id[8:] {
			if !strings.ContainsRune(peerIDAlphabet, c) {
				t.Fatalf("NewPeerID = %q has %q", id, c)
			}
		}
	}
}
