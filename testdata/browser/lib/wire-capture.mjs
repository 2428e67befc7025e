// In-page capture of what a P2P Media Loader page puts on the wire, for
// test/identity.test.mjs. instrumentBrowser(browser) makes every new context
// of that browser (so every harness openPlayer() page) run captureInit()
// before any page script. It records, in page order, into
// window.__idcheck.log:
//
//   {k:"pc", pc, t}                          RTCPeerConnection created
//   {k:"sdp", pc, side:"local"|"remote", type, ufrag, t}
//                                            descriptions set on it (ICE ufrag only)
//   {k:"dc", pc, ch, label, t}               data channel created or received
//   {k:"out"|"in", ch, hex, t}               a command chunk sent / received on it
//                                            ("cstr"/"dstr" ... "cend"/"dend", §3.1);
//                                            payload chunks are only counted in
//                                            __idcheck.dataBytes[ch] = {out, in}
//   {k:"ws", action, info_hash, peer_id, event, offers:[ufrag], answer: ufrag, to_peer_id, t}
//                                            a tracker message the page sent (JSON text frame)
//   {k:"start", source, peerId, seg:{externalId, url, byteRange, startTime}, t}
//                                            the core's onSegmentStart (the client's own
//                                            Segment: its url <-> externalId mapping)
//   {k:"loaded", url, source, peerId, streamType, bytes, t}
//                                            the core's onSegmentLoaded
//
// The segment events need the P2P engine: the hls.js player page
// (caddymodule/web/player.html) assigns window.caddyP2PHls = hls, which a
// setter installed here catches (hls.p2pEngine); pages/shaka.html calls
// window.__idcheck.attach(engine) itself.
//
// Tracker frames are also visible to the harness (page.on("websocket"));
// the in-page copy exists because it carries the SDP ufrags that tie a data
// channel to the info_hash of the swarm it was negotiated in.

