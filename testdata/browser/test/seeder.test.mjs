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
