// p2p_manifest's stream discovery in real browsers: the p2p app (the
// origin's seeder) lists NO stream; it seeds the streams p2p_manifest
// registers when a page loads a multivariant playlist, under the URL the
// page used, and serves the page segments over WebRTC.
//
//   1. discovery: file_server behind p2p_manifest. One hls.js page (the
//      p2p_player page) on the demo VOD gets segments over P2P from the
//      seeder (-CP0001-...), and the admin API's /p2p/seeder lists the
//      manifest URL the page loaded.
//   2. private tracker: the same plus `authorizer known_streams`. The page
//      still gets segments from the seeder; a raw WebSocket announce for an
//      unknown info_hash gets a "failure reason" (with that info_hash), one
//      for an info_hash of the page's swarms (from /p2p/seeder) an interval.
//   3. reverse proxy in front of a CDN: a second Caddy is the CDN (plain
//      file_server, JSON access log); the origin reverse-proxies it behind
//      p2p_manifest, and its seeder uses the default http source, i.e.
//      fetches through the proxy from the CDN. Two pages play through the
//      origin, get segments over P2P, and the CDN's log shows every segment
//      URL fetched by the seeder (User-Agent caddy-p2p-seeder/1) at most
//      once.
//   4. dashboard: the discovery site plus `p2p_dashboard /dashboard`. Two
//      pages play the demo ~20 s (they POST their totals, the seeder serves
//      them, they share); then the dashboard page, in its own context, must
//      have updated 3 times and show the stream (the pages' manifest URL),
//      viewers >= 1, 2 reporting players, seeder and HTTP bytes > 0 and a
//      numeric offload, in its DOM; its canvas must hold pixels of the chart
//      line colours. A second dashboard, opened before the pages, holds the
//      whole history: its chart must show the HTTP and seeder lines (and the
//      browser-to-browser one when the pages shared). Full-page screenshots
//      go to the temp dir (dashboard.png, dashboard-history.png; kept with
//      CADDYP2P_KEEP_LOGS=1). GET /dashboard?format=json cross-checks the
//      figures.
//   5. Caddyfile.example (the README's main job), adapted only to the test
//      namespace's ports and addresses and to local npm packages: one page
//      gets segments over P2P from the seeder.
//
// Every test fails when no segment went over P2P from the seeder. Which peer
// sent a segment is P2P Media Loader's own record (onSegmentLoaded's peerId,
// in window.caddyP2P); the seeder's peer id is read from the admin API.
//
// Caddyfiles: testdata/caddyfiles/manifest-*.Caddyfile and Caddyfile.example.
// Environment: MANIFEST_ONLY=<regex> runs only the tests whose name matches.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import WebSocket from "ws";
import * as h from "../lib/harness.mjs";

await h.enterNetns();
after(h.cleanup);

const SEEDER_PREFIX = "-CP0001-";
const HLS_MANIFEST = "/media/demo/master.m3u8";
const DEMO_SEGMENTS = 30; // per variant, 2 s each

const only = process.env.MANIFEST_ONLY ? new RegExp(process.env.MANIFEST_ONLY, "i") : null;
const maybe = (name) => (only && !only.test(name) ? { skip: `MANIFEST_ONLY=${process.env.MANIFEST_ONLY}` } : {});

// ---------------------------------------------------------------------------
// Helpers

const pct = (x) => `${(100 * x).toFixed(1)}%`;
const secs = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/**
 * GET on Caddy's admin API, with node:http: the admin endpoint refuses
 * fetch()'s requests (Sec-Fetch-Mode: cors without an Origin).
 */
