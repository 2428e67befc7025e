// Real browsers sharing video through our tracker: Caddy serves the
// p2p_player page (hls.js + P2P Media Loader 2.3.1), the demo HLS stream and
// p2p_tracker. Page A starts playing; pages B and C join later, each in its
// own browser context (own HTTP cache), and must get a real share of their
// segments from the earlier pages over WebRTC.
//
// Everything asserted comes from P2P Media Loader's own events in the pages
// (window.caddyP2P, recorded by the player page) and from the pages' own
// tracker frames (their announced peer_id), never from Caddy's logs.
//
// P2P Media Loader config: defaults. The page gets ?stun=0 (no STUN servers:
// none is reachable from the test netns; host candidates 10.201.0.x are
// enough). P2PML loads the first highDemandTimeWindow (15 s) ahead of the
// playhead over HTTP and the rest of the buffer (hls.js keeps 30 s) from
// peers when they have it, so with the defaults a late joiner still gets a
// large share over P2P.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as h from "../lib/harness.mjs";

await h.enterNetns();
after(h.cleanup);

const MANIFEST = "/media/demo/master.m3u8";
const MIN_P2P_SHARE = 0.2; // of a later page's segment bytes
const MIN_P2P_SEGMENTS = 2;

test("P2P Media Loader pages share segments through p2p_tracker", { timeout: 170_000 }, async () => {
  const caddy = await h.startCaddy({ caddyfile: "browser-tracker.Caddyfile" });
  const browser = await h.launchBrowser();
  const url = h.playerURL(caddy, { manifest: MANIFEST });
  h.log("page URL", url);

  const a = await h.openPlayer(browser, url, { name: "A" });
  await a.waitFor((s) => s.ready, { timeout: 30_000, what: "manifest parsed" });
  await a.waitFor((s) => s.playing && s.currentTime >= 6, { timeout: 60_000, what: "A plays 6 s" });
  h.log(a.summary(await a.state()));

  const b = await h.openPlayer(browser, url, { name: "B" });
  await b.waitFor((s) => s.playing && s.currentTime >= 3, { timeout: 60_000, what: "B plays 3 s" });
  const c = await h.openPlayer(browser, url, { name: "C" });
  const pages = [a, b, c];

  // Wait until B and C both got enough over P2P, or until they have played
  // 20 s (by then hls.js has buffered to the end of the 60 s demo, so the
  // numbers no longer change much): whichever comes first.
  const enough = (s) => {
    const st = h.p2pStats(s);
    return st.p2pShare >= MIN_P2P_SHARE && st.p2pSegments >= MIN_P2P_SEGMENTS;
  };
  const settled = (s) => s.currentTime >= 20;
  await h.waitFor(async () => {
    const [sb, sc] = await Promise.all([b.state(), c.state()]);
    return (enough(sb) && enough(sc)) || (settled(sb) && settled(sc));
  }, {
    timeout: 100_000,
    interval: 1000,
    what: "B and C to get segments over P2P or to play 20 s",
    describe: async () => (await Promise.all(pages.map(async (p) => p.summary(await p.state())))).join("\n"),
  });

  const states = Object.fromEntries(await Promise.all(pages.map(async (p) => [p.name, await p.state()])));
  const ids = Object.fromEntries(pages.map((p) => [p.name, p.ownPeerIds()]));
  for (const p of pages) {
    h.log(p.summary(states[p.name]), `ownPeerIds=${JSON.stringify(ids[p.name])}`);
  }
  const report = () => pages.map((p) => `${p.summary(states[p.name])}\n  own ids ${JSON.stringify(ids[p.name])}\n  ` +
    `page log: ${p.log.slice(-10).join("\n  ") || "(empty)"}`).join("\n");

  // Sanity: every page played, announced itself, and had no fatal error.
  for (const p of pages) {
    const s = states[p.name];
    assert.ok(s.ready && s.currentTime > 0, `${p.name} plays\n${report()}`);
    assert.ok(ids[p.name].length > 0, `${p.name} announced to the tracker\n${report()}`);
    assert.deepEqual(s.errors.filter((e) => e.type === "hls-fatal" || e.type === "load"), [], `${p.name}: no fatal errors\n${report()}`);
    assert.ok(!p.log.some((l) => l.includes("pageerror")), `${p.name}: no page errors\n${report()}`);
  }

  // At least some segment went over P2P somewhere (fails the test if none did).
  const totalP2P = pages.reduce((n, p) => n + h.p2pStats(states[p.name]).p2pSegments, 0);
  assert.ok(totalP2P > 0, `no segment at all was delivered over P2P\n${report()}`);

  const earlier = { B: ["A"], C: ["A", "B"] };
  for (const p of [b, c]) {
    const s = states[p.name];
    const st = h.p2pStats(s);
    const pct = (100 * st.p2pShare).toFixed(1);
    h.log(`${p.name}: ${st.p2pSegments}/${st.segments} segments over P2P, ${st.p2pSegmentBytes}/${st.segmentBytes} bytes = ${pct}% ` +
      `(chunk bytes p2p ${s.chunkBytes.p2p}, http ${s.chunkBytes.http})`);

    assert.ok(st.p2pSegments >= MIN_P2P_SEGMENTS, `${p.name}: ${st.p2pSegments} segments over P2P, want >= ${MIN_P2P_SEGMENTS}\n${report()}`);
    assert.ok(st.p2pShare >= MIN_P2P_SHARE, `${p.name}: P2P share ${pct}% of segment bytes, want >= ${100 * MIN_P2P_SHARE}%\n${report()}`);
    assert.ok(s.chunkBytes.p2p >= st.p2pSegmentBytes, `${p.name}: P2P chunk bytes cover the P2P segments\n${report()}`);

    // P2P segments came from the other test pages, by the peer_ids those
    // pages announced, and at least one from a page that was there before.
    const others = new Set(pages.filter((o) => o !== p).flatMap((o) => ids[o.name]));
    const before = new Set(earlier[p.name].flatMap((n) => ids[n]));
    for (const seg of s.segments.filter((x) => x.source === "p2p")) {
      assert.ok(others.has(seg.peerId), `${p.name}: segment ${seg.url} came from unknown peer ${seg.peerId}\n${report()}`);
    }
    assert.ok(st.sourcePeers.some((id) => before.has(id)),
      `${p.name}: no P2P segment from an earlier page (${earlier[p.name]})\n${report()}`);
    assert.ok(s.peerEvents.some((e) => e.type === "connect" && before.has(e.peerId)),
      `${p.name}: no connect event from an earlier page\n${report()}`);
  }
});
