// The npm bittorrent-tracker Client (the library P2P Media Loader wraps), run
// in Node with simple-peer on node-datachannel, against our p2p_tracker:
// two clients announce one info_hash, connect to each other through the
// tracker's offer/answer relay and exchange a message both ways over the
// WebRTC data channel; then a scrape through the client reports both peers.
//
// Each client runs in its own Node process (lib/tracker-client-peer.mjs), as
// two browsers would: bittorrent-tracker pools one WebSocket per tracker URL
// per process, and p2p_tracker never relays an offer back to the socket it
// came from.
//
// Runs inside the test netns: node-datachannel gathers no loopback
// candidates, so the peers connect over 10.201.0.x. The tracker itself is
// reached on ws://127.0.0.1.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as h from "../lib/harness.mjs";
import { randomHex20, startTrackerClientPeer } from "../lib/node-peer.mjs";

await h.enterNetns();
after(h.cleanup);

test("bittorrent-tracker Client: two Node peers connect through p2p_tracker, exchange data and scrape", { timeout: 90_000 }, async () => {
  const caddy = await h.startCaddy({ caddyfile: "browser-tracker.Caddyfile" });
  const announce = caddy.trackerURL;
  const infoHash = randomHex20();

  const [a, b] = await Promise.all([
    startTrackerClientPeer({ announce, infoHash, name: "client-a" }),
    startTrackerClientPeer({ announce, infoHash, name: "client-b" }),
  ]);

  // a first, so that it is in the swarm when b's offers arrive.
  a.command("start");
  const ua = await a.waitEvent("update", { timeout: 10_000 });
  assert.equal(ua.complete + ua.incomplete, 1, `a alone in the swarm: ${JSON.stringify(ua)}`);
  b.command("start");
  const ub = await b.waitEvent("update", { timeout: 10_000 });
  assert.equal(ub.complete + ub.incomplete, 2, `b sees a in the swarm: ${JSON.stringify(ub)}`);

  const [pa, pb] = await Promise.all([a.waitEvent("peer", { timeout: 30_000 }), b.waitEvent("peer", { timeout: 30_000 })]);
  h.log(`connected: a -> ${pa.remoteAddress}:${pa.remotePort}, b -> ${pb.remoteAddress}:${pb.remotePort}`);
  for (const p of [pa, pb]) assert.match(String(p.remoteAddress), /^10\.201\.0\.\d+$/, "peer address on the test veth");

  a.command("send", { data: "hello from a" });
  b.command("send", { data: "hello from b" });
  const [da, db] = await Promise.all([a.waitEvent("data", { timeout: 10_000 }), b.waitEvent("data", { timeout: 10_000 })]);
  assert.equal(db.data, "hello from a", "b received a's message");
  assert.equal(da.data, "hello from b", "a received b's message");

  // Scrape: both peers are in the swarm, neither complete (no `left` is sent,
  // so the tracker counts both as incomplete).
  a.command("scrape");
  const s = await a.waitEvent("scrape", { timeout: 10_000 });
  h.log("scrape:", JSON.stringify(s));
  assert.equal(s.infoHash, infoHash);
  assert.equal(s.complete, 0, `scrape: ${JSON.stringify(s)}`);
  assert.equal(s.incomplete, 2, `scrape: ${JSON.stringify(s)}`);

  for (const c of [a, b]) {
    assert.deepEqual(c.events.filter((e) => e.event === "error"), [], `no client errors on ${c.name}`);
  }
  await Promise.all([a.stop(), b.stop()]);
});