function adminGet(caddy, p) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${caddy.adminURL}${p}`, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { body += d; });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${p}: ${res.statusCode} ${body}`));
        try { resolve(JSON.parse(body)); } catch (e) { reject(new Error(`GET ${p}: ${e.message}: ${body.slice(0, 200)}`)); }
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${p}: timeout`)));
    req.on("error", reject);
  });
}
const seederStats = (caddy) => adminGet(caddy, "/p2p/seeder");

function upload(sw) {
  const u = sw.upload || {};
  return { bytesSent: Number(u.bytes_sent ?? 0), requests: Number(u.requests ?? 0) };
}

function describeSeeder(stats) {
  if (!stats) return "seeder: no stats";
  const lines = [`seeder ${stats.peer_id}: pcs=${stats.peer_connections} connections=${stats.connections} connect_failures=${stats.connect_failures} ` +
    `offers sent/answered/received=${stats.offers_sent}/${stats.offers_answered}/${stats.offers_received} answers_sent=${stats.answers_sent} ` +
    `trackers=${JSON.stringify(stats.trackers)}`];
  for (const st of stats.streams || []) {
    lines.push(` stream ${st.url}${st.swarm_id ? ` (swarm ${st.swarm_id})` : ""}`);
    for (const sw of st.swarms || []) {
      const u = upload(sw);
      lines.push(`  ${sw.client} ${sw.kind} ${JSON.stringify(sw.info_hash)} ${sw.playlist}: segments=${sw.segments} announced=${sw.announced} ` +
        `peers=${sw.peers} sent=${u.bytesSent} B requests=${u.requests}`);
    }
  }
  return lines.join("\n");
}

function p2pBytesByPeer(s) {
  const m = new Map();
  for (const seg of (s?.segments || []).filter((x) => x.source === "p2p")) m.set(seg.peerId, (m.get(seg.peerId) || 0) + seg.bytes);
  return m;
}

function pageReport(p, s) {
  return `${p.summary(s)}\n  own ids ${JSON.stringify(p.ownPeerIds())} info_hashes ${JSON.stringify([...new Set(p.announces.map((a) => a.info_hash))])}\n` +
    `  p2p segment bytes by peer ${JSON.stringify(Object.fromEntries(p2pBytesByPeer(s)))}\n  page log: ${p.log.slice(-10).join("\n  ") || "(empty)"}`;
}

function assertPageSane(p, s, report) {
  assert.ok(s && s.ready && s.currentTime > 0, `${p.name} plays\n${report()}`);
  assert.ok(p.ownPeerIds().length > 0, `${p.name} announced to the tracker\n${report()}`);
  assert.deepEqual((s.errors || []).filter((e) => ["hls-fatal", "load"].includes(e.type)), [], `${p.name}: no fatal errors\n${report()}`);
  assert.ok(!p.log.some((l) => l.includes("pageerror")), `${p.name}: no page errors\n${report()}`);
}

/** Bytes the page got over P2P from peer ids starting with the seeder's prefix. */
function seederBytes(s) {
  let n = 0;
  for (const [peer, b] of p2pBytesByPeer(s)) if (String(peer).startsWith(SEEDER_PREFIX)) n += b;
  return n;
}

/**
 * Plays page p until it got a segment over P2P from the seeder and played
 * 10 s, or loaded (nearly) the whole stream, or played 40 s; returns its state.
 */
async function playUntilP2P(p) {
  await p.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
  await p.waitFor((s) => s.playing && (
    (seederBytes(s) > 0 && s.currentTime >= 10) ||
    (s.segments.length >= DEMO_SEGMENTS - 2 && s.currentTime >= 10) ||
    s.currentTime >= 40), { timeout: 100_000, what: "a segment from the seeder, the whole stream, or 40 s played" });
  await sleep(1000);
  return p.state();
}

/** Runs fn with a started Caddy, stopping it afterwards (its log stays in the temp dir). */
async function withCaddy(opts, fn) {
  const caddy = await h.startCaddy(opts);
  try {
    return await fn(caddy);
  } finally {
    await caddy.stop();
  }
}

/** Opens a raw WebSocket to the tracker. */
async function openTrackerSocket(url) {
  const ws = new WebSocket(url);
  const inbox = [];
  const waiters = new Set();
  ws.on("message", (d) => {
    let m;
    try { m = JSON.parse(d.toString()); } catch { return; }
    inbox.push(m);
    for (const w of [...waiters]) w();
  });
  await h.withTimeout(new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); }), 10_000, `WebSocket ${url}`);
  return {
    ws,
    inbox,
    /** Sends an announce and resolves with the first reply carrying infoHash. */
    async announce(infoHash, peerId) {
      const seen = inbox.length;
      ws.send(JSON.stringify({ action: "announce", info_hash: infoHash, peer_id: peerId, numwant: 0, uploaded: 0, downloaded: 0, event: "started", offers: [] }));
      return h.withTimeout(new Promise((resolve) => {
        const check = () => {
          const m = inbox.slice(seen).find((x) => x.info_hash === infoHash);
          if (m) { waiters.delete(check); resolve(m); }
        };
        waiters.add(check);
        check();
      }), 10_000, `tracker reply for ${JSON.stringify(infoHash)}`);
    },
    close() { try { ws.close(); } catch { /* closed */ } },
  };
}

/** A random 20-character peer id / info_hash. */
function rand20(prefix = "") {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let s = prefix;
  while (s.length < 20) s += abc[Math.floor(Math.random() * abc.length)];
  return s;
}

/**
 * The checks tests 1 and 2 share: the seeder starts with no stream, the
 * page's manifest URL gets discovered, and the page gets segments from the
 * seeder. Returns {seederId, stats, state, page}.
 */
async function discoveryRun(caddy, name) {
  const before = await seederStats(caddy);
  assert.ok(before.peer_id.startsWith(SEEDER_PREFIX), `seeder peer id ${before.peer_id} starts with ${SEEDER_PREFIX}`);
  assert.deepEqual(before.streams || [], [], `no stream before a page loads a manifest\n${describeSeeder(before)}`);

  const browser = await h.launchBrowser();
  const pageURL = h.playerURL(caddy, { manifest: HLS_MANIFEST });
  const manifestURL = new URL(HLS_MANIFEST, pageURL).href; // what the page requests
  const a = await h.openPlayer(browser, pageURL, { name });
  const s = await playUntilP2P(a);
  const stats = await seederStats(caddy);
  const report = () => `${pageReport(a, s)}\n${describeSeeder(stats)}\ncaddy log:\n${h.tail(caddy.logs(), 20)}`;
  const st = h.p2pStats(s);
  h.log(`${name}: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} B = ${pct(st.p2pShare)}\n${describeSeeder(stats)}`);

  assertPageSane(a, s, report);
  const urls = (stats.streams || []).map((x) => x.url);
  assert.ok(urls.includes(manifestURL), `/p2p/seeder lists the manifest URL the page loaded, ${manifestURL}; it lists ${JSON.stringify(urls)}\n${report()}`);
  assert.ok(caddy.logs().includes("p2p_manifest: stream discovered"), `Caddy logged the discovery\n${report()}`);
  const stream = stats.streams.find((x) => x.url === manifestURL);
  const seederHashes = new Set((stream.swarms || []).map((sw) => sw.info_hash));
  const pageHashes = [...new Set(a.announces.map((x) => x.info_hash))];
  assert.ok(pageHashes.length > 0 && pageHashes.every((ih) => seederHashes.has(ih)),
    `every swarm the page announced is one the seeder joined: page ${JSON.stringify(pageHashes)}\n${report()}`);

  assert.ok(st.p2pSegments > 0, `no segment came over P2P\n${report()}`);
  const fromSeeder = p2pBytesByPeer(s).get(stats.peer_id) || 0;
  assert.ok(fromSeeder > 0, `no P2P bytes from the seeder ${stats.peer_id}\n${report()}`);
  const sent = (stream.swarms || []).reduce((n, sw) => n + upload(sw).bytesSent, 0);
  assert.ok(sent >= fromSeeder, `admin API: the stream's swarms sent ${sent} B, less than the ${fromSeeder} B the page got from the seeder\n${report()}`);
  return { seederId: stats.peer_id, stats, state: s, page: a, stream, fromSeeder, st };
}

