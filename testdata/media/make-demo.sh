#!/usr/bin/env bash
# make-demo.sh generates the demo HLS VOD used by the player page and the
# browser tests, from ffmpeg's built-in lavfi sources only (no external media):
#
#   demo/master.m3u8            multivariant playlist (written by this script)
#   demo/360p/index.m3u8 + ts   640x360, ~500 kbit/s H.264 + AAC mono 64k
#   demo/180p/index.m3u8 + ts   320x180, ~200 kbit/s H.264 + AAC mono 64k
#
# 60 s long, 2 s MPEG-TS segments, a keyframe exactly every 2 s (closed GOPs,
# no scene-cut keyframes), 30 fps. Settings are fixed (single-threaded x264,
# bitexact muxing, deterministic sources) so reruns give the same output with
# the same ffmpeg build. The BANDWIDTH / AVERAGE-BANDWIDTH values of the master
# playlist are measured from the produced segments, and the CODECS strings are
# derived from the profile and level ffprobe reports.
#
# Usage: testdata/media/make-demo.sh [output-dir]   (default: <script dir>/demo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/demo}"

DURATION=60  # seconds
SEG=2        # segment duration, seconds
FPS=30
GOP=$((SEG * FPS))

for tool in ffmpeg ffprobe; do
	command -v "$tool" >/dev/null || { echo "make-demo.sh: $tool not found (apt-get install -y ffmpeg)" >&2; exit 1; }
done

# A visible running clock when a monospace font is available.
font=""
for f in /usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf \
	/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf \
	/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf; do
	if [[ -f "$f" ]]; then font="$f"; break; fi
done
filters="$(ffmpeg -hide_banner -filters 2>/dev/null || true)"
if [[ -n "$font" && "$filters" == *" drawtext "* ]]; then
	# %{pts:hms} is the running media time; %{n} the frame number. The label
	# shows the variant so that ABR switches are visible.
	overlay() {
		printf "drawtext=fontfile=%s:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=h-th-%d:text='caddy-p2p demo %s  %%{pts\\:hms}  #%%{n}'" \
			"$font" "$1" "$2" "$3"
	}
else
	echo "make-demo.sh: no font or drawtext filter, building without the clock overlay" >&2
	overlay() { printf "null"; }
fi

# encode <name> <width> <height> <video kbit/s> <fontsize> <text margin> <x264 level>
encode() {
	local name=$1 w=$2 h=$3 kbps=$4 fs=$5 margin=$6 level=$7
	local dir="$out/$name"
	mkdir -p "$dir"
	ffmpeg -hide_banner -loglevel error -nostdin -y \
		-f lavfi -i "testsrc2=size=640x360:rate=${FPS}:duration=${DURATION}" \
		-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=${DURATION}" \
		-filter_complex "[0:v]scale=${w}:${h}:flags=bicubic,$(overlay "$fs" "$margin" "$name"),format=yuv420p[v]" \
		-map "[v]" -map 1:a \
		-c:v libx264 -threads 1 -preset medium -profile:v high -level:v "$level" \
		-b:v "${kbps}k" -maxrate "$((kbps * 11 / 10))k" -bufsize "$((kbps * 2))k" \
		-g "$GOP" -keyint_min "$GOP" -sc_threshold 0 -bf 2 \
		-force_key_frames "expr:gte(t,n_forced*${SEG})" \
		-x264-params "open-gop=0:scenecut=0" \
		-c:a aac -b:a 64k -ac 1 -ar 48000 \
		-flags +bitexact -fflags +bitexact -map_metadata -1 \
		-f hls -hls_time "$SEG" -hls_playlist_type vod -hls_segment_type mpegts \
		-hls_flags independent_segments \
		-hls_segment_filename "$dir/seg_%03d.ts" \
		"$dir/index.m3u8"
}

# codecs <segment>: the RFC 6381 CODECS value of a segment (H.264 + AAC-LC).
codecs() {
	local profile level pidc
	# mpegts inputs also list the program's streams: keep the first line.
	IFS=, read -r profile level < <(ffprobe -v error -select_streams v:0 \
		-show_entries stream=profile,level -of csv=p=0 "$1" | head -n 1)
	case "$profile" in
	High) pidc=6400 ;;
	Main) pidc=4d40 ;;
	"Constrained Baseline") pidc=42e0 ;;
	Baseline) pidc=4200 ;;
	*) echo "make-demo.sh: unexpected H.264 profile $profile" >&2; exit 1 ;;
	esac
	printf 'avc1.%s%02x,mp4a.40.2' "$pidc" "$level"
}

# bandwidth <dir>: "peak average" bit/s over the segments of a media playlist.
bandwidth() {
	local dir=$1
	awk -v dir="$dir" '
		/^#EXTINF:/ { sub(/^#EXTINF:/, ""); sub(/,.*/, ""); dur = $0 + 0; next }
		/^[^#]/ {
			cmd = "stat -c %s \"" dir "/" $0 "\""; cmd | getline size; close(cmd)
			bits += size * 8; total += dur
			if (dur > 0 && size * 8 / dur > peak) peak = size * 8 / dur
		}
		END { printf "%d %d\n", peak + 0.5, bits / total + 0.5 }
	' "$dir/index.m3u8"
}

rm -rf "$out"
mkdir -p "$out"
encode 360p 640 360 500 22 12 3.0
encode 180p 320 180 200 12 6 2.1

{
	echo "#EXTM3U"
	echo "#EXT-X-VERSION:3"
	echo "#EXT-X-INDEPENDENT-SEGMENTS"
	for v in "360p 640x360" "180p 320x180"; do
		set -- $v
		read -r peak avg < <(bandwidth "$out/$1")
		codec=$(codecs "$out/$1/seg_000.ts")
		echo "#EXT-X-STREAM-INF:BANDWIDTH=${peak},AVERAGE-BANDWIDTH=${avg},RESOLUTION=$2,CODECS=\"${codec}\",FRAME-RATE=${FPS}.000"
		echo "$1/index.m3u8"
	done
} >"$out/master.m3u8"

cat "$out/master.m3u8"
du -sh "$out"
