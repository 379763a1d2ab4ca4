import assert from "node:assert/strict";
import { parseHave } from "../protocol/peer-tracker.ts";
import { silentLogger } from "./log.ts";
import { Mesh } from "./mesh.ts";
import { PieceUnavailable } from "./piece-source.ts";

const relay = {
  name: "relay",
  fetchPiece: () => Promise.reject(new PieceUnavailable("not in this test")),
};

function meshSending(maxPeers: number) {
  const sent: unknown[] = [];
  const mesh = new Mesh({
    machineId: "m1",
    relay,
    logger: silentLogger,
    maxPeers,
    sendToRelay: (frame) => {
      sent.push(JSON.parse(frame));
      return true;
    },
  });
  return { mesh, sent };
}

const start = {
  buildId: 3,
  sizes: [10, 10, 10],
  done: new Uint8Array(1),
  partialPath: "/nonexistent/partial",
  releasePath: "/nonexistent/release",
};

Deno.test("Mesh asks the tracker for peers while it has room, not once it is done", () => {
  const { mesh, sent } = meshSending(12);
  try {
    const tracking = mesh.begin(start);
    assert.equal(parseHave(sent.at(-1))?.wantPeers, true);
    tracking.end();
    const after = parseHave(sent.at(-1));
    assert.equal(after?.buildId, 3);
    assert.equal(after?.wantPeers, false); // finished: it only serves
  } finally {
    mesh.stop();
  }
});

Deno.test("Mesh with no room for peers reports what it holds without asking for peers", () => {
  const { mesh, sent } = meshSending(0);
  try {
    mesh.begin(start);
    const have = parseHave(sent.at(-1));
    assert.equal(have?.chunks, 3);
    assert.equal(have?.wantPeers, false);
  } finally {
    mesh.stop();
  }
});