const results = [];
after(() => {
  if (!results.length) return;
  h.log("manifest summary:");
  for (const r of results) h.log(`  ${r}`);
});

// ---------------------------------------------------------------------------
// 1. discovery

test("discovery: no stream configured, the page's manifest is discovered and seeded", { timeout: 150_000, ...maybe("discovery") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "manifest-discovery.Caddyfile", name: "caddy-discovery" }, async (caddy) => {
    const r = await discoveryRun(caddy, "disc-A");
    results.push(`1 discovery: ${r.st.p2pSegments}/${r.st.segments} segments over P2P, ${r.fromSeeder} B from the seeder (${pct(r.fromSeeder / r.st.segmentBytes)} of bytes); ${secs(t0)}`);
  });
});

// ---------------------------------------------------------------------------
// 2. private tracker

test("private tracker: known_streams accepts the discovered swarms and refuses others", { timeout: 150_000, ...maybe("private") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "manifest-private.Caddyfile", name: "caddy-private" }, async (caddy) => {
    const trackerURL = `ws://${h.inNetns() ? h.VETH_HOST : "127.0.0.1"}:${caddy.port}/announce`;

    // Before any page: everything is unknown.
    const early = await openTrackerSocket(trackerURL);
    const unknownEarly = rand20("zz");
    const r0 = await early.announce(unknownEarly, rand20("-TEST01-"));
    early.close();
    assert.ok(typeof r0["failure reason"] === "string", `announce of an unknown info_hash before any page: want a failure reason, got ${JSON.stringify(r0)}`);

    const r = await discoveryRun(caddy, "priv-A");

    const sock = await openTrackerSocket(trackerURL);
    try {
      const unknown = rand20("xx");
      const bad = await sock.announce(unknown, rand20("-TEST02-"));
      h.log(`unknown info_hash ${JSON.stringify(unknown)} -> ${JSON.stringify(bad)}`);
      assert.equal(bad.info_hash, unknown, `the failure names the info_hash: ${JSON.stringify(bad)}`);
      assert.ok(typeof bad["failure reason"] === "string" && bad["failure reason"].length > 0, `unknown info_hash: want a failure reason, got ${JSON.stringify(bad)}`);
      assert.equal(bad.interval, undefined, `unknown info_hash: no interval: ${JSON.stringify(bad)}`);

      const known = r.stream.swarms.find((sw) => r.page.announces.some((a) => a.info_hash === sw.info_hash))?.info_hash ?? r.stream.swarms[0].info_hash;
      const good = await sock.announce(known, rand20("-TEST03-"));
      h.log(`seeder's info_hash ${JSON.stringify(known)} -> ${JSON.stringify(good)}`);
      assert.equal(good["failure reason"], undefined, `known info_hash refused: ${JSON.stringify(good)}`);
      assert.ok(Number.isFinite(good.interval) && good.interval > 0, `known info_hash: want an interval, got ${JSON.stringify(good)}`);
      // The page and the seeder are in that swarm, plus this client.
      assert.ok(good.incomplete + good.complete >= 2, `the swarm holds the page and the seeder: ${JSON.stringify(good)}`);
    } finally {
      sock.close();
    }

    // Only our two unknown announces were refused: none of the page's or
    // the seeder's (the first manifest request waits for the seeder).
    const ts = await adminGet(caddy, "/p2p/tracker");
    const unauthorized = findKey(ts, "unauthorized");
    h.log(`tracker failures: ${JSON.stringify(findKey(ts, "failures"))}`);
    assert.equal(Number(unauthorized), 2, `tracker refused ${unauthorized} announces, want only the 2 unknown ones: ${JSON.stringify(findKey(ts, "failures"))}`);
    results.push(`2 private tracker: ${r.st.p2pSegments}/${r.st.segments} segments over P2P, ${r.fromSeeder} B from the seeder; unknown refused, known accepted; unauthorized=${unauthorized}; ${secs(t0)}`);
  });
});

/** The first value of key anywhere in a JSON value (sums numbers across entries with that key). */
function findKey(v, key) {
  let found;
  const walk = (x) => {
    if (!x || typeof x !== "object") return;
    for (const [k, val] of Object.entries(x)) {
      if (k === key) {
        if (typeof val === "number") found = (found ?? 0) + val;
        else if (found === undefined) found = val;
      } else walk(val);
    }
  };
  walk(v);
  return found;
}

