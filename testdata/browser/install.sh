#!/usr/bin/env bash
# install.sh: installs what the browser tests need. Idempotent: a second run
# changes nothing and takes a second.
#
#   - Chromium from Debian (apt-get install chromium), if /usr/bin/chromium
#     (or $CHROMIUM_BIN) is missing. playwright-core never downloads a browser.
#   - node_modules from package-lock.json with `npm ci --ignore-scripts`,
#     unless node_modules already matches the lock file.
#     --ignore-scripts: no install script is needed. node-datachannel ships
#     its binary in the prebuilt @node-datachannel/linux-x64-gnu package (its
#     own install script would try a GitHub download, then cmake);
#     bufferutil/utf-8-validate ship prebuilds too.
#   - Checks that node-datachannel loads (falls back to `npm rebuild
#     node-datachannel` once if it does not).
set -euo pipefail
cd "$(dirname "$0")"

log() { echo "[browser/install.sh] $*" >&2; }

# --- Node ---
if ! command -v node >/dev/null; then
  log "node is missing (need Node >= 20)"; exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  log "Node $(node --version) is too old (need >= 20)"; exit 1
fi

# --- Chromium ---
chromium=${CHROMIUM_BIN:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "Chromium not found at $chromium; install it (Debian: apt-get install -y chromium) or set CHROMIUM_BIN"; exit 1
  fi
  log "installing chromium from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends chromium >/dev/null
  }
fi

# --- npm packages ---
# npm writes node_modules/.package-lock.json on install; when it lists the
# versions of package-lock.json (optional packages for other platforms
# absent), node_modules is current.
lock_matches() {
  [ -f node_modules/.package-lock.json ] && node -e '
    const fs = require("fs");
    const read = (f) => JSON.parse(fs.readFileSync(f, "utf8")).packages || {};
    const lock = read("package-lock.json"), have = read("node_modules/.package-lock.json");
    const ok = Object.entries(lock).every(([k, v]) => !k || (have[k] ? have[k].version === v.version : v.optional))
      && Object.keys(have).every((k) => k in lock);
    process.exit(ok ? 0 : 1);'
}
if ! lock_matches; then
  log "npm ci --ignore-scripts"
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi

# --- node-datachannel ---
check_nd() {
  node --input-type=module -e '
    const { default: nd } = await import("node-datachannel");
    const pc = new nd.PeerConnection("check", { iceServers: [] });
    pc.close();
    nd.cleanup();' 2>/dev/null
}
if ! check_nd; then
  log "node-datachannel does not load; npm rebuild node-datachannel"
  npm rebuild node-datachannel >/dev/null
  check_nd || { log "node-datachannel still does not load"; exit 1; }
fi
log "ok: node $(node --version), $chromium, node_modules current"
