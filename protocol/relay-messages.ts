import { z } from "zod";
import { APP_NAME_PATTERN } from "./manifest.ts";
import { labelsSchema } from "./placement.ts";

// The control channel between an agent and its region relay: JSON text frames over one
// WebSocket (DESIGN section 8). A transport-free codec: `encodeRelayMessage` writes a frame,
// `decodeRelayMessage` reads one and never throws. Chunk bytes do not travel here: agents read
// them over HTTP from the relay (`GET /v1/chunks/:digest`), and in step 7 from peers.
//
// Evolution rule: known kinds are strict (an unknown field is invalid), so new information
// travels in new kinds, which an older endpoint passes up as `unknown` instead of failing.
// `protocol` in `hello`/`welcome` changes only for an incompatible change.

/** The version spoken; `hello` and `welcome` carry it. */
export const RELAY_PROTOCOL_VERSION = 1;

/**
 * Largest frame either side accepts, in UTF-8 bytes. A `goals` frame for 1,000 apps is about
 * 1 MB; Deno closes a WebSocket on a message of 64 MiB or more, far above this.
 */
export const MAX_RELAY_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Most apps one machine reports, and most goals one `goals` frame carries. */
export const MAX_APPS_PER_MACHINE = 256;
export const MAX_GOALS_PER_MESSAGE = 1024;
/** Largest signed goal document (canonical JSON) carried verbatim. */
export const MAX_GOAL_DOCUMENT_BYTES = 64 * 1024;
/** Longest `detail` and `message` string. */
export const MAX_DETAIL_LENGTH = 1024;

/** What an agent reports per app; `state` as in docs/goal-state.md. */
export const APP_STATES = ["pending", "downloading", "installed", "healthy", "failed"] as const;
export type AppState = (typeof APP_STATES)[number];

export const MACHINE_ID_PATTERN: RegExp = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const REGION_PATTERN: RegExp = /^[a-z][a-z0-9-]{1,30}$/;
const RELAY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const id = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const count = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const nullableText = z.string().max(MAX_DETAIL_LENGTH).nullable();

const progressSchema = z.strictObject({
  chunks_done: count,
  chunks_total: count,
  bytes_done: count,
  bytes_total: count,
});

const appStatusSchema = z.strictObject({
  app: z.string().regex(APP_NAME_PATTERN),
  /** The build the app is converging to (or failed to reach); null before any goal. */
  build_id: id.nullable(),
  generation: count.nullable(),
  state: z.enum(APP_STATES),
  detail: nullableText,
  /** The build whose process runs now (the previous one after a local rollback). */
  running_build_id: id.nullable(),
  /** While downloading: how far; else null. */
  progress: progressSchema.nullable(),
  /**
   * Times the running release's process was started again after it exited, since the release
   * started (a flapping app shows it even once healthy again). Agents before step 11 omit it.
   */
  restarts: count.optional(),
});

const appsSchema = z
  .array(appStatusSchema)
  .max(MAX_APPS_PER_MACHINE)
  .refine((apps) => new Set(apps.map((a) => a.app)).size === apps.length, "apps must be unique");

const signedGoalSchema = z.strictObject({
  document: z.string().min(2).max(MAX_GOAL_DOCUMENT_BYTES),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "must be base64 of 64 bytes"),
});

const pingSchema = z.strictObject({ type: z.literal("ping"), nonce: count });
const pongSchema = z.strictObject({ type: z.literal("pong"), nonce: count });

/** Agent → relay: first frame on a connection. */
const helloSchema = z.strictObject({
  type: z.literal("hello"),
  protocol: z.int().min(1).max(1000),
  machine_id: z.string().regex(MACHINE_ID_PATTERN),
  region: z.string().regex(REGION_PATTERN),
  /** Where peers reach this agent (step 7's mesh); null while it serves no peers. */
  peer_url: z
    .url({ protocol: /^wss?$/ })
    .max(2048)
    .nullable(),
  apps: appsSchema,
  /**
   * The machine's labels (`--label`; step 12), which placements match. Omitted when it has
   * none, so an agent without labels still speaks to a relay before step 12.
   */
  labels: labelsSchema.optional(),
});

/** Agent → relay: the machine's full per-app status, sent whenever it changes. */
const statusSchema = z.strictObject({ type: z.literal("status"), apps: appsSchema });

/** Relay → agent: the answer to `hello`. */
const welcomeSchema = z.strictObject({
  type: z.literal("welcome"),
  protocol: z.int().min(1).max(1000),
  relay_id: z.string().regex(RELAY_ID_PATTERN),
  region: z.string().regex(REGION_PATTERN),
});

/**
 * Relay → agent: every goal of the region as the control plane signed it, verbatim (agents
 * verify; the relay never does), on connect and whenever the region's `version` changes.
 */
const goalsSchema = z.strictObject({
  type: z.literal("goals"),
  version: count,
  goals: z.array(signedGoalSchema).max(MAX_GOALS_PER_MESSAGE),
});

/** Either way, before closing: why. */
const errorSchema = z.strictObject({
  type: z.literal("error"),
  code: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
  message: z.string().max(MAX_DETAIL_LENGTH),
});

