// P2P Media Loader 2.x data-channel commands: a small, independent decoder
// (and encoder, for the unit check) of the binary format in
// shared/spec/p2pml-v2-wire.md §3.2-3.4. Used by test/identity.test.mjs to
// read the segment ids real browsers put on the wire.
//
//   message   = "cstr" body "cend"            (one frame)
//             | "cstr" part "dend", ("dstr" part "dend")*, "dstr" part "cend"
//   body      = command-id:u8 (name:u8 value)*
//   value     = Int             [0x0L][L bytes, sign-magnitude, big-endian]
//             | SimilarIntArray [0x10][G:u8] G * (Int(hi|count) count*[lo:u8])
//             | String          [0x2H][L:u8] UTF-8 bytes (12-bit length H:L)
//
// Commands (§3.4): 0 SegmentsAnnouncement {l, p}, 1 SegmentRequest {i, r, b},
// 2 SegmentData {i, s, r}, 3 SegmentDataSendingCompleted {i, r},
// 4 SegmentAbsent {i, r}, 5 CancelSegmentRequest {i, r}.
//
// Decoding follows the receiver's rules: an unknown type nibble (>= 3)
// throws, unknown field names are kept, unknown command ids decode to {c}.
// Integers are returned as JS numbers (BigInt internally, like the client).

export const COMMANDS = Object.freeze({
  0: "SegmentsAnnouncement",
  1: "SegmentRequest",
  2: "SegmentData",
  3: "SegmentDataSendingCompleted",
  4: "SegmentAbsent",
  5: "CancelSegmentRequest",
});

const CSTR = [0x63, 0x73, 0x74, 0x72]; // "cstr"
const CEND = [0x63, 0x65, 0x6e, 0x64]; // "cend"
const DSTR = [0x64, 0x73, 0x74, 0x72]; // "dstr"
const DEND = [0x64, 0x65, 0x6e, 0x64]; // "dend"

/** Any ArrayBuffer / view / array of byte values -> Uint8Array (no copy when possible). */
export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  if (typeof data === "string") return new TextEncoder().encode(data); // text messages: UTF-8 (§2.5)
  throw new TypeError(`not binary data: ${Object.prototype.toString.call(data)}`);
}

