#!/usr/bin/env bash
# make-demo.sh generates the demo HLS VOD used by the player page and the
# browser tests, from ffmpeg's built-in lavfi sources only (no external media):
#
#   demo/master.m3u8            multivariant playlist (written by this script)
#   demo/360p/index.m3u8 + ts   640x360, ~500 kbit/s H.264 + AAC mono 64k
#   demo/180p/index.m3u8 + ts   320x180, ~200 kbit/s H.264 + AAC mono 64k
#   demo/dash/manifest.mpd      the 180p variant as MPEG-DASH (see "DASH" below)
#
# 60 s long, 2 s MPEG-TS segments, a keyframe exactly every 2 s (closed GOPs,
# no scene-cut keyframes), 30 fps. Settings are fixed (single-threaded x264,
# bitexact muxing, deterministic sources) so reruns give the same output with
# the same ffmpeg build. The BANDWIDTH / AVERAGE-BANDWIDTH values of the master
# playlist are measured from the produced segments, and the CODECS strings are
# derived from the profile and level ffprobe reports.
#
# Usage: testdata/media/make-demo.sh [output-dir]   (default: <script dir>/demo)
#        DASH_ONLY=1 testdata/media/make-demo.sh [output-dir]   keeps the HLS files
#        and only rebuilds <output-dir>/dash/ from the existing 180p segments.
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

if [[ "${DASH_ONLY:-0}" != 1 ]]; then
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
fi

# ---------------------------------------------------------------------------
# DASH
#
# What: demo/dash/, the 180p variant above as MPEG-DASH, remuxed from its
# MPEG-TS segments into fragmented MP4 with -c copy (no re-encode: the same
# pictures, sound and 2 s keyframe grid as the HLS 180p variant):
#
#   demo/dash/manifest.mpd          static (VOD) MPD, relative URLs, one
#                                   SegmentTemplate per Representation with
#                                   $Number$ (no SegmentTimeline), 2 s segments
#   demo/dash/init-0.m4s            video init segment  (Representation id 0)
#   demo/dash/seg-0-001..030.m4s    video media segments
#   demo/dash/init-1.m4s            audio init segment  (Representation id 1)
#   demo/dash/seg-1-001..030.m4s    audio media segments
#
# One video and one audio Representation, each in its own AdaptationSet.
# Why: the Shaka Player + p2p-media-loader-shaka browser test of the seeder
# plays this MPD, so the seeder is exercised with DASH (separate audio and
# video segment streams, SegmentTemplate URLs) as well as with HLS.
# @bandwidth is the peak per-segment bit rate, measured from a first pass.
# -t cuts the one AAC frame the TS audio has past 60 s, so both
# Representations have exactly DURATION/SEG segments. About 2 MB.
# (ffprobe/ffmpeg 5.1 reading the MPD also ask for a nonexistent segment 031
# and log "Error when loading first fragment": an off-by-one in their DASH
# demuxer; all packets still read, and Shaka asks for 001..030 only.)

# dash_mux <video bit/s> <audio bit/s>: (re)write $out/dash from $out/180p.
dash_mux() {
	local src="$out/180p" dst="$out/dash" segs
	segs=$(awk -v d="$src" '!/^#/ && NF { printf "%s%s/%s", sep, d, $0; sep = "|" }' "$src/index.m3u8")
	rm -rf "$dst"
	mkdir -p "$dst"
	ffmpeg -hide_banner -loglevel error -nostdin -y \
		-i "concat:$segs" \
		-map 0:v:0 -map 0:a:0 -c copy -t "$DURATION" \
		-tag:v avc1 -tag:a mp4a -b:v "$1" -b:a "$2" \
		-flags +bitexact -fflags +bitexact -map_metadata -1 \
		-f dash -dash_segment_type mp4 -seg_duration "$SEG" \
		-use_template 1 -use_timeline 0 -single_file 0 -streaming 0 -write_prft 0 \
		-adaptation_sets "id=0,streams=v id=1,streams=a" \
		-init_seg_name 'init-$RepresentationID$.$ext$' \
		-media_seg_name 'seg-$RepresentationID$-$Number%03d$.$ext$' \
		"$dst/manifest.mpd"
}

# dash_peak <representation id>: peak bit/s over its media segments.
dash_peak() {
	local f bps peak=0
	for f in "$out/dash/seg-$1-"*.m4s; do
		bps=$(( ($(stat -c %s "$f") * 8 + SEG - 1) / SEG ))
		if (( bps > peak )); then peak=$bps; fi
	done
	echo "$peak"
}

[[ -f "$out/180p/index.m3u8" ]] || { echo "make-demo.sh: $out/180p/index.m3u8 missing (run without DASH_ONLY=1 first)" >&2; exit 1; }
dash_mux 200000 64000  # provisional @bandwidth values, measured next
dash_mux "$(dash_peak 0)" "$(dash_peak 1)"

cat "$out/dash/manifest.mpd"
du -sh "$out"
