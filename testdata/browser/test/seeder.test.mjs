// The origin's seeding peer (the global `p2p { ... }` app, p2p/seeder) in
// real browsers: Caddy runs p2p_tracker, the media and the player pages, and
// the seeder joins the pages' swarms through that tracker and serves them
// segments over WebRTC data channels.
//
//   1. hls.js + P2P Media Loader 2.3.1 (the p2p_player page), alone with the
//      seeder on the demo VOD: at least half of its segment bytes come over
//      P2P, all of them from the seeder's peer id, and the admin API's
//      /p2p/seeder counts the bytes it sent.
//   2. The same page on a live sliding-window HLS playlist (lib/live-hls.mjs
//      over the demo's segments), which the seeder follows: some segments
//      come over P2P from the seeder.
//   3. Shaka Player 4.16.29 + p2p-media-loader-shaka 2.2.2 (pages/shaka.html)
//      on the DASH version of the demo: segments come from the seeder.
//   4. Three hls.js pages plus a seeder with the rare-only policy: the pages
//      download from each other too, and the seeder served something.
//   5. The seeder joins after the page: Caddy starts with no stream, the page
//      plays alone, then the test adds its manifest through the admin API
//      (POST /p2p/seeder/streams); the seeder's own offers reach the page,
//      which answers and gets segments from it; DELETE makes it leave.
//   6. Origin egress: three pages HTTP-only versus the same three pages with
//      P2P and a rare-only seeder (HTTP bytes from Caddy's access log plus
//      the seeder's upload), per second of playback; prints an EGRESS: line.
//
// Every test fails when no segment at all went over P2P. Which peer sent a
// segment is P2P Media Loader's own record (onSegmentLoaded's peerId, seen
// in window.caddyP2P); the seeder's peer id (prefix -CP0001-) is read from
// the admin API, and the pages' own ids from their tracker frames.
//
// The seeder binds one UDP port on the veth address (webrtc_listen
// 10.201.0.1:0) and offers host candidates of v0 only (interfaces v0): see
// testdata/caddyfiles/seeder*.Caddyfile.
//
// Environment: SEEDER_ONLY=<regex> runs only the tests whose name matches.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import * as h from "../lib/harness.mjs";
import { publishLiveHLS } from "../lib/live-hls.mjs";

await h.enterNetns();
after(h.cleanup);

const SEEDER_PREFIX = "-CP0001-";
const HLS_MANIFEST = "/media/demo/master.m3u8";
const DASH_MANIFEST = "/media/demo/dash/manifest.mpd";
const DEMO_SEGMENTS = 30; // per stream, 2 s each

const only = process.env.SEEDER_ONLY ? new RegExp(process.env.SEEDER_ONLY, "i") : null;
const maybe = (name) => (only && !only.test(name) ? { skip: `SEEDER_ONLY=${process.env.SEEDER_ONLY}` } : {});

// ---------------------------------------------------------------------------
// Helpers

const pct = (x) => `${(100 * x).toFixed(1)}%`;

/**
 * GET /p2p/seeder on Caddy's admin API. node:http, not fetch(): Caddy's
 * admin endpoint refuses requests that carry fetch's Sec-Fetch-Mode: cors
 * without an Origin ("client is not allowed to access from origin ''").
 */
function seederStats(caddy) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${caddy.adminURL}/p2p/seeder`, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { body += d; });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`GET /p2p/seeder: ${res.statusCode} ${body}`));
        try { resolve(JSON.parse(body)); } catch (e) { reject(new Error(`GET /p2p/seeder: ${e.message}: ${body.slice(0, 200)}`)); }
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error("GET /p2p/seeder: timeout")));
    req.on("error", reject);
  });
}

/** A swarm's upload counters from the admin API. */
function upload(sw) {
  const u = sw.upload || {};
  const get = (name) => Number(u[name] ?? 0);
  return {
    bytesSent: get("bytes_sent"),
    requests: get("requests"),
    completed: get("completed"),
    absent: get("absent"),
    aborted: get("aborted"),
  };
}

/** Swarms of the seeded stream whose URL ends with urlSuffix, for one client. */
function swarmsOf(stats, urlSuffix, client) {
  return (stats.streams || []).filter((s) => s.url.endsWith(urlSuffix)).flatMap((s) => s.swarms || [])
    .filter((sw) => !client || sw.client === client);
}

function describeSeeder(stats, urlSuffix) {
  if (!stats) return "seeder: no stats";
  const lines = [`seeder ${stats.peer_id}: pcs=${stats.peer_connections} connections=${stats.connections} connect_failures=${stats.connect_failures} ` +
    `offers sent/answered/received=${stats.offers_sent}/${stats.offers_answered}/${stats.offers_received} answers_sent=${stats.answers_sent} ` +
    `trackers=${JSON.stringify(stats.trackers)}`];
  for (const sw of swarmsOf(stats, urlSuffix)) {
    const u = upload(sw);
    lines.push(`  ${sw.client} ${sw.kind} ${sw.info_hash} ${sw.playlist}: live=${sw.live} segments=${sw.segments} announced=${sw.announced} ` +
      `peers=${sw.peers} sent=${u.bytesSent} B requests=${u.requests} completed=${u.completed} absent=${u.absent} aborted=${u.aborted}`);
  }
  return lines.join("\n");
}

/**
 * Waits until the seeder is connected to its tracker and has segments for
 * every swarm of the stream (the manifest was loaded), and returns its stats.
 */
async function waitSeederReady(caddy, urlSuffix, { minSwarms = 1, timeout = 30_000 } = {}) {
  let last = null;
  return h.waitFor(async () => {
    last = await seederStats(caddy);
    const sws = swarmsOf(last, urlSuffix);
    const ok = (last.trackers || []).some((t) => t.connected) && sws.length >= minSwarms && sws.every((sw) => sw.segments > 0 && sw.announced > 0);
    return ok ? last : null;
  }, { timeout, interval: 250, what: `the seeder to seed ${urlSuffix}`, describe: () => `${describeSeeder(last, urlSuffix)}\n${h.tail(caddy.logs(), 30)}` });
}

/** One page's report: summary, own ids, P2P bytes by source peer, log tail. */
function pageReport(p, s) {
  const bySource = {};
  for (const seg of (s?.segments || []).filter((x) => x.source === "p2p")) bySource[seg.peerId] = (bySource[seg.peerId] || 0) + seg.bytes;
  return `${p.summary(s)}\n  own ids ${JSON.stringify(p.ownPeerIds())}\n  p2p segment bytes by peer ${JSON.stringify(bySource)}\n  ` +
    `page log: ${p.log.slice(-10).join("\n  ") || "(empty)"}`;
}

/** Sanity checks every test makes on a page. */
function assertPageSane(p, s, report) {
  assert.ok(s && s.ready && s.currentTime > 0, `${p.name} plays\n${report()}`);
  assert.ok(p.ownPeerIds().length > 0, `${p.name} announced to the tracker\n${report()}`);
  assert.deepEqual((s.errors || []).filter((e) => ["hls-fatal", "load", "shaka-error"].includes(e.type)), [], `${p.name}: no fatal errors\n${report()}`);
  assert.ok(!p.log.some((l) => l.includes("pageerror")), `${p.name}: no page errors\n${report()}`);
}

/** Bytes of P2P segments per source peer id. */
function p2pBytesByPeer(s) {
  const m = new Map();
  for (const seg of (s?.segments || []).filter((x) => x.source === "p2p")) m.set(seg.peerId, (m.get(seg.peerId) || 0) + seg.bytes);
  return m;
}

/** A request to Caddy's admin API with an optional JSON body; resolves to the parsed JSON reply. */
function adminJSON(caddy, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : JSON.stringify(body);
    const req = http.request(`${caddy.adminURL}${urlPath}`, {
      method,
      headers: data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {},
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`${method} ${urlPath}: ${res.statusCode} ${text}`));
        try { resolve(JSON.parse(text)); } catch (e) { reject(new Error(`${method} ${urlPath}: ${e.message}: ${text.slice(0, 200)}`)); }
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${urlPath}: timeout`)));
    req.on("error", reject);
    req.end(data ?? undefined);
  });
}

