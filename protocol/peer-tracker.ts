import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { z } from "zod";
import { fromBase64, toBase64, toHex } from "./encoding.ts";
import { MACHINE_ID_PATTERN } from "./relay-messages.ts";

// The tracker's messages over the agent ↔ relay WebSocket (DESIGN section 8). They are kinds
// that `protocol/relay-messages.ts` does not know, so an older relay or agent passes them up
// as `unknown` and ignores them: the mesh is an addition, never a requirement.
//
//   agent → relay  {type:"have", build_id, chunks, bitfield, want_peers?}   what it holds
//   relay → agent  {type:"peers", build_id, peer_key, peers, seed}   whom to ask, its own key
//
// Every `have` is answered. `want_peers: false` says the agent has all the peers it can use:
// the answer then lists none (it still carries the key and the chunks to seed), which spares
// the relay the sampling and the HMAC tickets of a full answer. Absent means true (agents
// from before the field). Relays must be upgraded before agents: an older relay's strict
// schema refuses the field.
//
// Peer authentication trusts the relay: the relay gives each connected agent a random
// `peer_key` (per relay session) and, with every peer it hands out, a `ticket` =
// HMAC-SHA256(that peer's key, the requester's machine id). A peer accepts a connection only
// with a ticket for the machine id it claims, so only agents the relay admitted (token
// checked) reach each other, and no agent token ever travels to a peer.

/** Most peers one `peers` message lists. */
export const MAX_PEERS_PER_MESSAGE = 64;

const buildId = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);

export const haveReportSchema = z.strictObject({
  type: z.literal("have"),
  build_id: buildId,
  chunks: z
    .int()
    .min(0)
    .max(1 << 20),
  /** LSB-first bits, base64 (as in `protocol/peer-wire.ts`). */
  bitfield: base64.max(180_000),
  /** False: the agent has all the peers it can use; answer without peers. Default true. */
  want_peers: z.boolean().optional(),
});

export const peerEntrySchema = z.strictObject({
  machine_id: z.string().regex(MACHINE_ID_PATTERN),
  peer_url: z.url({ protocol: /^wss?$/ }).max(2048),
  ticket: z.string().regex(/^[0-9a-f]{64}$/),
});

export const peersMessageSchema = z.strictObject({
  type: z.literal("peers"),
  build_id: buildId,
  peer_key: base64.length(44),
  peers: z.array(peerEntrySchema).max(MAX_PEERS_PER_MESSAGE),
  /**
   * Chunks no connected agent holds, assigned to this one to fetch from the relay and seed
   * into the mesh (each assigned to one agent at a time, so the relay sends each about once).
   */
  seed: z
    .array(
      z
        .int()
        .min(0)
        .max((1 << 20) - 1),
    )
    .max(64),
});

export type HaveReport = z.infer<typeof haveReportSchema>;
export type PeerEntry = z.infer<typeof peerEntrySchema>;
export type PeersMessage = z.infer<typeof peersMessageSchema>;

/** The ticket that lets `machineId` connect to the agent holding `key`. */
export function peerTicket(key: Uint8Array, machineId: string): string {
  return toHex(hmac(sha256, key, new TextEncoder().encode(machineId)));
}

/** Constant-time check of a presented ticket. */
export function ticketValid(key: Uint8Array, machineId: string, ticket: string): boolean {
  const want = peerTicket(key, machineId);
  if (ticket.length !== want.length) return false;
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ ticket.charCodeAt(i);
  return diff === 0;
}

export function encodeHave(
  buildId: number,
  chunks: number,
  bits: Uint8Array,
  wantPeers = true,
): string {
  return JSON.stringify({
    type: "have",
    build_id: buildId,
    chunks,
    bitfield: toBase64(bits),
    ...(wantPeers ? {} : { want_peers: false }),
  });
}

/** A `have` the relay got, with its bitfield decoded and sized; null when malformed. */
export function parseHave(
  value: unknown,
): { buildId: number; chunks: number; bits: Uint8Array; wantPeers: boolean } | null {
  const parsed = haveReportSchema.safeParse(value);
  if (!parsed.success) return null;
  let bits: Uint8Array;
  try {
    bits = fromBase64(parsed.data.bitfield);
  } catch {
    return null;
  }
  if (bits.length !== Math.ceil(parsed.data.chunks / 8)) return null;
  return {
    buildId: parsed.data.build_id,
    chunks: parsed.data.chunks,
    bits,
    wantPeers: parsed.data.want_peers ?? true,
  };
}

export function parsePeers(value: unknown): PeersMessage | null {
  const parsed = peersMessageSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