// ---------------------------------------------------------------------------
// 3. reverse proxy in front of a CDN

/** Parses Caddy's JSON access log: [{uri, ua, range, status}]. */
function readAccessLog(file) {
  let text = "";
  try { text = fs.readFileSync(file, "utf8"); } catch { return []; }
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    if (!e.request) continue;
    const hd = e.request.headers || {};
    out.push({ uri: e.request.uri, ua: (hd["User-Agent"] || [])[0] || "", range: (hd.Range || [])[0] || "", status: e.status });
  }
  return out;
}

test("reverse proxy in front of a CDN: pages get P2P, the seeder fetches each segment from the CDN at most once", { timeout: 200_000, ...maybe("proxy|cdn") }, async () => {
  const t0 = Date.now();
  const cdnLog = path.join(h.tempDir(), "cdn-access.log");
  const cdn = await h.startCaddy({ caddyfile: "manifest-cdn.Caddyfile", name: "caddy-cdn", env: { CDN_LOG: cdnLog } });
  try {
    await withCaddy({ caddyfile: "manifest-proxy.Caddyfile", name: "caddy-proxy", env: { CDN_PORT: String(cdn.port) } }, async (caddy) => {
      const before = await seederStats(caddy);
      assert.deepEqual(before.streams || [], [], `no stream before a page loads a manifest\n${describeSeeder(before)}`);
      const seederId = before.peer_id;

      const browser = await h.launchBrowser();
      const pageURL = h.playerURL(caddy, { manifest: HLS_MANIFEST });
      const manifestURL = new URL(HLS_MANIFEST, pageURL).href;
      const a = await h.openPlayer(browser, pageURL, { name: "cdn-A" });
      await a.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
      const b = await h.openPlayer(browser, pageURL, { name: "cdn-B" });
      const [sa, sb] = await Promise.all([playUntilP2P(a), playUntilP2P(b)]);
      const stats = await seederStats(caddy);
      const entries = readAccessLog(cdnLog);
      const seederReqs = entries.filter((e) => e.ua.startsWith("caddy-p2p-seeder/"));
      const pageReqs = entries.filter((e) => e.ua.includes("Chrome"));
      const other = entries.filter((e) => !seederReqs.includes(e) && !pageReqs.includes(e));
      const isSeg = (e) => /\.(ts|m4s|mp4|aac)(\?|$)/.test(e.uri);
      const seederSegs = seederReqs.filter(isSeg);
      const counts = new Map();
      for (const e of seederSegs) {
        const k = `${e.uri}${e.range ? ` ${e.range}` : ""}`;
        counts.set(k, (counts.get(k) || 0) + 1);
      }
      const dups = [...counts].filter(([, n]) => n > 1);
      const report = () => `${pageReport(a, sa)}\n${pageReport(b, sb)}\n${describeSeeder(stats)}\n` +
        `CDN: ${entries.length} requests, seeder ${seederReqs.length} (${seederSegs.length} segments), pages ${pageReqs.length}, other ${other.length}\n` +
        `seeder's CDN requests: ${seederReqs.map((e) => `${e.status} ${e.uri}${e.range ? ` ${e.range}` : ""}`).join(", ")}\n` +
        `other CDN requests: ${other.slice(0, 10).map((e) => `${e.uri} UA=${JSON.stringify(e.ua)}`).join(", ")}\n` +
        `proxy log:\n${h.tail(caddy.logs(), 20)}`;
      const stA = h.p2pStats(sa), stB = h.p2pStats(sb);
      h.log(`cdn-A: ${stA.p2pSegments}/${stA.segments} P2P, cdn-B: ${stB.p2pSegments}/${stB.segments} P2P; ` +
        `CDN requests: seeder ${seederReqs.length} (${seederSegs.length} segments, ${counts.size} distinct), pages ${pageReqs.length}, other ${other.length}\n${describeSeeder(stats)}`);

      for (const [p, s] of [[a, sa], [b, sb]]) assertPageSane(p, s, report);
      assert.ok(entries.length > 0, `the CDN logged requests\n${report()}`);
      assert.equal(other.length, 0, `every CDN request is the seeder's (Go) or a page's (Chrome)\n${report()}`);
      assert.ok(pageReqs.length > 0, `the pages' requests reached the CDN through the proxy\n${report()}`);
      const urls = (stats.streams || []).map((x) => x.url);
      assert.ok(urls.includes(manifestURL), `/p2p/seeder lists ${manifestURL}; it lists ${JSON.stringify(urls)}\n${report()}`);
      assert.ok(stA.p2pSegments + stB.p2pSegments > 0, `no segment came over P2P\n${report()}`);
      const fromSeeder = (p2pBytesByPeer(sa).get(seederId) || 0) + (p2pBytesByPeer(sb).get(seederId) || 0);
      assert.ok(fromSeeder > 0, `no P2P bytes from the seeder ${seederId}\n${report()}`);
      assert.ok(seederSegs.length > 0, `the seeder fetched segments from the CDN (through the proxy)\n${report()}`);
      assert.deepEqual(dups, [], `the seeder fetched these segments from the CDN more than once\n${report()}`);
      // What the seeder served, it fetched (from the CDN): every P2P
      // segment from the seeder is in its CDN requests.
      const fetched = new Set(seederSegs.map((e) => e.uri.split("?")[0]));
      for (const s of [sa, sb]) {
        for (const seg of s.segments.filter((x) => x.source === "p2p" && x.peerId === seederId)) {
          const u = new URL(seg.url).pathname;
          assert.ok(fetched.has(u), `the seeder served ${u} without fetching it from the CDN\n${report()}`);
        }
      }
      results.push(`3 reverse proxy/CDN: A ${stA.p2pSegments}/${stA.segments}, B ${stB.p2pSegments}/${stB.segments} segments over P2P, ${fromSeeder} B from the seeder; ` +
        `seeder fetched ${seederSegs.length} segments from the CDN (${counts.size} distinct), pages ${pageReqs.filter(isSeg).length}; ${secs(t0)}`);
    });
  } finally {
    await cdn.stop();
  }
});