/** A binary string (one byte per code point, as info_hash on the wire and in /p2p/seeder) in hex. */
const binHex = (s) => [...s].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");

/** The tracker's swarms (GET /p2p/tracker) by info_hash_hex: {peers, complete, incomplete}. */
async function trackerSwarms(caddy) {
  const st = await adminJSON(caddy, "GET", "/p2p/tracker?limit=1000");
  const m = new Map();
  for (const t of st.trackers || []) for (const sw of t.swarms || []) m.set(sw.info_hash_hex, sw);
  return m;
}

/** Runs fn, stopping Caddy afterwards (its log is kept in the temp dir). */
async function withCaddy(opts, fn) {
  const caddy = await h.startCaddy(opts);
  try {
    return await fn(caddy);
  } finally {
    await caddy.stop();
  }
}

const results = [];
after(() => {
  if (!results.length) return;
  h.log("seeder summary:");
  for (const r of results) h.log(`  ${r}`);
});

// ---------------------------------------------------------------------------
// 1. hls.js alone with the seeder, VOD

test("hls.js page alone with the seeder (VOD): most bytes over P2P, from the seeder", { timeout: 150_000, ...maybe("hls.js page alone") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "seeder.Caddyfile", name: "caddy-vod" }, async (caddy) => {
    const ready = await waitSeederReady(caddy, HLS_MANIFEST, { minSwarms: 2 });
    const seederId = ready.peer_id;
    h.log(`seeder ${seederId} ready:\n${describeSeeder(ready, HLS_MANIFEST)}`);
    assert.ok(seederId.startsWith(SEEDER_PREFIX), `seeder peer id ${seederId} starts with ${SEEDER_PREFIX}`);

    const browser = await h.launchBrowser();
    const a = await h.openPlayer(browser, h.playerURL(caddy, { manifest: HLS_MANIFEST }), { name: "A" });
    await a.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
    // Until it has loaded (nearly) the whole stream, or has played 40 s.
    await a.waitFor((s) => s.playing && ((s.segments.length >= DEMO_SEGMENTS - 2 && s.currentTime >= 10) || s.currentTime >= 40), {
      timeout: 100_000, what: `A loads ${DEMO_SEGMENTS - 2} segments or plays 40 s`,
    });
    await sleep(1000);
    const s = await a.state();
    const stats = await seederStats(caddy);
    const report = () => `${pageReport(a, s)}\n${describeSeeder(stats, HLS_MANIFEST)}`;
    const st = h.p2pStats(s);
    h.log(`A: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} bytes = ${pct(st.p2pShare)} ` +
      `(chunks p2p ${s.chunkBytes.p2p}, http ${s.chunkBytes.http})\n${describeSeeder(stats, HLS_MANIFEST)}`);

    assertPageSane(a, s, report);
    assert.ok(st.p2pSegments > 0, `no segment came over P2P\n${report()}`);
    for (const seg of s.segments.filter((x) => x.source === "p2p")) {
      assert.equal(seg.peerId, seederId, `P2P segment ${seg.url} came from ${seg.peerId}, not the seeder\n${report()}`);
    }
    assert.ok(st.p2pShare >= 0.5, `P2P share ${pct(st.p2pShare)} of segment bytes, want >= 50%\n${report()}`);

    const sws = swarmsOf(stats, HLS_MANIFEST, "hlsjs");
    const sent = sws.reduce((n, sw) => n + upload(sw).bytesSent, 0);
    assert.ok(sent > 0, `admin API: hls.js swarms report no bytes sent\n${report()}`);
    assert.ok(sent >= st.p2pSegmentBytes, `admin API: hls.js swarms sent ${sent} B, less than the ${st.p2pSegmentBytes} B the page got from the seeder\n${report()}`);
    results.push(`1 hls.js VOD: ${st.p2pSegments}/${st.segments} segments, ${pct(st.p2pShare)} of bytes from the seeder; seeder sent ${sent} B; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});

// ---------------------------------------------------------------------------
// 2. hls.js on a live sliding window that the seeder follows

// How far behind the live edge the page plays decides what the seeder can
// deliver: the first 15 s ahead of the playhead are P2P Media Loader's
// high-demand window (HTTP); segments beyond it, up to the edge, can come
// from the seeder, which fetches and announces each new segment as soon as
// it shows up in the playlist (spec §5, §6).
//
// P2P Media Loader 2.3.1 sets hls.js's liveSyncDurationCount to (segments in
// the playlist - 1) when the app did not set it, but that comes too late for
// the start position: measured here, hls.js 1.6.19 then reports
// targetLatency 38 s yet starts, and stays, ~7 s (its default 3 segments)
// behind the edge of a 20-segment window, so nothing is ever beyond the
// high-demand window and no segment goes over P2P. The page therefore sets
// liveSyncDurationCount itself: LIVE_SYNC segments of 2 s (40 s) behind the
// edge of a LIVE_WINDOW-segment playlist, which leaves ~25 s of P2P room.
const LIVE_WINDOW = 24;
const LIVE_SYNC = 20;
const LIVE_SWARM = "caddy-p2p-seeder-live";

test("hls.js page on a live sliding window: segments over P2P from the seeder", { timeout: 170_000, ...maybe("live") }, async () => {
  const t0 = Date.now();
  const liveRoot = path.join(h.tempDir(), "live-root");
  fs.mkdirSync(liveRoot, { recursive: true });
  // Published before Caddy starts, so the seeder loads it at once.
  const live = publishLiveHLS({
    dir: path.join(liveRoot, "demo"), vodDir: path.join(h.REPO_ROOT, "testdata/media/demo"), vodURLPath: "/media/demo/",
    firstSequence: 1000, window: LIVE_WINDOW,
  });
  const livePath = "/live/demo/master.m3u8";
  try {
    await withCaddy({ caddyfile: "seeder-live.Caddyfile", name: "caddy-live", env: { LIVE_ROOT: liveRoot, LIVE_PATH: livePath, LIVE_SWARM } }, async (caddy) => {
      const ready = await waitSeederReady(caddy, livePath, { minSwarms: 2 });
      const seederId = ready.peer_id;
      h.log(`seeder ${seederId} ready:\n${describeSeeder(ready, livePath)}`);
      assert.ok(swarmsOf(ready, livePath).every((sw) => sw.live), `the seeder sees the stream as live\n${describeSeeder(ready, livePath)}`);

      const browser = await h.launchBrowser();
      const a = await h.openPlayer(browser, h.playerURL(caddy, { manifest: livePath, swarm: LIVE_SWARM, hls: { liveSyncDurationCount: LIVE_SYNC } }), { name: "live-A" });
      await a.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
      const playing = await a.waitFor((s) => s.playing && s.currentTime > 0, { timeout: 40_000, what: "live playback starts" });
      const from = playing.currentTime;
      // Play 40 s: the first window's segments beyond the high-demand window,
      // then each new segment the seeder announces ~38 s ahead.
      await a.waitFor((s) => s.currentTime >= from + 40, { timeout: 90_000, what: "live-A plays 40 s" });
      await sleep(1000);
      const s = await a.state();
      const stats = await seederStats(caddy);
      const hl = await a.page.evaluate(() => {
        const x = window.caddyP2PHls;
        return x && { latency: x.latency, targetLatency: x.targetLatency, liveSyncDurationCount: x.config.liveSyncDurationCount, maxBufferLength: x.config.maxBufferLength };
      });
      h.log(`live-A hls.js: ${JSON.stringify(hl)}`);
      const report = () => `${pageReport(a, s)}\n${describeSeeder(stats, livePath)}\nlive position ${live.position()}, hls.js ${JSON.stringify(hl)}`;
      const st = h.p2pStats(s);
      h.log(`live-A: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} bytes = ${pct(st.p2pShare)} ` +
        `(chunks p2p ${s.chunkBytes.p2p}, http ${s.chunkBytes.http}); played ${from.toFixed(1)}..${s.currentTime.toFixed(1)} s\n${describeSeeder(stats, livePath)}`);

      assertPageSane(a, s, report);
      assert.ok(st.p2pSegments > 0, `no segment came over P2P\n${report()}`);
      for (const seg of s.segments.filter((x) => x.source === "p2p")) {
        assert.equal(seg.peerId, seederId, `P2P segment ${seg.url} came from ${seg.peerId}, not the seeder\n${report()}`);
      }
      // Segments that appeared in the playlist after the seeder loaded it
      // (live segment index >= LIVE_WINDOW, i.e. media sequence >= 1000 +
      // LIVE_WINDOW) came over P2P too: the seeder followed the playlist and
      // announced them in time.
      const liveIndex = (u) => {
        const m = /seg_(\d+)\.ts(?:\?loop=(\d+))?$/.exec(u);
        return m ? Number(m[1]) + DEMO_SEGMENTS * Number(m[2] || 0) : -1;
      };
      const lateP2P = s.segments.filter((x) => x.source === "p2p" && liveIndex(x.url) >= LIVE_WINDOW);
      h.log(`live-A: ${lateP2P.length} P2P segments published after the seeder loaded the playlist (media sequence >= ${1000 + LIVE_WINDOW})`);
      assert.ok(lateP2P.length > 0, `no segment published after the seeder loaded the playlist came over P2P\n${report()}`);
      const sent = swarmsOf(stats, livePath, "hlsjs").reduce((n, sw) => n + upload(sw).bytesSent, 0);
      assert.ok(sent >= st.p2pSegmentBytes && sent > 0, `admin API: live hls.js swarms sent ${sent} B, page got ${st.p2pSegmentBytes} B\n${report()}`);
      results.push(`2 hls.js live (window ${LIVE_WINDOW}): ${st.p2pSegments}/${st.segments} segments, ${pct(st.p2pShare)} of bytes from the seeder ` +
        `(${lateP2P.length} published later); seeder sent ${sent} B; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });
  } finally {
    live.stop();
  }
});