export function hexToBytes(hex) {
  const s = hex.replace(/\s+/g, "");
  if (s.length % 2) throw new Error(`odd hex length: ${hex}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(toBytes(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

const startsWith = (b, m) => b.length >= 4 && m.every((x, i) => b[i] === x);
const endsWith = (b, m) => b.length >= 4 && m.every((x, i) => b[b.length - 4 + i] === x);

/** §3.1: a message is a command chunk iff it starts with cstr|dstr and ends with cend|dend. */
export function isCommandChunk(data) {
  const b = toBytes(data);
  return (startsWith(b, CSTR) || startsWith(b, DSTR)) && (endsWith(b, CEND) || endsWith(b, DEND));
}

/**
 * Joins the frames of one direction of one data channel into command bodies
 * (§3.2 receiver rules). push(message) returns:
 *   {kind: "data"}                          not a command chunk (segment payload)
 *   {kind: "partial"}                       a frame of a split command
 *   {kind: "command", body: Uint8Array}     a complete command body
 *   {kind: "error", error}                  joining error (that frame is lost)
 */
export class CommandJoiner {
  #parts = [];
  push(data) {
    const b = toBytes(data);
    if (!isCommandChunk(b)) return { kind: "data" };
    const first = startsWith(b, CSTR);
    if (!this.#parts.length && !first) return { kind: "error", error: new Error("no-first-chunk") };
    if (this.#parts.length && first) {
      this.#parts = [];
      return { kind: "error", error: new Error("incomplete-joining") };
    }
    this.#parts.push(b.subarray(4, b.length - 4));
    if (!endsWith(b, CEND)) return { kind: "partial" };
    const len = this.#parts.reduce((n, p) => n + p.length, 0);
    const body = new Uint8Array(len);
    let o = 0;
    for (const p of this.#parts) { body.set(p, o); o += p.length; }
    this.#parts = [];
    return { kind: "command", body };
  }
}

// The readers mirror the receiver (core/p2p/commands/binary-serialization.ts)
// also past the end of the buffer, where JavaScript reads `undefined`:
// a missing metadata byte reads as an empty Int (0), a missing group count
// as 0 groups, and a missing value byte after the first throws (BigInt of
// undefined). This only matters for broken input (§7.3 edge cases).
const at = (b, k) => (k < b.length ? b[k] : undefined);
const big = (v) => {
  if (v === undefined) throw new TypeError("Cannot convert undefined to a BigInt");
  return BigInt(v);
};

function readInt(b, o) {
  const meta = at(b, o);
  if (meta >> 4 !== 0) throw new Error("Trying to deserialize integer with invalid serialized item code");
  const len = meta & 0x0f;
  let n = 0n;
  for (let i = 0; i < len; i++) {
    const v = at(b, o + 1 + i);
    n = (n << 8n) | (i === 0 ? BigInt(v & 0x7f) : big(v));
  }
  if ((at(b, o + 1) & 0x80) >> 7 !== 0) n = -n;
  return { value: n, next: o + 1 + len };
}

function readSimilarIntArray(b, o) {
  if (at(b, o) >> 4 !== 1) throw new Error("Trying to deserialize similar int array with invalid serialized item code");
  const groups = at(b, o + 1);
  let p = o + 2;
  const out = [];
  for (let g = 0; g < groups; g++) {
    const { value, next } = readInt(b, p);
    p = next;
    const count = Number(value & 0xffn);
    const hi = value & ~0xffn;
    for (let j = 0; j < count; j++) out.push(Number(hi | big(at(b, p + j))));
    p += count;
  }
  return { value: out, next: p };
}

function readString(b, o) {
  const len = ((at(b, o) & 0x0f) << 8) | at(b, o + 1);
  const bytes = b.subarray(o + 2, o + 2 + len);
  return { value: new TextDecoder().decode(bytes), next: o + 2 + len };
}

/** Decodes one command body (without frames) into {c, name: value...}. Throws like the receiver. */
export function decodeBody(body) {
  const b = toBytes(body);
  if (!b.length) throw new Error("empty command");
  const cmd = { c: b[0] };
  let o = 1;
  while (o < b.length) {
    const name = String.fromCharCode(b[o++]);
    const type = at(b, o) >> 4;
    let r;
    if (type === 0) r = readInt(b, o), r.value = Number(r.value);
    else if (type === 1) r = readSimilarIntArray(b, o);
    else if (type === 2) r = readString(b, o);
    else throw new Error("Not existing type");
    cmd[name] = r.value;
    o = r.next;
  }
  return cmd;
}

/** Decodes a list of messages of one direction (frames joined in order); data messages are skipped. */
export function decodeMessages(messages) {
  const j = new CommandJoiner();
  const out = [];
  for (const m of messages) {
    const r = j.push(m);
    if (r.kind === "command") out.push(decodeBody(r.body));
    else if (r.kind === "error") throw r.error;
  }
  return out;
}

/** Human-readable name of a decoded command. */
export function commandName(cmd) {
  return COMMANDS[cmd.c] ?? `Unknown(${cmd.c})`;
}

// ---------------------------------------------------------------------------
// Encoder (spec §3.3), for round trips in the unit check.

function intBytes(n) {
  n = BigInt(n);
  const neg = n < 0n;
  const mag = neg ? -n : n;
  const bits = mag === 0n ? 0 : mag.toString(2).length;
  const len = Math.max(1, Math.ceil((bits + 1) / 8));
  const out = [len];
  for (let i = len - 1; i >= 0; i--) out.push(Number((mag >> BigInt(8 * i)) & 0xffn));
  if (neg) out[1] |= 0x80;
  return out;
}

function similarIntArrayBytes(arr) {
  const groups = new Map();
  for (const v of arr) {
    const n = BigInt(v);
    const hi = n & ~0xffn;
    if (!groups.has(hi)) groups.set(hi, []);
    groups.get(hi).push(Number(n & 0xffn));
  }
  const out = [0x10, groups.size & 0xff];
  for (const [hi, lows] of groups) out.push(...intBytes(hi | BigInt(lows.length & 0xff)), ...lows);
  return out;
}

/**
 * Encodes a command {c, ...fields} into its messages. Field order: for c=0
 * l then p (each only when non-empty); otherwise i, then s (c=2), then r,
 * then b (c=1, only when > 0), as the client writes them.
 */
export function encodeCommand(cmd, maxMessageSize = 65535) {
  const body = [cmd.c];
  const add = (name, bytes) => body.push(name.charCodeAt(0), ...bytes);
  if (cmd.c === 0) {
    if (cmd.l?.length) add("l", similarIntArrayBytes(cmd.l));
    if (cmd.p?.length) add("p", similarIntArrayBytes(cmd.p));
  } else {
    if (cmd.i !== undefined) add("i", intBytes(cmd.i));
    if (cmd.c === 2 && cmd.s !== undefined) add("s", intBytes(cmd.s));
    if (cmd.r !== undefined) add("r", intBytes(cmd.r));
    if (cmd.c === 1 && cmd.b > 0) add("b", intBytes(cmd.b));
  }
  const frame = (start, part, end) => Uint8Array.from([...start, ...part, ...end]);
  if (body.length + 8 <= maxMessageSize) return [frame(CSTR, body, CEND)];
  let n = Math.ceil(body.length / maxMessageSize);
  if (Math.ceil(body.length / n) + 8 > maxMessageSize) n++;
  const size = Math.ceil(body.length / n);
  const out = [];
  for (let i = 0; i < n; i++) {
    const part = body.slice(i * size, (i + 1) * size);
    out.push(frame(i === 0 ? CSTR : DSTR, part, i === n - 1 ? CEND : DEND));
  }
  return out;
}

/** The §7.3 vectors of the spec: [description, command, [hex messages], maxMessageSize?]. */
export const SPEC_VECTORS = [
  ["Announcement, empty", { c: 0 }, ["637374720063656e64"]],
  ["Announcement l=[0,1,2]", { c: 0, l: [0, 1, 2] }, ["63737472 00 6c 10 01 0103 000102 63656e64"]],
  ["Announcement l=[1000,1001,1002,1256] p=[1003]", { c: 0, l: [1000, 1001, 1002, 1256], p: [1003] },
    ["63737472 00 6c 1002 020303 e8e9ea 020401 e8 70 1001 020301 eb 63656e64"]],
  ["Request i=1001 r=978", { c: 1, i: 1001, r: 978 }, ["63737472 01 69 0203e9 72 0203d2 63656e64"]],
  ["Request i=5 r=7 b=65535", { c: 1, i: 5, r: 7, b: 65535 }, ["63737472 01 69 0105 72 0107 62 0300ffff 63656e64"]],
  ["SegmentData i=1001 s=3000 r=978", { c: 2, i: 1001, s: 3000, r: 978 }, ["63737472 02 69 0203e9 73 020bb8 72 0203d2 63656e64"]],
  ["Completed i=1001 r=978", { c: 3, i: 1001, r: 978 }, ["63737472 03 69 0203e9 72 0203d2 63656e64"]],
  ["Absent i=1001 r=978", { c: 4, i: 1001, r: 978 }, ["63737472 04 69 0203e9 72 0203d2 63656e64"]],
  ["Cancel i=1001 r=978", { c: 5, i: 1001, r: 978 }, ["63737472 05 69 0203e9 72 0203d2 63656e64"]],
  ["Request i=1001 r=978 b=100000 split at 12", { c: 1, i: 1001, r: 978, b: 100000 },
    ["6373747201690203e964656e64", "64737472720203d26264656e64", "64737472030186a063656e64"], 12],
  // §7.4 transcript
  ["A→B l=[1000,1001,1002]", { c: 0, l: [1000, 1001, 1002] }, ["63737472006c1001020303e8e9ea63656e64"]],
  ["SegmentData i=1002 s=150000 r=925", { c: 2, i: 1002, s: 150000, r: 925 }, ["6373747202690203ea73030249f07202039d63656e64"]],
];