// ---------------------------------------------------------------------------
// 4. dashboard

/** Chart line colours of caddymodule/web/dashboard.html (--http, --seed, --peers). */
const CHART_COLOURS = { http: [0xd9, 0x82, 0x2b], seed: [0x2b, 0x6c, 0xb0], peers: [0x1f, 0x9d, 0x55] };

/** Parses the dashboard's fmtBytes() output ("3.4 MB", "512 B") back to a number. */
function parseBytes(text) {
  const m = /^([\d.]+)\s*(B|KB|MB|GB|TB)$/.exec(String(text).trim());
  if (!m) return NaN;
  return Number(m[1]) * 1000 ** ["B", "KB", "MB", "GB", "TB"].indexOf(m[2]);
}

/** Fetches the dashboard's JSON from the site (not the admin API). */
async function dashboardJSON(caddy) {
  const res = await fetch(`${caddy.url}/dashboard?format=json`, { cache: "no-store" });
  assert.equal(res.status, 200, `GET /dashboard?format=json: ${res.status}`);
  assert.match(res.headers.get("content-type") || "", /application\/json/, "GET /dashboard?format=json: Content-Type");
  return res.json();
}

/**
 * Reads the dashboard page: its update counter and data, and per stream card
 * the heading (URL), the table (label -> text), and the canvas's pixels
 * (counts of non-transparent pixels and of pixels near each line colour).
 */
function readDashboard(page, colours) {
  return page.evaluate((colours) => {
    const d = window.caddyP2PDashboard;
    const cards = [...document.querySelectorAll("#streams .stream")].map((el) => {
      const rows = Object.fromEntries([...el.querySelectorAll("tbody tr")].map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]));
      const c = el.querySelector("canvas");
      const px = { width: c?.width || 0, height: c?.height || 0, total: 0, opaque: 0, colour: {} };
      for (const k of Object.keys(colours)) px.colour[k] = 0;
      if (c && c.width && c.height) {
        const img = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        px.total = img.length / 4;
        for (let i = 0; i < img.length; i += 4) {
          const [r, g, b, a] = [img[i], img[i + 1], img[i + 2], img[i + 3]];
          if (a === 0) continue;
          px.opaque++;
          if (a < 200) continue; // antialiased edges: not counted as a colour
          for (const [k, [R, G, B]] of Object.entries(colours)) {
            if (Math.abs(r - R) + Math.abs(g - G) + Math.abs(b - B) <= 30) px.colour[k]++;
          }
        }
      }
      return { url: el.querySelector("h2")?.textContent || "", rows, px };
    });
    return {
      updates: d?.updates || 0,
      data: d ? JSON.parse(JSON.stringify(d.data)) : null,
      cards,
      cardsText: Object.fromEntries([...document.querySelectorAll(".cards .card")].map((c) => [c.querySelector("span")?.textContent, c.querySelector("b")?.textContent])),
      error: document.getElementById("error")?.textContent || "",
      updated: document.getElementById("updated")?.textContent || "",
    };
  }, colours);
}

/** Opens the dashboard page in a new context: {page, context, log, url}. */
async function openDashboard(browser, caddy) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") log.push(`console.${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => log.push(`requestfailed: ${r.url()} ${r.failure()?.errorText || ""}`));
  const url = `${caddy.url}/dashboard`;
  const resp = await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  assert.equal(resp.status(), 200, `GET ${url}: ${resp.status()}`);
  assert.equal(await page.title(), "caddy-p2p dashboard", `${url} serves the dashboard page, not the player`);
  return { page, context, log, url };
}