export type AppStatus = z.infer<typeof appStatusSchema>;
export type AppProgress = z.infer<typeof progressSchema>;
export type SignedGoal = z.infer<typeof signedGoalSchema>;
export type HelloMessage = z.infer<typeof helloSchema>;
export type StatusMessage = z.infer<typeof statusSchema>;
export type WelcomeMessage = z.infer<typeof welcomeSchema>;
export type GoalsMessage = z.infer<typeof goalsSchema>;
export type ErrorMessage = z.infer<typeof errorSchema>;
export type PingMessage = z.infer<typeof pingSchema>;
export type PongMessage = z.infer<typeof pongSchema>;

/** What an agent sends to its relay. */
export type AgentToRelayMessage =
  | HelloMessage
  | StatusMessage
  | ErrorMessage
  | PingMessage
  | PongMessage;
/** What a relay sends to an agent. */
export type RelayToAgentMessage =
  | WelcomeMessage
  | GoalsMessage
  | ErrorMessage
  | PingMessage
  | PongMessage;
export type RelayMessage = AgentToRelayMessage | RelayToAgentMessage;

/** Who wrote a frame: decoding checks the kind is one that side sends. */
export type RelaySender = "agent" | "relay";

const SCHEMAS = {
  agent: {
    hello: helloSchema,
    status: statusSchema,
    error: errorSchema,
    ping: pingSchema,
    pong: pongSchema,
  },
  relay: {
    welcome: welcomeSchema,
    goals: goalsSchema,
    error: errorSchema,
    ping: pingSchema,
    pong: pongSchema,
  },
} as const;
const ALL_KINDS = new Set<string>([...Object.keys(SCHEMAS.agent), ...Object.keys(SCHEMAS.relay)]);

/** The result of decoding one frame. Never thrown: a bad frame is a value the session handles. */
export type DecodedRelayMessage<M> =
  | { readonly kind: "message"; readonly message: M }
  /** A well-formed frame of a kind this version does not know: pass it up, do not fail. */
  | {
      readonly kind: "unknown";
      readonly type: string;
      readonly value: Readonly<Record<string, unknown>>;
    }
  | { readonly kind: "invalid"; readonly problems: readonly string[] };

type Decoded<S extends RelaySender> = DecodedRelayMessage<
  S extends "agent" ? AgentToRelayMessage : RelayToAgentMessage
>;

/**
 * Decodes one frame written by `from`. Refuses (as `invalid`) frames over the size cap before
 * parsing them, non-JSON, non-objects, a missing `type`, a kind the other side sends, and known
 * kinds that fail their schema; a well-formed unknown kind comes back as `unknown`.
 */
export function decodeRelayMessage<S extends RelaySender>(
  data: string | Uint8Array | ArrayBuffer,
  from: S,
): Decoded<S> {
  const text = frameText(data);
  if (typeof text !== "string") return text as Decoded<S>;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid("not JSON") as Decoded<S>;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid("not a JSON object") as Decoded<S>;
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !/^[a-z][a-z0-9_-]{0,63}$/.test(type)) {
    return invalid("type: missing or not a message kind") as Decoded<S>;
  }
  const schemas: Record<string, z.ZodType> = SCHEMAS[from];
  const schema = schemas[type];
  if (!schema) {
    if (ALL_KINDS.has(type)) return invalid(`type: ${from}s do not send ${type}`) as Decoded<S>;
    return { kind: "unknown", type, value: value as Record<string, unknown> } as Decoded<S>;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) return invalid(...issueTexts(parsed.error)) as Decoded<S>;
  return { kind: "message", message: parsed.data } as Decoded<S>;
}

/** Encodes `message` as a frame, checked against its schema (a TypeError says what is wrong). */
export function encodeRelayMessage(message: RelayMessage): string {
  const schemas: Record<string, z.ZodType> = { ...SCHEMAS.agent, ...SCHEMAS.relay };
  const schema = schemas[message.type];
  if (!schema) throw new TypeError(`unknown relay message type ${JSON.stringify(message.type)}`);
  const parsed = schema.safeParse(message);
  if (!parsed.success) {
    throw new TypeError(`invalid ${message.type} message: ${issueTexts(parsed.error).join("; ")}`);
  }
  const text = JSON.stringify(parsed.data);
  if (utf8Length(text) > MAX_RELAY_MESSAGE_BYTES) {
    throw new RangeError(`${message.type} message exceeds ${MAX_RELAY_MESSAGE_BYTES} bytes`);
  }
  return text;
}

function frameText(data: string | Uint8Array | ArrayBuffer): string | Decoded<RelaySender> {
  if (typeof data === "string") {
    // A JS string of n UTF-16 units is at most 3n UTF-8 bytes, and at least n.
    if (data.length > MAX_RELAY_MESSAGE_BYTES) return invalid("frame exceeds the size cap");
    if (data.length * 3 > MAX_RELAY_MESSAGE_BYTES && utf8Length(data) > MAX_RELAY_MESSAGE_BYTES) {
      return invalid("frame exceeds the size cap");
    }
    return data;
  }
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length > MAX_RELAY_MESSAGE_BYTES) return invalid("frame exceeds the size cap");
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return invalid("not UTF-8");
  }
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

function invalid(...problems: string[]): { kind: "invalid"; problems: string[] } {
  return { kind: "invalid", problems };
}

function issueTexts(error: z.ZodError): string[] {
  return error.issues.slice(0, 10).map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}
