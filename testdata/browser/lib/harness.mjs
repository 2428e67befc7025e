// Browser / WebRTC test harness for caddy-p2p.
//
// Node 20, ESM, no dependencies beyond playwright-core. Used by the tests in
// ../test/ and meant to be reused (seeder, shaka, dashboards). Typical use:
//
//   import { test, after } from "node:test";
//   import * as h from "../lib/harness.mjs";
//
//   await h.enterNetns();               // re-executes this file inside a private netns
//   after(h.cleanup);                   // kill caddy, chromium and node peers
//
//   test("...", async () => {
//     const caddy = await h.startCaddy({ caddyfile: "browser-tracker.Caddyfile" });
//     const browser = await h.launchBrowser();
//     const a = await h.openPlayer(browser, h.playerURL(caddy, { manifest: "/media/demo/master.m3u8" }), { name: "A" });
//     await a.waitFor((s) => s.currentTime > 5, { timeout: 60_000, what: "A plays 5 s" });
//   });
//
// Environment:
//   CADDYP2P_NETNS=1   set by run-in-netns.sh inside the namespace
//   CADDY_BIN          Caddy binary to use; when unset buildCaddy() builds bin/caddy
//   CHROMIUM_BIN       default /usr/bin/chromium
//   CADDYP2P_KEEP_LOGS=1  keep the temp dirs (Caddyfile, logs) after the run
//
// Everything is addressed on loopback or on the veth pair 10.201.0.1/10.201.0.2
// that run-in-netns.sh creates; nothing here ever talks to another address.

import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** testdata/browser */
export const BROWSER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** the repository root (go.mod) */
export const REPO_ROOT = path.resolve(BROWSER_DIR, "../..");
/** testdata/caddyfiles */
export const CADDYFILES_DIR = path.join(REPO_ROOT, "testdata", "caddyfiles");
/** Address of v0 inside the test namespace: pages are loaded from here. */
export const VETH_HOST = "10.201.0.1";
/** Address of v1 (the other end of the veth pair). */
export const VETH_PEER = "10.201.0.2";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  // Host candidates with real IPs (10.201.0.x), not .local mDNS names that
  // nothing in the namespace could resolve.
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

// ---------------------------------------------------------------------------
// Logging

const t0 = Date.now();
/** Progress line on stderr (shown by node --test as the test's output). */
export function log(...args) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  console.error(`[harness ${s}s]`, ...args);
}

// ---------------------------------------------------------------------------
// Network namespace

/** True when running inside the namespace made by run-in-netns.sh. */
export function inNetns() {
  if (process.env.CADDYP2P_NETNS !== "1") return false;
  const v0 = os.networkInterfaces().v0 || [];
  return v0.some((a) => a.family === "IPv4" && a.address === VETH_HOST);
}

/**
 * Makes sure this process runs inside a private network namespace.
 *
 * Already inside (CADDYP2P_NETNS=1 and v0 = 10.201.0.1): returns at once.
 * Otherwise re-executes the current Node command line through
 * run-in-netns.sh (same argv, execArgv, env and stdio; this also works for a
 * `node --test` child, whose reports go to the inherited stdout) and exits
 * with its status: the promise never resolves in the outer process.
 *
 * Call it with top-level await before starting anything.
 */
export async function enterNetns() {
  if (inNetns()) return;
  const wrapper = path.join(BROWSER_DIR, "run-in-netns.sh");
  const child = spawn(wrapper, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: process.env,
  });
  const forward = (sig) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const [code, signal] = await once(child, "exit");
  process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] || 1) : 1));
  await new Promise(() => {}); // not reached
}

// ---------------------------------------------------------------------------
// Child process tracking and cleanup

const children = new Set(); // {name, proc}
const browsers = new Set();
const cleanups = new Set(); // async () => void, run by cleanup()
let spawnSeq = 0;

function killGroup(proc, sig) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(-proc.pid, sig); // its own process group (detached: true)
  } catch {
    try { proc.kill(sig); } catch { /* gone */ }
  }
}

/**
 * spawn() with tracking: the child gets its own process group, and cleanup()
 * (or the exit of this process, or SIGINT/SIGTERM) kills that whole group.
 * Use it for every helper process (Node peers, seeders...).
 *
 * opts: any spawn() option except stdio, plus
 *   name     label for logs (default: basename of cmd)
 *   logFile  path: stdout+stderr are appended there (default: a file in the temp dir)
 *   ipc      true: open a Node IPC channel (proc.send / proc.on("message")),
 *            for `node script.mjs` children
 * Returns {proc, name, logFile, logs(), stop(timeoutMs)}.
 */