test("dashboard: p2p_dashboard shows the stream, viewers, reports, egress and a drawn chart", { timeout: 200_000, ...maybe("dashboard") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: "manifest-dashboard.Caddyfile", name: "caddy-dashboard" }, async (caddy) => {
    const before = await seederStats(caddy);
    assert.deepEqual(before.streams || [], [], `no stream before a page loads a manifest\n${describeSeeder(before)}`);
    const seederId = before.peer_id;
    const empty = await dashboardJSON(caddy);
    assert.deepEqual(empty.streams, [], `the dashboard lists no stream before a page plays: ${JSON.stringify(empty)}`);

    const browser = await h.launchBrowser();
    // A first dashboard, open from before the pages start, records the
    // whole history: P2P Media Loader's defaults prefetch the whole 60 s demo
    // within seconds, so by the time the second dashboard opens the rates
    // are 0 and its chart is flat.
    const hist = await openDashboard(browser, caddy);
    const histEmpty = await readDashboard(hist.page, CHART_COLOURS);
    await h.waitFor(async () => (await readDashboard(hist.page, CHART_COLOURS)).updates >= 1, { timeout: 10_000, what: "the first dashboard's first update" });
    const placeholder = await hist.page.evaluate(() => document.querySelector("#streams p")?.textContent || "");
    assert.ok(histEmpty.cards.length === 0 && /No stream seeded yet/.test(placeholder), `the dashboard shows no stream before a page plays: ${JSON.stringify(histEmpty.cards)} ${JSON.stringify(placeholder)}`);

    // Two pages play ~20 s: they report (every 5 s), the seeder serves, they share.
    const pageURL = h.playerURL(caddy, { manifest: HLS_MANIFEST });
    const manifestURL = new URL(HLS_MANIFEST, pageURL).href;
    const a = await h.openPlayer(browser, pageURL, { name: "dash-A" });
    await a.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
    const b = await h.openPlayer(browser, pageURL, { name: "dash-B" });
    const played = (s) => s.playing && s.currentTime >= 20;
    const [sa, sb] = await Promise.all([
      a.waitFor(played, { timeout: 90_000, what: "played 20 s" }),
      b.waitFor(played, { timeout: 90_000, what: "played 20 s" }),
    ]);
    await sleep(5500); // one more report round from both pages
    const tPlay = secs(t0);
    const stats = await seederStats(caddy);
    const stA = h.p2pStats(sa), stB = h.p2pStats(sb);
    const pagesReport = () => `${pageReport(a, sa)}\n${pageReport(b, sb)}\n${describeSeeder(stats)}\ncaddy log:\n${h.tail(caddy.logs(), 20)}`;
    for (const [p, s] of [[a, sa], [b, sb]]) assertPageSane(p, s, pagesReport);
    h.log(`dash-A: ${stA.p2pSegments}/${stA.segments} P2P (from the seeder ${seederBytes(sa)} B), dash-B: ${stB.p2pSegments}/${stB.segments} P2P (from the seeder ${seederBytes(sb)} B); ` +
      `page bytes A http=${sa.chunkBytes?.http} p2p=${sa.chunkBytes?.p2p}, B http=${sb.chunkBytes?.http} p2p=${sb.chunkBytes?.p2p}`);

    // The dashboard, in its own context (the pages stay open and keep reporting).
    const { page: dash, context: ctx, log: dashLog } = await openDashboard(browser, caddy);
    const tOpen = Date.now();
    let view;
    await h.waitFor(async () => {
      view = await readDashboard(dash, CHART_COLOURS);
      return view.updates >= 3;
    }, {
      timeout: 20_000, interval: 250, what: "the dashboard to update 3 times (window.caddyP2PDashboard.updates >= 3)",
      describe: () => `last view: ${JSON.stringify(view)}\ndashboard log: ${dashLog.join("\n") || "(empty)"}`,
    });
    const tUpdates = ((Date.now() - tOpen) / 1000).toFixed(1);

    const shot = path.join(h.tempDir(), "dashboard.png");
    await dash.screenshot({ path: shot, fullPage: true });
    h.log(`dashboard screenshot: ${shot}`);
    const json = await dashboardJSON(caddy);

    const card = view.cards.find((c) => c.url === manifestURL);
    const d = view.data?.streams?.find((x) => x.url === manifestURL);
    const report = () => `dashboard: ${JSON.stringify({ ...view, cards: view.cards.map((c) => ({ ...c })) }, null, 1)}\n` +
      `GET /dashboard?format=json: ${JSON.stringify(json)}\ndashboard log: ${dashLog.join("\n") || "(empty)"}\nscreenshot ${shot}\n${pagesReport()}`;
    h.log(`dashboard after ${view.updates} updates (${tUpdates} s): cards ${JSON.stringify(view.cardsText)}\n` +
      `  stream ${card?.url}: ${JSON.stringify(card?.rows)}\n  canvas ${JSON.stringify(card?.px)}\n  page data ${JSON.stringify(d)}\n` +
      `  json ${JSON.stringify(json.streams)}`);

    // From the page's DOM.
    assert.equal(view.error, "", `the dashboard shows no poll error\n${report()}`);
    assert.ok(!dashLog.some((l) => l.startsWith("pageerror")), `no page error on the dashboard\n${report()}`);
    assert.ok(card, `the dashboard shows a stream card for ${manifestURL}; it shows ${JSON.stringify(view.cards.map((c) => c.url))}\n${report()}`);
    assert.ok(d, `window.caddyP2PDashboard.data lists ${manifestURL}\n${report()}`);
    const rows = card.rows;
    const viewers = Number(rows.viewers);
    assert.ok(Number.isInteger(viewers) && viewers >= 1, `viewers >= 1 (from the tracker): ${JSON.stringify(rows.viewers)}\n${report()}`);
    assert.equal(Number(rows["reporting players"]), 2, `2 reporting players (the two pages): ${JSON.stringify(rows["reporting players"])}\n${report()}`);
    const domSeeder = parseBytes(rows["seeder bytes"]);
    const domHTTP = parseBytes(rows["HTTP segment bytes"]);
    assert.ok(domSeeder > 0, `seeder bytes > 0: ${JSON.stringify(rows["seeder bytes"])}\n${report()}`);
    assert.ok(domHTTP > 0, `HTTP segment bytes > 0: ${JSON.stringify(rows["HTTP segment bytes"])}\n${report()}`);
    const offloadText = rows.offload ?? "";
    const offloadPct = Number((/^(-?[\d.]+) %$/.exec(offloadText) || [])[1]);
    assert.ok(Number.isFinite(offloadPct) && offloadPct >= 0 && offloadPct <= 100, `offload is a number (0-100 %): ${JSON.stringify(offloadText)}\n${report()}`);
    // The DOM shows the data the page holds (fmtBytes rounds to 2-3 digits).
    const near = (x, y) => Math.abs(x - y) <= 0.06 * Math.max(x, y) + 1;
    assert.ok(near(domSeeder, d.seeder_bytes), `seeder bytes in the DOM ${rows["seeder bytes"]} vs data ${d.seeder_bytes}\n${report()}`);
    assert.ok(near(domHTTP, d.http_bytes), `HTTP bytes in the DOM ${rows["HTTP segment bytes"]} vs data ${d.http_bytes}\n${report()}`);
    assert.equal(viewers, d.viewers, `viewers in the DOM vs data\n${report()}`);
    assert.ok(typeof d.offload === "number" && Math.abs(100 * d.offload - offloadPct) <= 0.06, `offload in the DOM ${offloadText} vs data ${d.offload}\n${report()}`);
    assert.equal(d.egress_bytes, d.http_bytes + d.seeder_bytes, `egress = HTTP + seeder\n${report()}`);
    assert.equal(Number(view.cardsText.viewers), viewers, `the viewers card sums the one stream\n${report()}`);
    assert.ok(view.updated && view.updated !== "never", `"updated" shows a time: ${view.updated}\n${report()}`);

    // The chart is drawn: grid and labels, and the three line colours.
    const px = card.px;
    assert.ok(px.width > 0 && px.height > 0 && px.total === px.width * px.height, `canvas size ${px.width}x${px.height}\n${report()}`);
    assert.ok(px.opaque >= 2000, `the canvas has ${px.opaque} non-transparent pixels of ${px.total}: blank\n${report()}`);
    // With 3 updates the chart holds 2 points (the first update only sets the
    // baseline): each line is a ~6 px segment at the right edge. The
    // browser-to-browser line, drawn last, is always visible (at 0 B/s it
    // lies on the bottom grid line); the HTTP + seeder line is visible when
    // the last egress rate was not 0.
    const lineTotal = px.colour.http + px.colour.seed + px.colour.peers;
    assert.ok(lineTotal >= 10, `the canvas has ${lineTotal} pixels of the line colours ${JSON.stringify(px.colour)}: no line drawn\n${report()}`);
    assert.ok(px.colour.peers >= 5, `the canvas has ${px.colour.peers} pixels of the browser-to-browser line colour\n${report()}`);
    const egressRate = parseBytes(String(view.cardsText["origin egress (HTTP + seeder)"] || "").replace(/\/s$/, ""));
    if (egressRate > 0) assert.ok(px.colour.seed >= 5, `egress ${view.cardsText["origin egress (HTTP + seeder)"]} but ${px.colour.seed} pixels of the seeder line colour\n${report()}`);
    const png = fs.readFileSync(shot);
    assert.ok(png.length > 5000 && png.subarray(1, 4).toString() === "PNG", `screenshot ${shot} is a PNG (${png.length} B)`);

    // GET ?format=json ourselves: the same stream, counters no lower than the page showed.
    const j = json.streams.find((x) => x.url === manifestURL);
    assert.ok(j, `GET /dashboard?format=json lists ${manifestURL}: ${JSON.stringify(json.streams.map((x) => x.url))}\n${report()}`);
    assert.equal(json.peer_id, seederId, `JSON peer_id is the seeder's\n${report()}`);
    assert.ok(j.viewers >= 1, `JSON viewers >= 1\n${report()}`);
    assert.equal(j.reported.sessions, 2, `JSON reported sessions\n${report()}`);
    assert.ok(j.seeder_bytes >= d.seeder_bytes && j.seeder_bytes > 0, `JSON seeder bytes ${j.seeder_bytes} >= the page's ${d.seeder_bytes}\n${report()}`);
    assert.ok(j.http_bytes >= d.http_bytes && j.http_bytes > 0, `JSON HTTP bytes ${j.http_bytes} >= the page's ${d.http_bytes}\n${report()}`);
    assert.ok(typeof j.offload === "number" && Math.abs(j.offload - d.offload) < 0.1, `JSON offload ${j.offload} near the page's ${d.offload}\n${report()}`);
    assert.equal(j.egress_bytes, j.http_bytes + j.seeder_bytes, `JSON egress = HTTP + seeder\n${report()}`);
    // Roughly consistent with the admin API and the pages' own records.
    const sentAdmin = ((stats.streams || []).find((x) => x.url === manifestURL)?.swarms || []).reduce((n, sw) => n + upload(sw).bytesSent, 0);
    assert.ok(j.seeder_bytes >= sentAdmin, `JSON seeder bytes ${j.seeder_bytes} >= /p2p/seeder's earlier ${sentAdmin}\n${report()}`);
    const gotFromSeeder = seederBytes(sa) + seederBytes(sb);
    assert.ok(j.seeder_bytes >= gotFromSeeder, `JSON seeder bytes ${j.seeder_bytes} >= the ${gotFromSeeder} B the pages got from the seeder\n${report()}`);
    assert.ok(j.reported.p2p_from_seeder_bytes <= j.seeder_bytes, `reported from the seeder ${j.reported.p2p_from_seeder_bytes} <= seeder bytes ${j.seeder_bytes}\n${report()}`);
    assert.ok(j.reported.p2p_from_seeder_bytes > 0, `the pages reported bytes from the seeder\n${report()}`);
    const pagesHTTP = (sa.chunkBytes?.http || 0) + (sb.chunkBytes?.http || 0);
    assert.ok(j.reported.http_bytes >= 0.9 * pagesHTTP, `reported HTTP bytes ${j.reported.http_bytes} vs the pages' ${pagesHTTP} when they stopped being read\n${report()}`);
    assert.ok(j.reported.http_bytes <= 1.1 * j.http_bytes + 100_000, `reported HTTP bytes ${j.reported.http_bytes} <= the server's HTTP segment bytes ${j.http_bytes}\n${report()}`);

    const peersBytes = j.reported.p2p_bytes - j.reported.p2p_from_seeder_bytes;

    // The first dashboard's chart covers the pages' whole download: the
    // egress line (HTTP + seeder) rose above 0, so its colour shows apart
    // from the browser-to-browser line drawn over it.
    const hv = await readDashboard(hist.page, CHART_COLOURS);
    const histShot = path.join(h.tempDir(), "dashboard-history.png");
    await hist.page.screenshot({ path: histShot, fullPage: true });
    const hc = hv.cards.find((c) => c.url === manifestURL);
    h.log(`history dashboard: ${hv.updates} updates, screenshot ${histShot}, canvas ${JSON.stringify(hc?.px)}`);
    const histReport = () => `history dashboard: ${JSON.stringify(hv)}\nlog: ${hist.log.join("\n") || "(empty)"}\n${report()}`;
    assert.ok(hv.updates >= 10, `the first dashboard updated ${hv.updates} times in ${secs(t0)}\n${histReport()}`);
    assert.ok(hc, `the first dashboard added a card for ${manifestURL}\n${histReport()}`);
    assert.equal(Number(hc.rows["reporting players"]), 2, `the first dashboard shows 2 reporting players\n${histReport()}`);
    assert.ok(hc.px.colour.seed >= 20, `the first dashboard's chart has ${hc.px.colour.seed} pixels of the egress (HTTP + seeder) line colour\n${histReport()}`);
    assert.ok(hc.px.colour.peers >= 20, `the first dashboard's chart has ${hc.px.colour.peers} pixels of the browser-to-browser line colour\n${histReport()}`);
    assert.ok(hc.px.colour.http + hc.px.colour.seed + hc.px.colour.peers >= 100, `the first dashboard's chart line pixels ${JSON.stringify(hc.px.colour)}\n${histReport()}`);

    results.push(`4 dashboard: pages played to ${tPlay}; ${view.updates} updates in ${tUpdates} s; viewers ${viewers}, sessions 2, ` +
      `HTTP ${rows["HTTP segment bytes"]}, seeder ${rows["seeder bytes"]}, browser to browser ${peersBytes} B, offload ${offloadText}; ` +
      `canvas ${px.opaque} px drawn, line colours ${JSON.stringify(px.colour)}; screenshot ${shot}; ` +
      `history dashboard ${hv.updates} updates, line colours ${JSON.stringify(hc.px.colour)}, screenshot ${histShot}; ${secs(t0)}`);
    await ctx.close();
    await hist.context.close();
  });
});

