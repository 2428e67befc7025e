// WebRTC peers in Node: the npm bittorrent-tracker Client with
// @thaunknown/simple-peer on node-datachannel (see
// shared/spec/pion-notes.md §5).
//
// - simple-peer imports webrtc-polyfill (an RTCPeerConnection on top of
//   node-datachannel) directly and ignores opts.wrtc. package.json pins
//   node-datachannel 0.33.4 (prebuilt @node-datachannel/linux-x64-gnu) and
//   overrides webrtc-polyfill's own ^0.32 range with it.
// - webrtc-polyfill never fires the null end-of-candidates event, so every
//   non-trickle offer/answer would wait for simple-peer's full 5 s
//   ICECOMPLETE_TIMEOUT. patchIceCompleteTimeout() shortens it.
// - node-datachannel gathers host candidates on the non-loopback interfaces
//   only; inside run-in-netns.sh those are 10.201.0.1/10.201.0.2, so two Node
//   peers (or a Node peer and Chromium) connect over the veth pair.

import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Peer from "@thaunknown/simple-peer/lite.js";
import Client from "bittorrent-tracker";

let patchedMs = null;
/**
 * Makes simple-peer send its non-trickle SDP `ms` after the first ICE
 * candidate instead of 5 s (all host candidates arrive together with
 * node-datachannel). Process-wide; idempotent.
 */
export function patchIceCompleteTimeout(ms = 100) {
  if (patchedMs === null) {
    const orig = Peer.prototype._startIceCompleteTimeout;
    Peer.prototype._startIceCompleteTimeout = function patched(...args) {
      this.iceCompleteTimeout = patchedMs;
      return orig.apply(this, args);
    };
  }
  patchedMs = ms;
}

/** 20 random bytes as 40 hex characters (an info_hash or peer_id for Client). */
export function randomHex20() {
  return randomBytes(20).toString("hex");
}

/**
 * A bittorrent-tracker Client for a WebSocket tracker, with host-only ICE.
 *   announce  ws://.../announce (string or array)
 *   infoHash  40 hex chars (or a 20-byte Buffer)
 *   peerId    40 hex chars (default: random, '-CP0001-' prefix)
 * Errors and warnings are collected in client.errors / client.warnings
 * (an 'error' event without listener would throw).
 */
export function createTrackerClient({ announce, infoHash, peerId, rtcConfig = { iceServers: [] }, ...rest }) {
  patchIceCompleteTimeout();
  const id = peerId || Buffer.from(`-CP0001-${randomBytes(6).toString("hex")}`).toString("hex");
  const client = new Client({
    infoHash,
    peerId: id,
    announce: Array.isArray(announce) ? announce : [announce],
    port: 6881, // required outside browsers; unused by WebSocket trackers
    rtcConfig,
    ...rest,
  });
  client.errors = [];
  client.warnings = [];
  client.on("error", (e) => client.errors.push(e));
  client.on("warning", (e) => client.warnings.push(e));
  client.peerIdHex = id;
  return client;
}

/**
 * Resolves with the first simple-peer of a 'peer' event on `client` that is
 * (or becomes) connected. The tracker client emits 'peer' as soon as it has
 * an offer or answer for a peer, before the data channel is open.
 */
export function firstConnectedPeer(client) {
  return new Promise((resolve) => {
    const onPeer = (peer) => {
      const done = () => {
        client.off("peer", onPeer);
        resolve(peer);
      };
      if (peer.connected) done();
      else peer.once("connect", done);
    };
    client.on("peer", onPeer);
  });
}

/** Destroys a client and resolves when done. */
export function destroyClient(client) {
  return new Promise((resolve) => client.destroy(() => resolve()));
}

/**
 * Starts one bittorrent-tracker Client in its own Node process
 * (lib/tracker-client-peer.mjs), tracked by the harness (killed by
 * cleanup()). Returns a handle:
 *   peerId          the client's peer_id (40 hex chars)
 *   events          [{event, ..., t}] received so far
 *   command(cmd, extra)   send {cmd, ...extra} to the child
 *   waitEvent(type, {timeout, pred, since})
 *                   resolves with the first event of that type (index >= since)
 *                   matching pred; rejects on timeout or child exit
 *   stop()          destroy the client, then end the process
 */
export async function startTrackerClientPeer({ announce, infoHash, peerId, name = "tracker-client" }) {
  const harness = await import("./harness.mjs"); // not at top level: the child imports this file too
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "tracker-client-peer.mjs");
  const child = harness.spawnTracked(process.execPath, [script, JSON.stringify({ announce, infoHash, peerId })], {
    name, ipc: true, cwd: path.dirname(script),
  });
  const t0 = Date.now();
  const events = [];
  const waiters = new Set();
  const check = () => { for (const w of waiters) w(); };
  child.proc.on("message", (m) => { events.push({ ...m, t: Date.now() - t0 }); check(); });
  child.proc.on("exit", check);

  const handle = {
    name,
    events,
    logFile: child.logFile,
    command(cmd, extra = {}) { child.proc.send({ cmd, ...extra }); },
    waitEvent(type, { timeout = 30_000, pred = () => true, since = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`${name}: no '${type}' event within ${timeout} ms; events: ${JSON.stringify(events)}; log:\n${harness.tail(child.logs(), 20)}`)), timeout);
        const w = () => {
          const ev = events.slice(since).find((e) => e.event === type && pred(e));
          if (ev) return done(null, ev);
          if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
            done(new Error(`${name}: process exited (${child.proc.exitCode ?? child.proc.signalCode}) before '${type}'; log:\n${harness.tail(child.logs(), 20)}`));
          }
        };
        function done(err, ev) {
          clearTimeout(timer);
          waiters.delete(w);
          if (err) reject(err); else resolve(ev);
        }
        waiters.add(w);
        w();
      });
    },
    async stop() {
      if (child.proc.connected) {
        handle.command("destroy");
        await handle.waitEvent("destroyed", { timeout: 3000 }).catch(() => {});
      }
      await child.stop();
    },
  };
  handle.peerId = (await handle.waitEvent("ready", { timeout: 15_000 })).peerId;
  harness.onCleanup(() => handle.stop());
  return handle;
}