export function spawnTracked(cmd, args = [], opts = {}) {
  const { name = path.basename(cmd), logFile = path.join(tempDir(), `${sanitize(name)}-${++spawnSeq}.log`), ipc = false, ...spawnOpts } = opts;
  const fd = fs.openSync(logFile, "a");
  const stdio = ipc ? ["ignore", fd, fd, "ipc"] : ["ignore", fd, fd];
  const proc = spawn(cmd, args, { ...spawnOpts, stdio, detached: true });
  fs.closeSync(fd);
  const entry = { name, proc };
  children.add(entry);
  proc.on("exit", () => children.delete(entry));
  const stop = async (timeoutMs = 5000) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, "exit");
    killGroup(proc, "SIGTERM");
    const t = setTimeout(() => killGroup(proc, "SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(t);
    try { process.kill(-proc.pid, "SIGKILL"); } catch { /* group empty */ } // leftovers in the group
  };
  return { proc, name, logFile, logs: () => readFileSafe(logFile), stop };
}

/** Registers an async function run by cleanup() (e.g. to stop a Node peer). */
export function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/**
 * Stops everything this module started: closes browsers (and their
 * contexts), runs onCleanup() functions, SIGTERMs then SIGKILLs every tracked
 * process group. Idempotent; pass it to node:test's after(). The temp dir
 * with the logs is handled at process exit (see tempDir()).
 */
export async function cleanup() {
  const pending = [];
  for (const b of [...browsers]) {
    browsers.delete(b);
    pending.push(withTimeout(b.close(), 10_000, "browser.close()").catch(() => {}));
  }
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    pending.push(Promise.resolve().then(fn).catch((e) => log("cleanup:", e?.message || e)));
  }
  await Promise.all(pending);
  await Promise.all([...children].map(async ({ proc }) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, "exit");
    killGroup(proc, "SIGTERM");
    let timer;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 5000); })]);
    clearTimeout(timer);
    try { process.kill(-proc.pid, "SIGKILL"); } catch { /* group empty */ }
  }));
  children.clear();
}

function killAllSync() {
  for (const { proc } of children) killGroup(proc, "SIGKILL");
}

// At exit: kill what is left (playwright kills its own browsers), then remove
// the temp dir if the process succeeded, else say where the logs are.
process.on("exit", (code) => {
  killAllSync();
  if (!runDir) return;
  if (code === 0 && !process.exitCode && process.env.CADDYP2P_KEEP_LOGS !== "1") {
    fs.rmSync(runDir, { recursive: true, force: true });
  } else {
    console.error(`[harness] logs kept in ${runDir}`);
  }
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    withTimeout(cleanup(), 15_000, "cleanup").catch(() => {}).finally(() => {
      killAllSync();
      process.exit(128 + os.constants.signals[sig]);
    });
  });
}

// ---------------------------------------------------------------------------
// Small utilities

function sanitize(s) {
  return String(s).replace(/[^A-Za-z0-9_.-]+/g, "_");
}

function readFileSafe(f) {
  try { return fs.readFileSync(f, "utf8"); } catch { return ""; }
}

let runDir;
/**
 * A temp dir for this process (Caddyfiles, logs). Removed when the process
 * exits with status 0 (unless CADDYP2P_KEEP_LOGS=1); kept, and its path
 * printed, when it fails.
 */
export function tempDir() {
  if (!runDir) runDir = fs.mkdtempSync(path.join(os.tmpdir(), "caddyp2p-browser-"));
  return runDir;
}

/** Last n lines of a string. */
export function tail(s, n = 40) {
  return s.split("\n").slice(-n - 1).join("\n");
}

export async function withTimeout(promise, ms, what = "operation") {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls fn() (sync or async) until it returns a truthy value, and returns
 * that value. Throws after `timeout` ms with `what` and, if given,
 * describe() (called for the error message: e.g. a state dump).
 */
export async function waitFor(fn, { timeout = 30_000, interval = 250, what = "condition", describe } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e?.fatal) throw e;
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      let detail = lastErr ? `; last error: ${lastErr.message}` : "";
      if (describe) {
        try { detail += `\n${await describe()}`; } catch (e) { detail += `\n(describe failed: ${e.message})`; }
      }
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
    }
    await sleep(interval);
  }
}