// ---------------------------------------------------------------------------
// 3. Shaka + p2p-media-loader-shaka 2.2.2 on the DASH demo

test("shaka page on the DASH demo: segments from the seeder", { timeout: 170_000, ...maybe("shaka") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "seeder.Caddyfile", name: "caddy-dash" }, async (caddy) => {
    const ready = await waitSeederReady(caddy, DASH_MANIFEST, { minSwarms: 2 });
    const seederId = ready.peer_id;
    h.log(`seeder ${seederId} ready:\n${describeSeeder(ready, DASH_MANIFEST)}`);
    assert.ok(swarmsOf(ready, DASH_MANIFEST, "shaka").length === 2, `the seeder joined the shaka swarms of video and audio\n${describeSeeder(ready, DASH_MANIFEST)}`);

    const browser = await h.launchBrowser();
    const url = h.playerURL(caddy, { manifest: DASH_MANIFEST }, "/pages/shaka.html");
    let a;
    let s;
    // shaka 4.16.29 with P2P Media Loader 2.2.2 sometimes stalls after its
    // first segments on a loaded machine (see identity.test.mjs): one retry
    // with a fresh page when it never plays.
    for (let attempt = 1; ; attempt++) {
      a = await h.openPlayer(browser, url, { name: `shaka-${attempt}` });
      try {
        await a.waitFor((x) => x.ready, { timeout: 40_000, what: "shaka loaded the MPD" });
        await a.waitFor((x) => x.playing && x.currentTime >= 2, { timeout: 40_000, what: "shaka plays" });
        break;
      } catch (e) {
        if (attempt >= 2) throw e;
        h.log(`shaka did not start (${String(e.message).split("\n")[0]}); retrying with a fresh page`);
        await a.close();
      }
    }
    // Both streams have 30 segments: wait until it has loaded nearly all
    // of them, or played 40 s.
    await a.waitFor((x) => (x.segments.length >= 2 * DEMO_SEGMENTS - 4 && x.currentTime >= 10) || x.currentTime >= 40, {
      timeout: 100_000, what: "shaka loads most segments or plays 40 s",
    });
    await sleep(1000);
    s = await a.state();
    const stats = await seederStats(caddy);
    const report = () => `${pageReport(a, s)}\n${describeSeeder(stats, DASH_MANIFEST)}`;
    const st = h.p2pStats(s);
    const byType = (type) => {
      const segs = s.segments.filter((x) => x.streamType === type);
      const p = segs.filter((x) => x.source === "p2p");
      return `${type} ${p.length}/${segs.length} (${pct(p.reduce((n, x) => n + x.bytes, 0) / (segs.reduce((n, x) => n + x.bytes, 0) || 1))})`;
    };
    h.log(`shaka: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} bytes = ${pct(st.p2pShare)}; ` +
      `${byType("main")}, ${byType("secondary")}\n${describeSeeder(stats, DASH_MANIFEST)}`);

    assertPageSane(a, s, report);
    assert.ok(st.p2pSegments > 0, `no segment came over P2P\n${report()}`);
    for (const seg of s.segments.filter((x) => x.source === "p2p")) {
      assert.equal(seg.peerId, seederId, `P2P segment ${seg.url} came from ${seg.peerId}, not the seeder\n${report()}`);
    }
    const sent = swarmsOf(stats, DASH_MANIFEST, "shaka").reduce((n, sw) => n + upload(sw).bytesSent, 0);
    assert.ok(sent >= st.p2pSegmentBytes && sent > 0, `admin API: shaka swarms sent ${sent} B, page got ${st.p2pSegmentBytes} B\n${report()}`);
    results.push(`3 shaka DASH: ${st.p2pSegments}/${st.segments} segments, ${pct(st.p2pShare)} of bytes from the seeder (${byType("main")}, ${byType("secondary")}); ` +
      `seeder sent ${sent} B; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});

// ---------------------------------------------------------------------------
// 4. Three hls.js pages and a rare-only seeder

// rare_only 1: the seeder announces to its peers only the segments none of
// them holds, so once a page has a segment the others must get it from that
// page (or over HTTP).
const RARE_THRESHOLD = 1;

test("three hls.js pages with a rare-only seeder: pages share among themselves, the seeder fills gaps", { timeout: 200_000, ...maybe("rare") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "seeder-rare.Caddyfile", name: "caddy-rare", env: { RARE_THRESHOLD: String(RARE_THRESHOLD) } }, async (caddy) => {
    const ready = await waitSeederReady(caddy, HLS_MANIFEST, { minSwarms: 2 });
    const seederId = ready.peer_id;
    h.log(`seeder ${seederId} ready (rare_only ${RARE_THRESHOLD}):\n${describeSeeder(ready, HLS_MANIFEST)}`);

    const browser = await h.launchBrowser();
    const url = h.playerURL(caddy, { manifest: HLS_MANIFEST });
    const a = await h.openPlayer(browser, url, { name: "A" });
    await a.waitFor((s) => s.playing && s.currentTime >= 6, { timeout: 60_000, what: "A plays 6 s" });
    const b = await h.openPlayer(browser, url, { name: "B" });
    await b.waitFor((s) => s.playing && s.currentTime >= 3, { timeout: 60_000, what: "B plays 3 s" });
    const c = await h.openPlayer(browser, url, { name: "C" });
    const pages = [a, b, c];
    const ids = () => Object.fromEntries(pages.map((p) => [p.name, new Set(p.ownPeerIds())]));

    // Until some page got a segment from another page and the seeder has
    // served something, with B and C past 20 s (the numbers barely change
    // after that), or until B and C played 25 s.
    const fromPages = (states) => {
      const all = new Set(pages.flatMap((p) => p.ownPeerIds()));
      return states.some((s) => (s?.segments || []).some((x) => x.source === "p2p" && all.has(x.peerId)));
    };
    await h.waitFor(async () => {
      const st = await Promise.all(pages.map((p) => p.state()));
      const [, sb, sc] = st;
      return (fromPages(st) && sb.currentTime >= 20 && sc.currentTime >= 20) || (sb.currentTime >= 25 && sc.currentTime >= 25);
    }, {
      timeout: 110_000,
      interval: 1000,
      what: "B and C to play 20 s",
      describe: async () => (await Promise.all(pages.map(async (p) => p.summary(await p.state())))).join("\n"),
    });
    await sleep(1000);
    const states = Object.fromEntries(await Promise.all(pages.map(async (p) => [p.name, await p.state()])));
    const stats = await seederStats(caddy);
    const own = ids();
    const report = () => `${pages.map((p) => pageReport(p, states[p.name])).join("\n")}\n${describeSeeder(stats, HLS_MANIFEST)}`;

    let fromSeeder = 0;
    let fromOthers = 0;
    let total = 0;
    for (const p of pages) {
      const s = states[p.name];
      assertPageSane(p, s, report);
      const st = h.p2pStats(s);
      total += st.segmentBytes;
      const mine = own[p.name];
      const byPeer = p2pBytesByPeer(s);
      let seederB = 0;
      let othersB = 0;
      for (const [peer, bytes] of byPeer) {
        if (peer === seederId) seederB += bytes;
        else if (pages.some((o) => o !== p && own[o.name].has(peer))) othersB += bytes;
        else assert.fail(`${p.name}: P2P bytes from unknown peer ${peer} (not the seeder, not a test page; own ${[...mine]})\n${report()}`);
      }
      fromSeeder += seederB;
      fromOthers += othersB;
      h.log(`${p.name}: ${st.p2pSegments}/${st.segments} segments over P2P; of ${st.segmentBytes} segment bytes ${pct(seederB / (st.segmentBytes || 1))} from the seeder, ` +
        `${pct(othersB / (st.segmentBytes || 1))} from other pages`);
    }
    h.log(describeSeeder(stats, HLS_MANIFEST));
    const p2pSegs = pages.reduce((n, p) => n + h.p2pStats(states[p.name]).p2pSegments, 0);
    assert.ok(p2pSegs > 0, `no segment at all came over P2P\n${report()}`);
    assert.ok(fromOthers > 0, `no page got a segment from another page\n${report()}`);
    assert.ok(fromSeeder > 0, `no page got a segment from the seeder\n${report()}`);
    // The policy itself: the later pages B and C got more from the pages
    // than from the seeder, and the seeder withholds the segments some page
    // holds (its current announcement is shorter than the playlist).
    const late = { seeder: 0, pages: 0 };
    for (const p of [b, c]) {
      for (const [peer, bytes] of p2pBytesByPeer(states[p.name])) late[peer === seederId ? "seeder" : "pages"] += bytes;
    }
    assert.ok(late.pages > late.seeder, `rare_only: B and C got ${late.seeder} B from the seeder and only ${late.pages} B from the pages\n${report()}`);
    const sws = swarmsOf(stats, HLS_MANIFEST, "hlsjs");
    const used = sws.filter((sw) => sw.peers > 0);
    assert.ok(used.length > 0 && used.every((sw) => sw.announced < sw.segments),
      `rare_only: the seeder still announces every segment in the swarms the pages are in\n${report()}`);
    const sent = sws.reduce((n, sw) => n + upload(sw).bytesSent, 0);
    assert.ok(sent >= fromSeeder, `admin API: hls.js swarms sent ${sent} B, the pages got ${fromSeeder} B from the seeder\n${report()}`);
    results.push(`4 rare-only (${RARE_THRESHOLD}), 3 hls.js pages: of ${total} segment bytes ${pct(fromSeeder / total)} from the seeder, ${pct(fromOthers / total)} from other pages; ` +
      `seeder sent ${sent} B; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});

// ---------------------------------------------------------------------------
// 5. The seeder joins after the page, through the admin API

// Caddy starts the p2p app with no stream (seeder-late.Caddyfile). The page
// plays alone: it announces to the tracker, and its offers go nowhere. Then
// the test POSTs the manifest URL the page loaded to /p2p/seeder/streams:
// the seeder loads the manifest, announces "started" with offers (3 per
// swarm, always on the first announce), the tracker relays them to the page,
// whose simple-peer (inside P2P Media Loader) answers, and the page gets
// segments from the seeder. The tracker's interval is 10 s, so while the
// test watches, the page re-announces with fresh offers, which the tracker
// relays to the seeder: it must ignore them (it is already connected to that
// peer) and keep one connection per swarm, and its own re-announces carry no
// offers (the tracker's incomplete count, 1, is not above its peers).
const LATE_WATCH_MS = 25_000;

test("seeder joins after the page (its own offers)", { timeout: 170_000, ...maybe("joins after") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "seeder-late.Caddyfile", name: "caddy-late" }, async (caddy) => {
    let idle = null;
    await h.waitFor(async () => {
      idle = await seederStats(caddy);
      return (idle.trackers || []).some((t) => t.connected);
    }, { timeout: 20_000, what: "the seeder to connect to the tracker", describe: () => `${JSON.stringify(idle)}\n${h.tail(caddy.logs(), 30)}` });
    const seederId = idle.peer_id;
    assert.deepEqual(idle.streams || [], [], `the seeder starts with no stream\n${JSON.stringify(idle)}`);

    const browser = await h.launchBrowser();
    const a = await h.openPlayer(browser, h.playerURL(caddy, { manifest: HLS_MANIFEST }), { name: "late-A" });
    await a.waitFor((s) => s.playing && s.currentTime >= 2, { timeout: 40_000, what: "late-A plays 2 s alone" });
    await h.waitFor(() => a.ownPeerIds().length > 0, { timeout: 10_000, what: "late-A announced to the tracker" });
    const alone = await a.state();
    assert.equal(h.p2pStats(alone).p2pSegments, 0, `late-A got P2P segments before the seeder joined\n${pageReport(a, alone)}`);
    assert.deepEqual(alone.peers, [], `late-A has peers before the seeder joined\n${pageReport(a, alone)}`);
    const announcesBefore = a.announces.length;

    // The manifest URL exactly as the page loaded it (the swarm ids derive from it).
    const manifestURL = alone.config.manifest;
    const postT = await a.page.evaluate(() => performance.now());
    const postAt = Date.now();
    const added = await adminJSON(caddy, "POST", "/p2p/seeder/streams", { url: manifestURL });
    h.log(`POST /p2p/seeder/streams ${manifestURL} -> ${JSON.stringify(added)} at page t=${alone.currentTime.toFixed(1)} s`);
    assert.equal(added.added, true, `POST /p2p/seeder/streams: ${JSON.stringify(added)}`);
    const ready = await waitSeederReady(caddy, HLS_MANIFEST, { minSwarms: 2 });
    h.log(`seeder ${seederId} joined ${((Date.now() - postAt) / 1000).toFixed(1)} s after the POST:\n${describeSeeder(ready, HLS_MANIFEST)}`);

    // A segment from the seeder, loaded after the POST.
    const fromSeederAfterPost = (s) => (s.segments || []).filter((x) => x.source === "p2p" && x.peerId === seederId && x.t > postT);
    let stats = null;
    const first = await a.waitFor((s) => fromSeederAfterPost(s).length > 0, { timeout: 45_000, what: "a P2P segment from the seeder after the POST" })
      .catch(async (e) => {
        stats = await seederStats(caddy).catch(() => null);
        throw new Error(`${e.message}\n${describeSeeder(stats, HLS_MANIFEST)}\n${h.tail(caddy.logs(), 40)}`);
      });
    const firstSeg = fromSeederAfterPost(first)[0];
    h.log(`late-A: first P2P segment from the seeder ${((firstSeg.t - postT) / 1000).toFixed(1)} s after the POST (${firstSeg.url})`);
    const atConnect = await seederStats(caddy);
    const pageSwarmsAt = () => new Set(a.announces.map((x) => x.info_hash)).size;
    const pageSwarmsAtConnect = pageSwarmsAt();
    h.log(`at the first P2P segment:\n${describeSeeder(atConnect, HLS_MANIFEST)}`);

    // Watch through the page's re-announces (interval 10 s).
    await sleep(LATE_WATCH_MS);
    const s = await a.state();
    stats = await seederStats(caddy);
    const report = () => `${pageReport(a, s)}\n${describeSeeder(stats, HLS_MANIFEST)}\npage announces ${JSON.stringify(a.announces)}`;
    const st = h.p2pStats(s);
    const seederEvents = (s.peerEvents || []).filter((e) => e.peerId === seederId);
    h.log(`late-A after ${LATE_WATCH_MS / 1000} s more: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} bytes = ${pct(st.p2pShare)}; ` +
      `${a.announces.length - announcesBefore} announces since the POST; seeder peer events ${JSON.stringify(seederEvents.map((e) => `${e.type}:${e.streamType}@${e.t}`))}\n` +
      `${describeSeeder(stats, HLS_MANIFEST)}`);

    assertPageSane(a, s, report);
    assert.ok(stats.offers_answered >= 1, `the seeder's offers were never answered (offers_answered ${stats.offers_answered})\n${report()}`);
    assert.ok(fromSeederAfterPost(s).length >= 1, `no segment from the seeder after the POST\n${report()}`);
    assert.ok(s.totals.p2pBytes > 0, `late-A: no P2P bytes\n${report()}`);
    for (const seg of s.segments.filter((x) => x.source === "p2p")) {
      assert.equal(seg.peerId, seederId, `P2P segment ${seg.url} came from ${seg.peerId}, not the seeder\n${report()}`);
      assert.ok(seg.t > postT, `P2P segment ${seg.url} loaded before the POST\n${report()}`);
    }
    // The page's re-announces did not confuse it: the page re-announced
    // (fresh offers, relayed to the seeder), yet the seeder holds one
    // connection per swarm the page is in, never dropped it, and did not
    // answer offers of a peer it is connected to.
    assert.ok(a.announces.length - announcesBefore >= 2, `late-A re-announced ${a.announces.length - announcesBefore} times in ${LATE_WATCH_MS / 1000} s (tracker interval 10 s)\n${report()}`);
    const sws = swarmsOf(stats, HLS_MANIFEST);
    for (const sw of sws) assert.ok(sw.peers <= 1, `seeder swarm ${sw.client} ${sw.playlist} has ${sw.peers} peers with one page\n${report()}`);
    const pageSwarms = sws.filter((sw) => sw.peers === 1).length;
    assert.ok(pageSwarms >= 1, `the seeder is connected to the page in no swarm\n${report()}`);
    if (pageSwarmsAt() === pageSwarmsAtConnect) { // (a level switch would join a new swarm: a new connection is right then)
      assert.equal(stats.connections, atConnect.connections, `the seeder made new connections while the page re-announced (${atConnect.connections} -> ${stats.connections})\n${report()}`);
      assert.equal(stats.answers_sent, atConnect.answers_sent, `the seeder answered offers of the page it is connected to (${atConnect.answers_sent} -> ${stats.answers_sent})\n${report()}`);
    }
    assert.ok(!seederEvents.some((e) => e.type === "close" || e.type === "error"), `late-A lost its connection to the seeder\n${report()}`);

    // DELETE: the seeder leaves the swarms, in its stats and at the tracker.
    const hexes = sws.map((sw) => binHex(sw.info_hash));
    const before = await trackerSwarms(caddy);
    h.log(`tracker before DELETE: ${JSON.stringify(hexes.map((x) => before.get(x) || x))}`);
    for (const x of hexes) assert.ok((before.get(x)?.complete || 0) >= 1, `tracker: the seeder is not complete in swarm ${x}: ${JSON.stringify(before.get(x))}`);
    const removed = await adminJSON(caddy, "DELETE", "/p2p/seeder/streams", { url: manifestURL });
    assert.equal(removed.removed, true, `DELETE /p2p/seeder/streams: ${JSON.stringify(removed)}`);
    let gone = null;
    let tsw = null;
    await h.waitFor(async () => {
      gone = await seederStats(caddy);
      tsw = await trackerSwarms(caddy);
      return (gone.streams || []).length === 0 && hexes.every((x) => !tsw.get(x) || tsw.get(x).complete === 0);
    }, {
      timeout: 15_000, what: "the seeder to leave its swarms (admin API and tracker)",
      describe: () => `${JSON.stringify(gone)}\ntracker: ${JSON.stringify(hexes.map((x) => tsw?.get(x) || x))}`,
    });
    h.log(`after DELETE: seeder streams ${JSON.stringify(gone.streams)} pcs=${gone.peer_connections}; tracker ${JSON.stringify(hexes.map((x) => tsw.get(x) || `${x} gone`))}`);
    const pageSwarmsLeft = hexes.filter((x) => tsw.get(x)?.incomplete >= 1).length;
    assert.ok(pageSwarmsLeft >= 1, `tracker: the page's swarms are gone with the seeder: ${JSON.stringify(hexes.map((x) => tsw.get(x) || x))}`);
    results.push(`5 seeder joins late: first segment from the seeder ${((firstSeg.t - postT) / 1000).toFixed(1)} s after the POST; ${st.p2pSegments}/${st.segments} segments, ` +
      `${pct(st.p2pShare)} of bytes from the seeder; offers sent/answered ${stats.offers_sent}/${stats.offers_answered}, answers_sent ${stats.answers_sent}; ` +
      `${a.announces.length - announcesBefore} page announces since the POST; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});

// ---------------------------------------------------------------------------
// 6. Origin egress: HTTP-only versus P2P with a rare-only seeder

// What an origin owner pays for is server egress: the bytes Caddy sent for
// segments over HTTP plus the bytes the seeder uploaded over WebRTC. One
// Caddy (seeder-egress.Caddyfile: seeder-rare plus a JSON access log) runs:
//
//   A. three p2p_player pages with ?core={"isP2PDisabled":true} (plain
//      hls.js loading, P2P Media Loader never joins a swarm): the HTTP-only
//      baseline;
//   B. the same three pages with P2P, the seeder in rare_only 1 mode.
//
// Both runs open the pages staggered as in test 4 (B after A played 6 s, C
// after B played 3 s) and close each page as soon as it has played EGRESS_PLAY
// seconds, so both runs stop at the same playback position. What is compared
// is egress per second of playback (all pages' played seconds summed), not
// "bytes per page until the end": P2P Media Loader, once it has peers,
// prefetches over P2P far beyond the playhead (here the whole 60 s demo),
// while in run A hls.js stops at its buffer target (P2P Media Loader's mixin
// lowers maxBufferLength to the 15 s high-demand window even with P2P
// disabled, so a page stopped at 30 s has loaded ~45 s: 23 of 30 segments).
// Stopping both runs at the same position and dividing by the seconds played
// (which absorbs the few hundred ms each stop overshoots) therefore counts,
// in run B, the prefetched tail that run A never loaded: the comparison is
// conservative, it understates what P2P saves. HTTP bytes come from Caddy's
// access log (size of each response for /media/demo/*.ts, aborted ones
// included: what the server really sent); the seeder's from /p2p/seeder
// (upload.bytes_sent, summed over its swarms). The pages' own
// onSegmentLoaded figures (HTTP and P2P) are printed as a cross-check for
// run B (in run A P2P Media Loader does not see the loads).
const EGRESS_PLAY = 30;

/** Bytes of /media/demo/*.ts responses in Caddy's JSON access log from byte offset `from`. */
function segmentEgress(logPath, from = 0) {
  let text = "";
  try { text = fs.readFileSync(logPath).subarray(from).toString("utf8"); } catch { /* none yet */ }
  const out = { bytes: 0, requests: 0, byLevel: {} };
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    const uri = e.request?.uri || "";
    const m = /^\/media\/demo\/([^/]+)\/[^?]*\.ts(?:\?|$)/.exec(uri);
    if (!m) continue;
    out.bytes += Number(e.size || 0);
    out.requests++;
    out.byLevel[m[1]] = (out.byLevel[m[1]] || 0) + Number(e.size || 0);
  }
  return out;
}

/**
 * Opens three pages staggered like test 4 and closes each one when it has
 * played `play` seconds. Returns {pages, states (name -> last state), played
 * (seconds summed over the pages), ms}.
 */
async function playThreeUntil(browser, url, label, play) {
  const t0 = Date.now();
  const pages = [];
  const states = {};
  const open = async (name) => {
    const p = await h.openPlayer(browser, url, { name: `${label}-${name}` });
    pages.push(p);
    return p;
  };
  // Stops a page once it has played `play` s: records its state, then closes
  // its context, which aborts its downloads and peer connections.
  const poll = async () => {
    for (const p of pages) {
      if (states[p.name]) continue;
      const s = await p.state();
      if (s && s.currentTime >= play) {
        states[p.name] = s;
        await p.close();
      }
    }
  };
  const a = await open("A");
  await a.waitFor((s) => s.playing && s.currentTime >= 6, { timeout: 60_000, what: "plays 6 s" });
  const b = await open("B");
  await b.waitFor((s) => s.playing && s.currentTime >= 3, { timeout: 60_000, what: "plays 3 s" });
  await open("C");
  await h.waitFor(async () => {
    await poll();
    return pages.every((p) => states[p.name]);
  }, {
    timeout: 120_000, interval: 250, what: `${label}: every page to play ${play} s`,
    describe: async () => (await Promise.all(pages.map(async (p) => (states[p.name] ? `${p.name}: done` : p.summary(await p.state()))))).join("\n"),
  });
  const played = pages.reduce((n, p) => n + states[p.name].currentTime, 0);
  return { pages, states, played, ms: Date.now() - t0 };
}

const MB = (n) => (n / 1e6).toFixed(2);
const kBs = (bytes, s) => (bytes / 1e3 / s).toFixed(1);

test("origin egress: HTTP-only vs three pages with the seeder (rare-only)", { timeout: 330_000, ...maybe("egress") }, async () => {
  const t0 = Date.now();
  const accessLog = path.join(h.tempDir(), "egress-access.log");
  await withCaddy({ caddyfile: "seeder-egress.Caddyfile", name: "caddy-egress", env: { RARE_THRESHOLD: String(RARE_THRESHOLD), ACCESS_LOG: accessLog } }, async (caddy) => {
    const ready = await waitSeederReady(caddy, HLS_MANIFEST, { minSwarms: 2 });
    const seederId = ready.peer_id;
    const browser = await h.launchBrowser();
    const sentNow = async () => swarmsOf(await seederStats(caddy), HLS_MANIFEST).reduce((n, sw) => n + upload(sw).bytesSent, 0);

    // Run A: HTTP only.
    const offA = fs.existsSync(accessLog) ? fs.statSync(accessLog).size : 0;
    const seedA0 = await sentNow();
    const runA = await playThreeUntil(browser, h.playerURL(caddy, { manifest: HLS_MANIFEST, core: { isP2PDisabled: true } }), "http", EGRESS_PLAY);
    await sleep(1500); // aborted responses reach the access log when their connection closes
    const httpA = segmentEgress(accessLog, offA);
    const seedA = (await sentNow()) - seedA0;
    for (const p of runA.pages) {
      const s = runA.states[p.name];
      assertPageSaneClosed(p, s);
      assert.deepEqual(p.ownPeerIds(), [], `${p.name}: P2P disabled, yet it announced to the tracker`);
    }
    assert.equal(seedA, 0, `run A (P2P disabled): the seeder sent ${seedA} B`);
    assert.ok(httpA.bytes > 0, `run A: no segment bytes in the access log ${accessLog}`);
    const egressA = httpA.bytes + seedA;
    h.log(`run A (HTTP only): ${httpA.requests} segment responses, ${MB(httpA.bytes)} MB ${JSON.stringify(httpA.byLevel)}; ` +
      `played ${runA.played.toFixed(1)} s in ${(runA.ms / 1000).toFixed(1)} s`);

    // Run B: P2P, rare-only seeder.
    const offB = fs.statSync(accessLog).size;
    const seedB0 = await sentNow();
    const runB = await playThreeUntil(browser, h.playerURL(caddy, { manifest: HLS_MANIFEST }), "p2p", EGRESS_PLAY);
    await sleep(1500);
    const httpB = segmentEgress(accessLog, offB);
    const stats = await seederStats(caddy);
    const seedB = swarmsOf(stats, HLS_MANIFEST).reduce((n, sw) => n + upload(sw).bytesSent, 0) - seedB0;
    const egressB = httpB.bytes + seedB;

    // Cross-check from the pages' own P2P Media Loader events.
    const own = new Set(runB.pages.flatMap((p) => p.ownPeerIds()));
    const pageFig = { http: 0, p2p: 0, fromSeeder: 0, fromPages: 0 };
    for (const p of runB.pages) {
      const s = runB.states[p.name];
      assertPageSaneClosed(p, s);
      for (const seg of s.segments) {
        if (seg.source === "p2p") {
          pageFig.p2p += seg.bytes;
          if (seg.peerId === seederId) pageFig.fromSeeder += seg.bytes;
          else if (own.has(seg.peerId)) pageFig.fromPages += seg.bytes;
        } else pageFig.http += seg.bytes;
      }
      const st = h.p2pStats(s);
      h.log(`${p.name}: stopped at ${s.currentTime.toFixed(1)} s; ${st.p2pSegments}/${st.segments} segments over P2P (${pct(st.p2pShare)} of ${st.segmentBytes} B)`);
    }
    h.log(`run B (P2P + seeder): ${httpB.requests} segment responses, ${MB(httpB.bytes)} MB ${JSON.stringify(httpB.byLevel)} + seeder ${MB(seedB)} MB; ` +
      `played ${runB.played.toFixed(1)} s in ${(runB.ms / 1000).toFixed(1)} s; pages' events: http ${MB(pageFig.http)} MB, p2p ${MB(pageFig.p2p)} MB ` +
      `(${MB(pageFig.fromPages)} from pages, ${MB(pageFig.fromSeeder)} from the seeder)\n${describeSeeder(stats, HLS_MANIFEST)}`);

    const rateA = egressA / runA.played;
    const rateB = egressB / runB.played;
    const line = `EGRESS: play ${EGRESS_PLAY} s x 3 pages; A http-only ${MB(egressA)} MB / ${runA.played.toFixed(1)} s = ${kBs(egressA, runA.played)} kB/s; ` +
      `B p2p+seeder(rare_only ${RARE_THRESHOLD}) http ${MB(httpB.bytes)} MB + seeder ${MB(seedB)} MB = ${MB(egressB)} MB / ${runB.played.toFixed(1)} s = ${kBs(egressB, runB.played)} kB/s; ` +
      `ratio B/A ${(rateB / rateA).toFixed(2)} (per played s), ${(egressB / egressA).toFixed(2)} (totals); ` +
      `B pages got ${MB(pageFig.fromPages)} MB from each other, ${MB(pageFig.fromSeeder)} MB from the seeder`;
    console.error(line);

    assert.ok(pageFig.p2p > 0, `run B: no segment came over P2P`);
    assert.ok(rateB < rateA, `origin egress per played second with P2P (${kBs(egressB, runB.played)} kB/s) is not below HTTP-only (${kBs(egressA, runA.played)} kB/s)\n${line}`);
    results.push(`6 egress: ${line.slice("EGRESS: ".length)}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});

/** assertPageSane for a state recorded just before the page was closed (no page handle checks that need it open). */
function assertPageSaneClosed(p, s) {
  const report = () => `${p.summary(s)}\n  page log: ${p.log.slice(-10).join("\n  ") || "(empty)"}`;
  assert.ok(s && s.ready && s.currentTime > 0, `${p.name} plays\n${report()}`);
  assert.deepEqual((s.errors || []).filter((e) => ["hls-fatal", "load"].includes(e.type)), [], `${p.name}: no fatal errors\n${report()}`);
  assert.ok(!p.log.some((l) => l.includes("pageerror")), `${p.name}: no page errors\n${report()}`);
}
