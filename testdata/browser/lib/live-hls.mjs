// A live HLS stream for tests, made from a VOD: publishLiveHLS() copies a
// multivariant playlist into a directory Caddy serves (identity.Caddyfile:
// LIVE_ROOT at /live/) and rewrites its media playlists every `interval` ms
// as a sliding window of `window` segments over the VOD's segments: the media
// sequence advances by one per tick, there is no EXT-X-ENDLIST and no
// EXT-X-PLAYLIST-TYPE, and it loops over the VOD forever (see below).
// Segments and init segments are referenced by absolute path into the VOD
// directory, so no media is copied. Video and audio playlists stay aligned
// (same media sequence numbers).
//
//   const live = await publishLiveHLS({ dir, vodDir, vodURLPath, firstSequence: 1000 });
//   ... /live/<name>/master.m3u8 ...
//   live.stop();

import fs from "node:fs";
import path from "node:path";

/** Parses a VOD media playlist: header lines, EXT-X-MAP, and [{extinf, uri}] segments. */
function parseMedia(text) {
  const lines = text.split(/\r?\n/);
  const segs = [];
  let map = null;
  let target = "2";
  let version = "6";
  let extinf = null;
  for (const l of lines) {
    if (l.startsWith("#EXT-X-TARGETDURATION:")) target = l.slice(22);
    else if (l.startsWith("#EXT-X-VERSION:")) version = l.slice(15);
    else if (l.startsWith("#EXT-X-MAP:")) map = l;
    else if (l.startsWith("#EXTINF:")) extinf = l;
    else if (l && !l.startsWith("#")) { segs.push({ extinf, uri: l }); extinf = null; }
  }
  return { segs, map, target, version };
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/**
 * opts:
 *   dir            output directory (created), served over HTTP
 *   vodDir         directory of the VOD master playlist (file system)
 *   vodURLPath     URL path of vodDir, e.g. "/media/identity/cmaf/"
 *   master         VOD multivariant playlist name (default master.m3u8)
 *   window         segments per playlist (default 6)
 *   interval       ms between window moves (default 2000)
 *   firstSequence  EXT-X-MEDIA-SEQUENCE of live segment 0 (default 1000)
 *   startPosition  live segment at the head of the first window (default 0):
 *                  e.g. count - window + 1 puts the first loop's
 *                  discontinuity in the window at the first move
 *
 * The stream never ends: after the last VOD segment it starts over from the
 * first one, after an EXT-X-DISCONTINUITY (EXT-X-DISCONTINUITY-SEQUENCE is
 * kept right), with "?loop=<n>" appended to the URIs of the n-th repetition
 * so that every live segment has its own URL (players key segments by URL).
 * Live segment k (0-based, media sequence firstSequence + k) is VOD segment
 * k mod count.
 *
 * Returns {dir, playlists, position(), stop()}.
 */
export function publishLiveHLS(opts) {
  const { dir, vodDir, vodURLPath, master = "master.m3u8", window = 6, interval = 2000, firstSequence = 1000, startPosition = 0 } = opts;
  fs.mkdirSync(dir, { recursive: true });
  const masterText = fs.readFileSync(path.join(vodDir, master), "utf8");
  // Media playlist URIs of the master: EXT-X-MEDIA URI="..." and STREAM-INF next lines.
  const uris = new Set();
  for (const m of masterText.matchAll(/URI="([^"]+)"/g)) uris.add(m[1]);
  const ml = masterText.split(/\r?\n/);
  ml.forEach((l, i) => { if (l.startsWith("#EXT-X-STREAM-INF:") && ml[i + 1]) uris.add(ml[i + 1].trim()); });
  // Media playlists may sit in subdirectories of the master's (e.g.
  // "360p/index.m3u8", as in testdata/media/demo): the live one is written
  // at the same relative path under dir, and its segment URIs are made
  // absolute from that subdirectory.
  const playlists = [...uris].map((u) => {
    if (u.startsWith("/") || u.includes(":") || u.split("/").includes("..")) throw new Error(`live-hls: absolute or upward media playlist URI ${u} is not supported`);
    const sub = path.posix.dirname(u);
    return { name: u, base: sub === "." ? vodURLPath : `${vodURLPath}${sub}/`, ...parseMedia(fs.readFileSync(path.join(vodDir, u), "utf8")) };
  });
  const total = Math.min(...playlists.map((p) => p.segs.length));
  if (!total) throw new Error("live-hls: no segments");
  const abs = (u, base) => (u.startsWith("/") || /^[a-z]+:/i.test(u) ? u : base + u);
  for (const p of playlists) fs.mkdirSync(path.dirname(path.join(dir, p.name)), { recursive: true });

  let pos = startPosition;
  const render = () => {
    for (const p of playlists) {
      const out = ["#EXTM3U", `#EXT-X-VERSION:${p.version}`, `#EXT-X-TARGETDURATION:${p.target}`,
        `#EXT-X-MEDIA-SEQUENCE:${firstSequence + pos}`, `#EXT-X-DISCONTINUITY-SEQUENCE:${Math.floor(pos / total)}`];
      if (p.map) out.push(p.map.replace(/URI="([^"]+)"/, (_, u) => `URI="${abs(u, p.base)}"`));
      for (let k = pos; k < pos + window; k++) {
        const loop = Math.floor(k / total);
        const s = p.segs[k % total];
        // Not before the window's first segment: EXT-X-DISCONTINUITY-SEQUENCE
        // already is that segment's number (hls.js would count it twice).
        if (k % total === 0 && k > pos) out.push("#EXT-X-DISCONTINUITY");
        out.push(s.extinf, abs(s.uri, p.base) + (loop ? `?loop=${loop}` : ""));
      }
      writeAtomic(path.join(dir, p.name), `${out.join("\n")}\n`);
    }
  };
  render();
  writeAtomic(path.join(dir, master), masterText);
  const timer = setInterval(() => {
    pos++;
    render();
  }, interval);
  return {
    dir,
    playlists: playlists.map((p) => p.name),
    position: () => pos,
    stop: () => clearInterval(timer),
  };
}