/** Runs in the page (serialised by Playwright): must be self-contained. */
export function captureInit() {
  if (window.__idcheck) return;
  const log = [];
  const now = () => Math.round(performance.now() * 10) / 10;
  const ufragOf = (sdp) => (typeof sdp === "string" && (sdp.match(/a=ice-ufrag:(\S+)/) || [])[1]) || null;
  const dataBytes = {};
  const idc = { log, dataBytes, attached: 0 };
  window.__idcheck = idc;

  const hex = (u8) => {
    let s = "";
    for (let i = 0; i < u8.length; i++) s += (u8[i] < 16 ? "0" : "") + u8[i].toString(16);
    return s;
  };
  const bytesOf = (d) => {
    if (d instanceof ArrayBuffer) return new Uint8Array(d);
    if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    if (typeof d === "string") return new TextEncoder().encode(d);
    return null; // Blob: not used by P2PML (binaryType arraybuffer)
  };
  const isCmd = (b) => {
    if (!b || b.length < 8) return false;
    const s = String.fromCharCode(b[0], b[1], b[2], b[3]);
    const e = String.fromCharCode(b[b.length - 4], b[b.length - 3], b[b.length - 2], b[b.length - 1]);
    return (s === "cstr" || s === "dstr") && (e === "cend" || e === "dend");
  };

  // ---- RTCPeerConnection / RTCDataChannel ----
  const pcIds = new WeakMap();
  const chIds = new WeakMap();
  let pcSeq = 0;
  let chSeq = 0;
  const record = (ch, dir, data) => {
    const id = chIds.get(ch);
    if (id === undefined) return;
    const b = bytesOf(data);
    if (isCmd(b)) log.push({ k: dir, ch: id, hex: hex(b), t: now() });
    else if (b) {
      const d = dataBytes[id] || (dataBytes[id] = { out: 0, in: 0 });
      d[dir] += b.length;
    }
  };
  const track = (pc, ch) => {
    if (chIds.has(ch)) return;
    const id = ++chSeq;
    chIds.set(ch, id);
    log.push({ k: "dc", pc: pcIds.get(pc), ch: id, label: ch.label, t: now() });
    ch.addEventListener("message", (e) => record(ch, "in", e.data));
  };

  const OrigPC = window.RTCPeerConnection;
  if (OrigPC) {
    const PC = class RTCPeerConnection extends OrigPC {
      constructor(...args) {
        super(...args);
        const id = ++pcSeq;
        pcIds.set(this, id);
        log.push({ k: "pc", pc: id, t: now() });
        this.addEventListener("datachannel", (e) => track(this, e.channel));
      }
      createDataChannel(...args) {
        const ch = super.createDataChannel(...args);
        track(this, ch);
        return ch;
      }
      async setLocalDescription(...args) {
        const r = await super.setLocalDescription(...args);
        const d = this.localDescription;
        log.push({ k: "sdp", pc: pcIds.get(this), side: "local", type: d?.type, ufrag: ufragOf(d?.sdp), t: now() });
        return r;
      }
      async setRemoteDescription(desc, ...rest) {
        log.push({ k: "sdp", pc: pcIds.get(this), side: "remote", type: desc?.type, ufrag: ufragOf(desc?.sdp), t: now() });
        return super.setRemoteDescription(desc, ...rest);
      }
    };
    window.RTCPeerConnection = PC;
    if (window.webkitRTCPeerConnection) window.webkitRTCPeerConnection = PC;
  }
  if (window.RTCDataChannel) {
    const origSend = window.RTCDataChannel.prototype.send;
    window.RTCDataChannel.prototype.send = function send(data) {
      const r = origSend.call(this, data); // throws first if the channel is not open
      record(this, "out", data);
      return r;
    };
  }

  // ---- tracker WebSocket (text frames the page sends) ----
  const origWsSend = window.WebSocket.prototype.send;
  window.WebSocket.prototype.send = function send(data) {
    if (typeof data === "string") {
      try {
        const m = JSON.parse(data);
        if (m && m.action === "announce") {
          log.push({
            k: "ws",
            action: m.action,
            info_hash: m.info_hash,
            peer_id: m.peer_id,
            to_peer_id: m.to_peer_id,
            event: m.event,
            offers: Array.isArray(m.offers) ? m.offers.map((o) => ufragOf(o?.offer?.sdp)) : [],
            answer: m.answer ? ufragOf(m.answer.sdp) : null,
            t: now(),
          });
        }
      } catch { /* not JSON */ }
    }
    return origWsSend.call(this, data);
  };

  // ---- P2P Media Loader engine events ----
  idc.attach = (engine) => {
    if (!engine || engine.__idcheckAttached) return;
    engine.__idcheckAttached = true;
    idc.attached++;
    engine.addEventListener("onSegmentStart", ({ segment, downloadSource, peerId }) => {
      log.push({
        k: "start",
        source: downloadSource,
        peerId: peerId ?? null,
        seg: {
          externalId: segment.externalId,
          url: segment.url,
          byteRange: segment.byteRange ? { start: segment.byteRange.start, end: segment.byteRange.end } : null,
          startTime: segment.startTime,
        },
        t: now(),
      });
    });
    engine.addEventListener("onSegmentLoaded", (d) => {
      log.push({ k: "loaded", url: d.segmentUrl, source: d.downloadSource, peerId: d.peerId ?? null, streamType: d.streamType, bytes: d.bytesLength, t: now() });
    });
  };
  let hls;
  Object.defineProperty(window, "caddyP2PHls", {
    configurable: true,
    enumerable: true,
    get: () => hls,
    set: (v) => {
      hls = v;
      try { idc.attach(v && v.p2pEngine); } catch (e) { idc.attachError = String(e); }
    },
  });
}

/** Media segment URLs (for the request log): .ts, .m4s, .mp4, .m4a, .m4v, .aac, .cmf? */
export const SEGMENT_URL = /\.(ts|m4s|mp4|m4a|m4v|aac|cmf[va])(\?|$)/i;

/**
 * Makes every context later created with browser.newContext() (which the
 * harness's openPlayer() uses) run captureInit() in each page first, and
 * record every HTTP request for a media segment (SEGMENT_URL) in
 * context.__segmentRequests = [{url, range, t}] (range: the Range header,
 * or null): whether or not P2P Media Loader handled it.
 */
export function instrumentBrowser(browser) {
  if (browser.__idcheckInstrumented) return browser;
  const orig = browser.newContext.bind(browser);
  browser.newContext = async (...args) => {
    const ctx = await orig(...args);
    await ctx.addInitScript(captureInit);
    const reqs = [];
    ctx.__segmentRequests = reqs;
    const t0 = Date.now();
    ctx.on("request", (r) => {
      if (!SEGMENT_URL.test(r.url())) return;
      const hdr = r.headers();
      reqs.push({ url: r.url(), range: hdr.range || hdr.Range || null, t: Date.now() - t0 });
    });
    return ctx;
  };
  browser.__idcheckInstrumented = true;
  return browser;
}

/** The capture of a page opened with openPlayer() (a JSON copy), with its segment requests. */
export async function readCapture(player) {
  const c = await player.page.evaluate(() => {
    const c = window.__idcheck;
    return c ? { log: c.log.slice(), dataBytes: { ...c.dataBytes }, attached: c.attached, attachError: c.attachError || null } : null;
  });
  if (c) c.segmentRequests = [...(player.context.__segmentRequests || [])];
  return c;
}
