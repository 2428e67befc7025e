// Child process: one bittorrent-tracker Client (WebSocket tracker,
// simple-peer on node-datachannel), driven by its parent over the Node IPC
// channel. Start it with startTrackerClientPeer() from node-peer.mjs, not by
// hand.
//
// Why a process per client: bittorrent-tracker pools one WebSocket per
// tracker URL per module instance, so two Clients in one process would share
// a socket, which is not what two browsers do (and p2p_tracker does not relay
// an offer back to the socket it came from). One peer per process is also
// what P2P Media Loader's peer-id cache needs (pion-notes §5).
//
// argv: JSON {announce, infoHash, peerId?}
// parent -> child: {cmd: "start"|"scrape"|"stop"|"destroy"} | {cmd: "send", data: string}
// child -> parent: {event, ...} with event one of
//   ready, update {complete, incomplete}, peer {remoteAddress, remotePort, remotePeerId},
//   data {data}, scrape {complete, incomplete, downloaded, infoHash}, error {message},
//   warning {message}, peer-close, destroyed

import { createTrackerClient } from "./node-peer.mjs";

const opts = JSON.parse(process.argv[2] || "{}");
const send = (m) => process.send?.(m);
const client = createTrackerClient(opts);
client.removeAllListeners("error");
client.removeAllListeners("warning");
client.on("error", (e) => send({ event: "error", message: String(e?.message || e) }));
client.on("warning", (e) => send({ event: "warning", message: String(e?.message || e) }));
client.on("update", (d) => send({ event: "update", complete: d.complete, incomplete: d.incomplete }));
client.on("scrape", (d) => send({ event: "scrape", complete: d.complete, incomplete: d.incomplete, downloaded: d.downloaded, infoHash: d.infoHash }));

let current = null; // the connected simple-peer
client.on("peer", (peer) => {
  const connected = () => {
    if (current && current !== peer) return; // keep the first connection
    current = peer;
    send({ event: "peer", remoteAddress: peer.remoteAddress, remotePort: peer.remotePort, remotePeerId: peer.id ?? null });
  };
  if (peer.connected) connected();
  else peer.once("connect", connected);
  peer.on("data", (d) => { if (peer === current) send({ event: "data", data: Buffer.from(d).toString() }); });
  peer.on("close", () => { if (peer === current) { current = null; send({ event: "peer-close" }); } });
});

process.on("message", (m) => {
  switch (m?.cmd) {
    case "start": client.start(); break;
    case "scrape": client.scrape(); break;
    case "stop": client.stop(); break;
    case "send":
      if (current) current.send(m.data);
      else send({ event: "error", message: "send: no connected peer" });
      break;
    case "destroy":
      client.destroy(() => {
        send({ event: "destroyed" });
        process.disconnect?.();
        setTimeout(() => process.exit(0), 100);
      });
      break;
    default:
      send({ event: "error", message: `unknown command ${JSON.stringify(m)}` });
  }
});
process.on("disconnect", () => process.exit(0)); // parent gone
send({ event: "ready", peerId: client.peerIdHex });