/** A free TCP port on all interfaces (bound then released). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, "0.0.0.0");
  await once(srv, "listening");
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Resolves once host:port accepts TCP connections. */
export async function waitForPort(port, host = "127.0.0.1", { timeout = 20_000, proc } = {}) {
  return waitFor(async () => {
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) {
      throw Object.assign(new Error(`process exited (${proc.exitCode ?? proc.signalCode})`), { fatal: true });
    }
    return new Promise((resolve) => {
      const s = net.connect({ port, host });
      s.once("connect", () => { s.destroy(); resolve(true); });
      s.once("error", () => resolve(false));
    });
  }, { timeout, interval: 100, what: `${host}:${port} to accept connections` });
}

// ---------------------------------------------------------------------------
// Caddy

let builtCaddy;
/**
 * Returns the path of the Caddy binary: $CADDY_BIN if set, else builds
 * `go build -o bin/caddy ./xcaddy/caddy` in the repo root, once per test run
 * (each file of a `node --test` run is its own process: a marker in the temp
 * dir, keyed by the runner's pid and start time, skips the rebuild in the
 * later files).
 * Inside the netns Go cannot reach the module proxy, so it runs with
 * GOPROXY=off and GOFLAGS=-mod=readonly: a missing module fails fast. Run
 * `go mod download` outside first (testdata/test.sh does).
 */
export function buildCaddy() {
  if (process.env.CADDY_BIN) return path.resolve(REPO_ROOT, process.env.CADDY_BIN);
  if (builtCaddy) return builtCaddy;
  const out = path.join(REPO_ROOT, "bin", "caddy");
  const marker = path.join(os.tmpdir(), `caddyp2p-caddy-built-${runnerKey()}`);
  if (fs.existsSync(marker) && fs.existsSync(out)) {
    builtCaddy = out;
    return out;
  }
  log("building", out);
  const env = { ...process.env };
  if (inNetns()) Object.assign(env, { GOPROXY: "off", GOFLAGS: "-mod=readonly" });
  const r = spawnSync("go", ["build", "-o", out, "./xcaddy/caddy"], { cwd: REPO_ROOT, env, encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`go build ./xcaddy/caddy failed (${r.status ?? r.signal ?? r.error}):\n${r.stdout}${r.stderr}`);
  }
  if (process.env.NODE_TEST_CONTEXT) {
    for (const f of fs.readdirSync(os.tmpdir())) { // markers of earlier runs
      if (!f.startsWith("caddyp2p-caddy-built-")) continue;
      const p = path.join(os.tmpdir(), f);
      try { if (Date.now() - fs.statSync(p).mtimeMs > 3600_000) fs.rmSync(p); } catch { /* raced */ }
    }
    fs.writeFileSync(marker, out);
  }
  builtCaddy = out;
  return out;
}

// Identifies the `node --test` runner this file runs under: parent pid plus
// its start time (pids repeat across runs, especially in a PID namespace).
function runnerKey() {
  if (!process.env.NODE_TEST_CONTEXT) return `solo-${process.pid}-${Date.now()}`;
  let start = "0";
  try {
    const stat = fs.readFileSync(`/proc/${process.ppid}/stat`, "utf8");
    start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]; // field 22: starttime
  } catch { /* no /proc */ }
  let boot = "";
  try { boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(); } catch { /* ignore */ }
  return `${boot.slice(0, 8)}-${process.ppid}-${start}`;
}

/**
 * Starts `caddy run` with a Caddyfile.
 *
 * opts:
 *   caddyfile  a template name in testdata/caddyfiles/ (e.g.
 *              "browser-tracker.Caddyfile"), a path, or the Caddyfile text
 *              itself (contains a newline)
 *   port       site port, {$HTTP_PORT} (default: a free port)
 *   adminPort  admin API port, {$ADMIN_PORT} (default: a free port)
 *   env        more environment variables for {$VAR} placeholders
 *   name       label for the log file (default "caddy")
 *   timeout    ms to wait for the port (default 20000)
 *
 * Caddy runs with cwd = repo root (so testdata/... roots work), its own
 * process group, and XDG dirs inside the temp dir. stdout+stderr go to a log
 * file; if Caddy fails to start, the error includes the log's tail.
 *
 * Returns {port, adminPort, url, localURL, adminURL, logFile, logs(), stop(), proc}.
 * url uses the veth address (10.201.0.1) when inside the netns, so WebRTC
 * host candidates are 10.201.0.x; localURL is always http://127.0.0.1:port.
 */
