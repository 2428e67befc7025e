#!/usr/bin/env bash
# make-identity.sh generates the small media set used by
# testdata/browser/test/identity.test.mjs (issue 3: do the real P2P Media
# Loader clients compute the same swarms and segment ids as our Go code?).
# Only ffmpeg's built-in lavfi sources are used (no external media).
#
# Output, in <script dir>/identity (or $1):
#
#   cmaf/                     fMP4 (CMAF) segments made by ffmpeg's DASH muxer:
#                             2 video representations (H.264 320x180 ~120k and
#                             480x270 ~240k, 30 fps) and 1 audio representation
#                             (AAC-LC mono 48 kHz 48k); 40 s, 2 s segments,
#                             init-stream$RepresentationID$.m4s +
#                             chunk-stream$RepresentationID$-$Number%05d$.m4s
#   cmaf/timeline.mpd         DASH, SegmentTemplate + SegmentTimeline (ffmpeg's)
#   cmaf/master.m3u8          HLS VOD multivariant playlist: the 2 video variants
#     + media_0..2.m3u8       and a separate audio rendition (EXT-X-MEDIA
#                             TYPE=AUDIO with URI), EXT-X-MAP + fMP4, written
#                             by ffmpeg (-hls_playlist 1) and then completed:
#                             RESOLUTION/FRAME-RATE added, ENDLIST guaranteed
#   cmaf/number.mpd           DASH, SegmentTemplate@duration with $Number$
#                             (startNumber 1), same segments (written here)
#   cmaf/multiperiod.mpd      DASH, two Periods (0-20 s and 20-40 s) over the
#                             same segments: Period 2 has startNumber 11 and a
#                             presentationTimeOffset, the way a split VOD or an
#                             ad break is usually described (written here)
#   byterange/index.m3u8      HLS VOD media playlist with EXT-X-BYTERANGE into
#     + main.ts               one muxed MPEG-TS file (-hls_flags single_file)
#
# The live HLS case has no files here: the test publishes a sliding-window
# playlist over cmaf/ at run time (testdata/browser/lib/live-hls.mjs).
#
# Settings are fixed (single-threaded x264, bitexact muxing, deterministic
# sources) so reruns give the same output with the same ffmpeg build.
#
# Usage: testdata/media/make-identity.sh [output-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/identity}"

DURATION=40 # seconds
SEG=2       # segment duration, seconds
FPS=30
GOP=$((SEG * FPS))

