// btt-server.mjs starts the reference npm bittorrent-tracker server as a
// WebSocket-only tracker, for tracker/trackerbench to measure it under the
// same load as the Go tracker.
//
// Usage: node btt-server.mjs [--port N] [--host 127.0.0.1]
//
// It prints "listening <port>" on stdout once the socket accepts
// connections. It exits on SIGTERM or SIGINT, and when its standard input
// is closed (so it does not outlive the benchmark that started it).
// Import the server entry point only: the package root also loads the
// client, which needs node-datachannel's native module (not built, since
// the install runs with --ignore-scripts).
import Server from 'bittorrent-tracker/server'

function arg (name, def) {
  const i = process.argv.indexOf(name)
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def
}

const port = Number(arg('--port', '0'))
const host = arg('--host', '127.0.0.1')

const server = new Server({
  udp: false,
  http: false,
  ws: true,
  stats: false,
  trustProxy: false
})

let warnings = 0
server.on('error', err => {
  console.error('btt-server: error:', err && err.message ? err.message : err)
})
server.on('warning', err => {
  // Warnings are client errors (bad requests, unknown to_peer_id); count
  // them instead of logging each one, which would cost CPU under load.
  warnings++
})

server.on('listening', () => {
  process.stdout.write(`listening ${server.ws.address().port}\n`)
})

server.listen(port, host)

function shutdown () {
  console.error(`btt-server: exiting (${warnings} warnings)`)
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
process.stdin.on('end', shutdown)
process.stdin.on('error', shutdown)
process.stdin.resume()