export async function startCaddy(opts = {}) {
  const bin = buildCaddy();
  const name = opts.name || "caddy";
  const dir = fs.mkdtempSync(path.join(tempDir(), `${sanitize(name)}-`));
  const port = opts.port || (await freePort());
  const adminPort = opts.adminPort || (await freePort());

  let text = opts.caddyfile || "browser-tracker.Caddyfile";
  if (!text.includes("\n")) {
    const p = fs.existsSync(path.join(CADDYFILES_DIR, text)) ? path.join(CADDYFILES_DIR, text) : path.resolve(REPO_ROOT, text);
    text = fs.readFileSync(p, "utf8");
  }
  const config = path.join(dir, "Caddyfile");
  fs.writeFileSync(config, text);

  const logFile = path.join(dir, "caddy.log");
  const env = {
    ...process.env,
    HTTP_PORT: String(port),
    ADMIN_PORT: String(adminPort),
    XDG_DATA_HOME: path.join(dir, "data"),
    XDG_CONFIG_HOME: path.join(dir, "config"),
    ...(opts.env || {}),
  };
  const child = spawnTracked(bin, ["run", "--config", config, "--adapter", "caddyfile"], {
    name, logFile, cwd: REPO_ROOT, env,
  });
  try {
    await waitForPort(port, "127.0.0.1", { timeout: opts.timeout || 20_000, proc: child.proc });
  } catch (e) {
    await child.stop();
    throw new Error(`caddy did not start (${e.message}); log ${logFile}:\n${tail(child.logs())}`);
  }
  const host = inNetns() ? VETH_HOST : "127.0.0.1";
  log(`caddy up on :${port} (admin :${adminPort}), log ${logFile}`);
  return {
    port,
    adminPort,
    url: `http://${host}:${port}`,
    localURL: `http://127.0.0.1:${port}`,
    adminURL: `http://127.0.0.1:${adminPort}`,
    trackerURL: `ws://127.0.0.1:${port}/announce`,
    config,
    logFile,
    logs: child.logs,
    stop: child.stop,
    proc: child.proc,
  };
}

/**
 * URL of the p2p_player page on a started Caddy.
 *   params.manifest  playlist URL (relative to the page is fine)
 *   params.core      object, sent as ?core=<json> (merged into the P2PML core config)
 *   params.hls       object, sent as ?hls=<json>
 *   params.stun      default "0": rtcConfig {iceServers: []}, host candidates only
 *                    (there is no STUN server reachable from the namespace)
 *   any other key    passed through as a query parameter (tracker, swarm...)
 */
export function playerURL(caddy, params = {}, pagePath = "/") {
  const u = new URL(pagePath, caddy.url);
  const p = { stun: "0", ...params };
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === null) continue;
    u.searchParams.set(k, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  return u.href;
}

// ---------------------------------------------------------------------------
// Browser

/**
 * Launches Chromium (apt's /usr/bin/chromium or $CHROMIUM_BIN) through
 * playwright-core with the flags in CHROMIUM_ARGS (+ opts.args). The browser
 * is closed by cleanup(); playwright also kills it if this process exits.
 */
export async function launchBrowser(opts = {}) {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
    args: [...CHROMIUM_ARGS, ...(opts.args || [])],
    timeout: 30_000,
    ...(opts.launch || {}),
  });
  browsers.add(browser);
  browser.on("disconnected", () => browsers.delete(browser));
  return browser;
}

/**
 * Opens the player page in a NEW browser context (own HTTP cache, storage and
 * WebRTC state) and navigates to url.
 *
 * Returns a handle:
 *   page, context, name
 *   state()            -> window.caddyP2P (a JSON copy; shape in caddymodule/web/player.html)
 *   waitFor(pred, {timeout, interval, what})
 *                      polls state() until pred(state) is truthy; on timeout the
 *                      error includes a summary and the page log
 *   ownPeerIds()       -> [peer_id] this page announced to the tracker (read from
 *                      the page's own WebSocket frames: one per swarm it joined)
 *   announces          [{info_hash, peer_id, event, t}] sent by the page
 *   log                [string]: console errors/warnings, page errors, failed requests
 *   summary(state?)    one-line text summary (bytes, shares, peers, errors)
 *   close()
 */
