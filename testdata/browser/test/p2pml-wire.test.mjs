// Unit check of lib/p2pml-wire.mjs, the data-channel decoder the identity
// test uses to read segment ids off the wire: the golden vectors of
// shared/spec/p2pml-v2-wire.md §7.3/§7.4 must decode (and encode) exactly,
// the §7.3 edge cases must behave like the real receiver, and random
// commands serialised by the real clients' own serialisers (core 2.3.1 and
// the nested core 2.2.2 of p2p-media-loader-shaka) must decode to what was
// serialised. No browser, no network: it runs in a few milliseconds.

import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as w from "../lib/p2pml-wire.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

function grouped(ids) {
  const m = new Map();
  for (const id of ids) {
    const hi = Math.floor(id / 256);
    if (!m.has(hi)) m.set(hi, []);
    m.get(hi).push(id);
  }
  return [...m.values()].flat();
}

test("§7.3/§7.4 vectors decode and encode", () => {
  for (const [what, cmd, hexes, max] of w.SPEC_VECTORS) {
    const msgs = hexes.map(w.hexToBytes);
    assert.deepEqual(w.decodeMessages(msgs), [cmd], `decode ${what}`);
    assert.deepEqual(w.encodeCommand(cmd, max).map(w.bytesToHex), hexes.map((h) => h.replace(/\s+/g, "")), `encode ${what}`);
    for (const m of msgs) assert.ok(w.isCommandChunk(m), `${what}: command chunk`);
  }
});

test("§7.3 edge cases behave like the receiver", () => {
  // l=[0..255, 300]: the 0..255 group writes count 0 (mod 256) and misparses.
  const full = [...Array(256).keys(), 300];
  const [msg] = w.encodeCommand({ c: 0, l: full });
  assert.throws(() => w.decodeMessages([msg]), /invalid serialized item code/);
  // 256 distinct blocks: group count wraps to 0, an empty list.
  const blocks = Array.from({ length: 256 }, (_, k) => k * 256 + 1);
  // The receiver then reads the leftover bytes as more fields; l is empty.
  const [wrapped] = w.decodeMessages(w.encodeCommand({ c: 0, l: blocks }));
  assert.deepEqual(wrapped.l, []);
  // Unknown command, unknown field name, type nibble 3.
  assert.deepEqual(w.decodeMessages([w.hexToBytes("637374720963656e64")]), [{ c: 9 }]);
  assert.deepEqual(w.decodeMessages([w.hexToBytes("63737472 01 69 0105 7a 0107 72 0102 63656e64")]), [{ c: 1, i: 5, z: 7, r: 2 }]);
  assert.throws(() => w.decodeMessages([w.hexToBytes("63737472 01 69 3105 63656e64")]), /Not existing type/);
  // Sign-magnitude integers.
  for (const n of [0, 127, 128, 1000, 150000, -1, -128, 2 ** 40, -(2 ** 52)]) {
    assert.deepEqual(w.decodeMessages(w.encodeCommand({ c: 1, i: n, r: 1 })), [{ c: 1, i: n, r: 1 }], `int ${n}`);
  }
  // Payload chunks are not commands.
  assert.equal(w.isCommandChunk(new Uint8Array(100)), false);
  const j = new w.CommandJoiner();
  assert.equal(j.push(w.hexToBytes("64737472720203d26264656e64")).kind, "error"); // dstr with nothing joined
});

for (const [label, dir] of [
  ["core 2.3.1", "../node_modules/p2p-media-loader-core/lib/p2p/commands/index.js"],
  ["core 2.2.2 (shaka)", "../node_modules/p2p-media-loader-shaka/node_modules/p2p-media-loader-core/lib/p2p/commands/index.js"],
]) {
  test(`commands serialised by the real ${label} decode`, async () => {
    const real = await import(pathToFileURL(path.join(here, dir)).href);
    let seed = 42;
    const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let k = 0; k < 300; k++) {
      const c = rnd(6);
      let cmd;
      if (c === 0) {
        const base = [0, 1000, 2 ** 20, 3_400_000_000][rnd(4)];
        const ids = [...new Set(Array.from({ length: rnd(40) }, () => base + rnd(600)))];
        const p = [...new Set(Array.from({ length: rnd(3) }, () => base + 600 + rnd(50)))];
        cmd = { c };
        if (ids.length) cmd.l = ids;
        if (p.length) cmd.p = p;
      } else {
        cmd = { c, i: rnd(2) ? rnd(100000) : 3_400_000_000 + rnd(1000), r: rnd(1000) };
        if (c === 2) cmd = { c, i: cmd.i, s: rnd(3_000_000), r: cmd.r };
        if (c === 1 && rnd(2)) cmd.b = 1 + rnd(200000);
      }
      const max = [65535, 16, 40][rnd(3)];
      // Ids come back grouped by 256-block, in order of first appearance.
      for (const k of ["l", "p"]) if (cmd[k]) cmd[k] = grouped(cmd[k]);
      const msgs = real.serializePeerCommand(cmd, max);
      assert.deepEqual(w.decodeMessages(msgs), [cmd], `${label}: ${JSON.stringify(cmd)} max ${max}`);
      assert.deepEqual(w.encodeCommand(cmd, max).map(w.bytesToHex), msgs.map(w.bytesToHex), `${label}: encode ${JSON.stringify(cmd)}`);
      const joiner = new real.BinaryCommandChunksJoiner((body) => {
        assert.deepEqual(real.deserializeCommand(body), cmd);
      });
      for (const m of w.encodeCommand(cmd, max)) joiner.addCommandChunk(m);
    }
    // Broken input: the real receiver and this decoder agree (both throw,
    // or both return the same object).
    for (const hex of ["6373747200", "637374720063", "6373747201690263656e64", "63737472006c10020203e863656e64",
      "63737472006c1001020203e863656e64", "637374720169", "6373747201692a0163656e64", "637374720069"]) {
      const body = w.hexToBytes(hex);
      let want, got;
      try { want = real.deserializeCommand(body); } catch (e) { want = "throws"; }
      try { got = w.decodeBody(body); } catch (e) { got = "throws"; }
      assert.deepEqual(got, want, `${label}: body ${hex}`);
    }
  });
}
