import assert from "node:assert/strict";
import { PeerRequestFailed, PeerSession, Slots } from "./peer-session.ts";
import { UNLIMITED } from "./token-bucket.ts";

/** Two sessions piped together in memory (frames delivered on a later microtask). */
function pair(serveB: (build: number, index: number) => Promise<Uint8Array | null>) {
  const slots = new Slots(2);
  const ends: { a?: PeerSession; b?: PeerSession } = {};
  const wire = (to: () => PeerSession) => ({
    send: (frame: Uint8Array) => queueMicrotask(() => to().receive(frame.slice())),
    close: () => queueMicrotask(() => to().close("peer closed")),
  });
  const a = new PeerSession({
    id: "b",
    wire: wire(() => ends.b!),
    serve: () => Promise.resolve(null),
    uploadSlots: slots,
    uploadLimit: UNLIMITED,
    requestTimeoutMs: 200,
  });
  const b = new PeerSession({
    id: "a",
    wire: wire(() => ends.a!),
    serve: serveB,
    uploadSlots: slots,
    uploadLimit: UNLIMITED,
    maxQueued: 2,
  });
  ends.a = a;
  ends.b = b;
  return { a, b };
}

Deno.test("PeerSession.request() gets the piece the peer serves, and its have", async () => {
  const { a, b } = pair((build, index) => Promise.resolve(Uint8Array.of(build, index)));
  b.sendHave(7, 10, Uint8Array.of(0b101, 0));
  await new Promise((r) => setTimeout(r, 0));
  assert.ok(a.has(7, 0) && a.has(7, 2) && !a.has(7, 1));
  const bytes = await a.request(7, 3, new AbortController().signal);
  assert.deepEqual([...bytes], [7, 3]);
  assert.equal(a.outstanding, 0);
});

Deno.test("PeerSession.request() times out when the peer has nothing, and cancels", async () => {
  const { a } = pair(() => Promise.resolve(null));
  await assert.rejects(a.request(1, 1, new AbortController().signal), (err) => {
    return err instanceof PeerRequestFailed && err.code === "timeout";
  });
});

Deno.test("PeerSession fails outstanding requests on choke and close", async () => {
  const never = new Promise<Uint8Array | null>(() => {});
  const { a, b } = pair(() => never);
  const pending = a.request(1, 0, new AbortController().signal);
  await new Promise((r) => setTimeout(r, 0));
  b.close("going away");
  await assert.rejects(pending, (err) => err instanceof PeerRequestFailed && err.code === "closed");
  assert.equal(a.closed, true);
});

Deno.test("PeerSession closes on a malformed frame and ignores an unknown kind", () => {
  const { a } = pair(() => Promise.resolve(null));
  a.receive(Uint8Array.of(200, 1, 2, 3));
  assert.equal(a.closed, false);
  a.receive(Uint8Array.of(2, 0)); // a truncated request
  assert.equal(a.closed, true);
});

Deno.test("PeerSession chokes a peer that queues too much, then unchokes it", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const { a } = pair(async (build, index) => {
    await gate;
    return Uint8Array.of(build, index);
  });
  const results = [0, 1, 2, 3].map((i) =>
    a.request(1, i, new AbortController().signal).then(
      () => "ok",
      (err: PeerRequestFailed) => err.code,
    ),
  );
  const codes = await Promise.all(results);
  assert.ok(codes.includes("choked"), String(codes));
  release();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(a.chokedByPeer, false); // its queue drained: unchoked
  assert.deepEqual([...(await a.request(1, 9, new AbortController().signal))], [1, 9]);
});