export async function openPlayer(browser, url, { name = "page", timeout = 30_000 } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const start = Date.now();
  const ts = () => `+${((Date.now() - start) / 1000).toFixed(1)}s`;
  const pageLog = [];
  const announces = [];

  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") pageLog.push(`${ts()} console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => pageLog.push(`${ts()} pageerror: ${e.message}`));
  page.on("requestfailed", (r) => pageLog.push(`${ts()} requestfailed: ${r.url()} ${r.failure()?.errorText || ""}`));
  page.on("crash", () => pageLog.push(`${ts()} page crashed`));
  page.on("websocket", (ws) => {
    ws.on("framesent", ({ payload }) => {
      if (typeof payload !== "string") return;
      try {
        const m = JSON.parse(payload);
        if (m.action === "announce" && m.peer_id && !m.answer) {
          announces.push({ info_hash: m.info_hash, peer_id: m.peer_id, event: m.event, t: Date.now() - start });
        }
      } catch { /* not JSON */ }
    });
    ws.on("socketerror", (e) => pageLog.push(`${ts()} websocket ${ws.url()}: ${e}`));
  });

  await page.goto(url, { timeout, waitUntil: "load" });

  const handle = {
    name,
    page,
    context,
    url,
    log: pageLog,
    announces,
    async state() {
      return page.evaluate(() => (window.caddyP2P ? JSON.parse(JSON.stringify(window.caddyP2P)) : null));
    },
    ownPeerIds() {
      return [...new Set(announces.map((a) => a.peer_id))];
    },
    summary(s) {
      return summarize(name, s);
    },
    async waitFor(pred, { timeout: to = 60_000, interval = 500, what = "condition" } = {}) {
      let last = null;
      return waitFor(async () => {
        last = await handle.state();
        return last && pred(last) ? last : null;
      }, {
        timeout: to,
        interval,
        what: `${name}: ${what}`,
        describe: () => `${summarize(name, last)}\npage log:\n${pageLog.slice(-30).join("\n") || "(empty)"}`,
      });
    },
    async close() {
      await context.close().catch(() => {});
    },
  };
  return handle;
}

/** P2P statistics of one page state (window.caddyP2P). */
export function p2pStats(s) {
  const segs = s?.segments || [];
  const p2pSegs = segs.filter((x) => x.source === "p2p");
  const segBytes = segs.reduce((n, x) => n + x.bytes, 0);
  const p2pSegBytes = p2pSegs.reduce((n, x) => n + x.bytes, 0);
  const chunkTotal = (s?.chunkBytes?.http || 0) + (s?.chunkBytes?.p2p || 0);
  return {
    segments: segs.length,
    p2pSegments: p2pSegs.length,
    segmentBytes: segBytes,
    p2pSegmentBytes: p2pSegBytes,
    /** share of segment bytes (onSegmentLoaded) that came over P2P */
    p2pShare: segBytes ? p2pSegBytes / segBytes : 0,
    /** share of chunk bytes (onChunkDownloaded) that came over P2P */
    chunkP2PShare: chunkTotal ? (s.chunkBytes.p2p || 0) / chunkTotal : 0,
    /** remote peer ids that delivered whole segments */
    sourcePeers: [...new Set(p2pSegs.map((x) => x.peerId).filter(Boolean))],
    connectedPeers: [...new Set((s?.peerEvents || []).filter((e) => e.type === "connect").map((e) => e.peerId))],
  };
}

function summarize(name, s) {
  if (!s) return `${name}: no window.caddyP2P yet`;
  const st = p2pStats(s);
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  return `${name}: ready=${s.ready} playing=${s.playing} t=${(s.currentTime || 0).toFixed(1)}s ` +
    `segments=${st.segments} (p2p ${st.p2pSegments}) bytes=${st.segmentBytes} p2pShare=${pct(st.p2pShare)} ` +
    `chunkP2P=${pct(st.chunkP2PShare)} peers=${JSON.stringify(s.peers)} sourcePeers=${JSON.stringify(st.sourcePeers)} ` +
    `errors=${JSON.stringify((s.errors || []).slice(-5))}`;
}