// ---------------------------------------------------------------------------
// 5. the README's main job: Caddyfile.example

/**
 * Caddyfile.example as a newcomer runs it, changed only where the test
 * namespace needs it: its ports, the WebRTC address (the veth, any port),
 * and the npm packages served from testdata/browser/node_modules (the
 * namespace has no CDN). Each change must apply, so an edit to the example
 * that these no longer fit fails the test instead of testing something else.
 */
function exampleCaddyfile() {
  let text = fs.readFileSync(path.join(h.REPO_ROOT, "Caddyfile.example"), "utf8");
  const change = (from, to) => {
    assert.ok(text.includes(from), `Caddyfile.example no longer has ${JSON.stringify(from)}: update the test's adaptation`);
    text = text.replace(from, to);
  };
  change("admin localhost:2019", "admin localhost:{$ADMIN_PORT}\n\tauto_https off\n\tpersist_config off");
  change("webrtc_listen :50000", "webrtc_listen 10.201.0.1:0\n\t\tinterfaces v0");
  change("http://:8080 {", "http://:{$HTTP_PORT} {\n\thandle_path /npm/* {\n\t\troot * testdata/browser/node_modules\n\t\tfile_server\n\t}");
  change("manifest /media/demo/master.m3u8", "manifest /media/demo/master.m3u8\n\t\tpackages /npm/");
  return text;
}

test("Caddyfile.example: the main job plays the demo over P2P from the seeder, through its private tracker", { timeout: 150_000, ...maybe("example") }, async () => {
  const t0 = Date.now();
  await withCaddy({ caddyfile: exampleCaddyfile(), name: "caddy-example" }, async (caddy) => {
    const r = await discoveryRun(caddy, "example-A");
    // seeder_first and known_streams are on in the example: the page's
    // swarms were accepted, and the seeder got its first offers.
    assert.ok(r.page.announces.length > 0, "the page announced to the example's tracker");
    results.push(`5 Caddyfile.example: ${r.st.p2pSegments}/${r.st.segments} segments over P2P, ${r.fromSeeder} B from the seeder (${pct(r.fromSeeder / r.st.segmentBytes)} of bytes); ${secs(t0)}`);
  });
});
