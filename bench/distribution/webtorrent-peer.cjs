// The BitTorrent baseline of bench/distribution (issue 7): one webtorrent process, run by Node.
//
//   node webtorrent-peer.cjs seed  <file> <torrent-out> <tracker-port>
//   node webtorrent-peer.cjs leech <torrent> <dir> <download B/s> <upload B/s|0>
//
// The seeder runs a bittorrent-tracker (HTTP, loopback) and seeds the artifact: it is the
// origin, like our relay, and like it has no rate limit. A leecher loads the torrent, says
// `ready`, waits for `go` on stdin, downloads with webtorrent's own throttles as its link
// (the same B as our agents' token buckets), says `done`, and keeps seeding until SIGTERM.
// Every line on stdout is one JSON object. DHT, LSD, uTP and web seeds are off: loopback
// TCP peers found through the tracker only.
"use strict";
const fs = require("node:fs");
const readline = require("node:readline");
const WebTorrent = require("webtorrent");
const { Server } = require("bittorrent-tracker");

const say = (event, fields = {}) =>
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const [role, ...args] = process.argv.slice(2);
const client = new WebTorrent({
  dht: false,
  lsd: false,
  utp: false,
  webSeeds: false,
  tracker: { wrtc: false },
});
client.on("error", (err) => {
  say("error", { message: String(err?.message ?? err) });
  process.exit(1);
});

function stopOn(torrent) {
  process.on("SIGTERM", () => {
    say("stopped", { uploaded: torrent.uploaded, downloaded: torrent.downloaded });
    process.exit(0);
  });
}

if (role === "seed") {
  const [file, torrentOut, trackerPort] = args;
  const tracker = new Server({
    udp: false,
    ws: false,
    http: true,
    stats: false,
    trustProxy: false,
  });
  tracker.on("error", (err) => say("error", { message: String(err.message) }));
  tracker.listen(Number(trackerPort), "127.0.0.1", () => {
    const announce = [`http://127.0.0.1:${trackerPort}/announce`];
    client.seed(file, { announce }, (torrent) => {
      fs.writeFileSync(torrentOut, torrent.torrentFile);
      stopOn(torrent);
      say("seeding", { pieces: torrent.pieces.length, piece_length: torrent.pieceLength });
    });
  });
} else if (role === "leech") {
  const [torrentPath, dir, down, up] = args;
  client.throttleDownload(Number(down));
  if (Number(up) > 0) client.throttleUpload(Number(up));
  const input = readline.createInterface({ input: process.stdin });
  say("ready");
  input.once("line", () => {
    const started = Date.now();
    client.add(fs.readFileSync(torrentPath), { path: dir }, (torrent) => {
      stopOn(torrent);
      torrent.on("done", () => say("done", { ms: Date.now() - started }));
    });
  });
} else {
  say("error", { message: `unknown role ${role}` });
  process.exit(2);
}