for tool in ffmpeg ffprobe; do
	command -v "$tool" >/dev/null || { echo "make-identity.sh: $tool not found (apt-get install -y ffmpeg)" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/cmaf" "$out/byterange"

x264=(-c:v libx264 -threads 1 -preset veryfast -profile:v main
	-g "$GOP" -keyint_min "$GOP" -sc_threshold 0 -bf 0
	-force_key_frames "expr:gte(t,n_forced*${SEG})" -x264-params "open-gop=0:scenecut=0")
aac=(-c:a aac -b:a 48k -ac 1 -ar 48000)
sources=(-f lavfi -i "testsrc2=size=480x270:rate=${FPS}:duration=${DURATION}"
	-f lavfi -i "sine=frequency=660:beep_factor=3:sample_rate=48000:duration=${DURATION}")

# --- CMAF: DASH (timeline) + HLS with a separate audio rendition ------------
(
	cd "$out/cmaf"
	ffmpeg -hide_banner -loglevel error -nostdin -y "${sources[@]}" \
		-filter_complex "[0:v]split=2[a][b];[a]scale=320:180,format=yuv420p[v0];[b]format=yuv420p[v1]" \
		-map "[v0]" -map "[v1]" -map 1:a \
		"${x264[@]}" -b:v:0 120k -maxrate:v:0 140k -bufsize:v:0 240k -level:v:0 2.1 \
		-b:v:1 240k -maxrate:v:1 280k -bufsize:v:1 480k -level:v:1 3.0 \
		"${aac[@]}" \
		-flags +bitexact -fflags +bitexact -map_metadata -1 \
		-f dash -seg_duration "$SEG" -use_template 1 -use_timeline 1 \
		-adaptation_sets "id=0,streams=v id=1,streams=a" \
		-hls_playlist 1 -hls_master_name master.m3u8 \
		timeline.mpd
)

cmaf="$out/cmaf"
nseg=$(ls "$cmaf"/chunk-stream0-*.m4s | wc -l)
vts=$(grep -o 'timescale="[0-9]*"' "$cmaf/timeline.mpd" | head -n 1 | grep -o '[0-9]*')
ats=$(grep -o 'timescale="[0-9]*"' "$cmaf/timeline.mpd" | tail -n 1 | grep -o '[0-9]*')
codec() { grep -o "id=\"$1\"[^>]*codecs=\"[^\"]*\"" "$cmaf/timeline.mpd" | grep -o 'codecs="[^"]*"' | cut -d'"' -f2; }
bw() { grep -o "id=\"$1\"[^>]*bandwidth=\"[0-9]*\"" "$cmaf/timeline.mpd" | grep -o 'bandwidth="[0-9]*"' | grep -o '[0-9]*'; }
c0=$(codec 0) c1=$(codec 1) c2=$(codec 2)
b0=$(bw 0) b1=$(bw 1) b2=$(bw 2)

# HLS playlists as ffmpeg writes them, made deterministic and complete:
# FRAME-RATE added to the variants (ffmpeg writes RESOLUTION but no
# FRAME-RATE for fMP4, and the hls.js stream index uses it, spec §2.2), the
# audio rendition given a NAME with spaces and capitals, a LANGUAGE with a
# region and CHANNELS (all three are normalised into the index),
# blank lines and wall-clock EXT-X-PROGRAM-DATE-TIME tags dropped, ENDLIST
# guaranteed. ffmpeg numbers the media playlists from MEDIA-SEQUENCE 1, which
# is kept: hls.js VOD ids are playlist positions (0..), shaka's are media
# sequence numbers (1..).
awk -v fps="$FPS" '
	/^$/ { next }
	/^#EXT-X-MEDIA:TYPE=AUDIO/ { sub(/NAME="[^"]*"/, "NAME=\" Main Audio \",LANGUAGE=\"en-US\",CHANNELS=\"1\""); print; next }
	/^#EXT-X-STREAM-INF:/ && !/FRAME-RATE=/ { print $0 ",FRAME-RATE=" fps ".000"; next }
	{ print }
' "$cmaf/master.m3u8" >"$cmaf/master.m3u8.tmp" && mv "$cmaf/master.m3u8.tmp" "$cmaf/master.m3u8"
for f in "$cmaf"/media_*.m3u8; do
	grep -v '^#EXT-X-PROGRAM-DATE-TIME:' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	grep -q '^#EXT-X-ENDLIST' "$f" || echo '#EXT-X-ENDLIST' >>"$f"
done

mpd_head() { # <mediaPresentationDuration seconds>
	cat <<EOF
<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" minBufferTime="PT2.0S" mediaPresentationDuration="PT${1}S">
EOF
}
# adaptation <timescale of video> <timescale of audio> <template attributes (video)> <template attributes (audio)>
adaptations() {
	cat <<EOF
  <AdaptationSet id="0" contentType="video" segmentAlignment="true" startWithSAP="1" frameRate="${FPS}/1" maxWidth="480" maxHeight="270">
   <SegmentTemplate timescale="$1" initialization="init-stream\$RepresentationID\$.m4s" media="chunk-stream\$RepresentationID\$-\$Number%05d\$.m4s" $3/>
   <Representation id="0" mimeType="video/mp4" codecs="$c0" bandwidth="$b0" width="320" height="180"/>
   <Representation id="1" mimeType="video/mp4" codecs="$c1" bandwidth="$b1" width="480" height="270"/>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="audio" segmentAlignment="true" startWithSAP="1" lang="en">
   <SegmentTemplate timescale="$2" initialization="init-stream\$RepresentationID\$.m4s" media="chunk-stream\$RepresentationID\$-\$Number%05d\$.m4s" $4/>
   <Representation id="2" mimeType="audio/mp4" codecs="$c2" bandwidth="$b2" audioSamplingRate="48000">
    <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="1"/>
   </Representation>
  </AdaptationSet>
EOF
}

# number.mpd: SegmentTemplate@duration, $Number$ from 1.
{
	mpd_head "$DURATION"
	echo ' <Period id="0" start="PT0S">'
	adaptations "$vts" "$ats" "duration=\"$((SEG * vts))\" startNumber=\"1\"" "duration=\"$((SEG * ats))\" startNumber=\"1\""
	echo ' </Period>'
	echo '</MPD>'
} >"$cmaf/number.mpd"

# multiperiod.mpd: Period 1 = segments 1..H, Period 2 = segments H+1..N with
# presentationTimeOffset = its first segment's media time.
half=$((nseg / 2))
p2=$((half * SEG))
{
	mpd_head "$DURATION"
	echo ' <Period id="p1" start="PT0S">'
	adaptations "$vts" "$ats" "duration=\"$((SEG * vts))\" startNumber=\"1\"" "duration=\"$((SEG * ats))\" startNumber=\"1\""
	echo ' </Period>'
	echo " <Period id=\"p2\" start=\"PT${p2}S\">"
	adaptations "$vts" "$ats" \
		"duration=\"$((SEG * vts))\" startNumber=\"$((half + 1))\" presentationTimeOffset=\"$((p2 * vts))\"" \
		"duration=\"$((SEG * ats))\" startNumber=\"$((half + 1))\" presentationTimeOffset=\"$((p2 * ats))\""
	echo ' </Period>'
	echo '</MPD>'
} >"$cmaf/multiperiod.mpd"

# --- byte ranges: one muxed MPEG-TS file -----------------------------------
ffmpeg -hide_banner -loglevel error -nostdin -y "${sources[@]}" \
	-vf "scale=320:180,format=yuv420p" "${x264[@]}" -b:v 120k -maxrate 140k -bufsize 240k -level:v 2.1 \
	"${aac[@]}" -flags +bitexact -fflags +bitexact -map_metadata -1 \
	-f hls -hls_time "$SEG" -hls_playlist_type vod -hls_segment_type mpegts \
	-hls_flags single_file+independent_segments \
	-hls_segment_filename "$out/byterange/main.ts" \
	"$out/byterange/index.m3u8"

echo "make-identity.sh: $nseg segments per stream, video timescale $vts, audio timescale $ats" >&2
cat "$cmaf/master.m3u8"
du -sh "$out"
