/**
 * Agent tokens, checked against the control plane: a token is valid when it may read this
 * region's goal (`GET /v1/regions/:region/goal?wait_s=0` answers 200, which the control plane
 * grants to agent and relay tokens of the region). One check per token per TTL, shared by
 * concurrent requests; refusals are remembered briefly. Tokens seen valid are remembered (as
 * a hash) in Deno KV, so that while the control plane is unreachable the relay still serves
 * agents it knows, even after a restart; an unknown token is then refused with 503.
 */
import { sha256Hex } from "../protocol/hash.ts";
import { errorText, type Logger } from "./log.ts";

export type TokenVerdict = "valid" | "invalid" | "unavailable";

/** Hashes of tokens seen valid, with when: Deno KV in main.ts, memory in tests. */
export interface KnownTokens {
  get(hash: string): Promise<number | null>;
  set(hash: string, checkedAt: number): Promise<void>;
  delete(hash: string): Promise<void>;
}

export interface AgentAuthOptions {
  /** True: valid; false: refused; throws: could not tell. */
  check: (token: string) => Promise<boolean>;
  known: KnownTokens;
  logger: Logger;
  /** How long a valid check holds. Default 5 min. */
  ttlMs?: number;
  /** How long a refusal holds. Default 30 s. */
  refusalTtlMs?: number;
  now?: () => number;
}

export class AgentAuth {
  readonly #o: AgentAuthOptions;
  readonly #memo = new Map<string, { verdict: TokenVerdict; until: number }>();
  readonly #inflight = new Map<string, Promise<TokenVerdict>>();

  constructor(options: AgentAuthOptions) {
    this.#o = options;
  }

  /** Whether `token` (the bearer token an agent presented) is an agent token of this region. */
  async verify(token: string): Promise<TokenVerdict> {
    if (!/^[\x21-\x7e]{8,512}$/.test(token)) return "invalid";
    const hash = await sha256Hex(new TextEncoder().encode(`fleetship-relay/agent-token\n${token}`));
    const now = this.#now();
    const memo = this.#memo.get(hash);
    if (memo && memo.until > now) return memo.verdict;
    let pending = this.#inflight.get(hash);
    if (!pending) {
      pending = this.#check(token, hash).finally(() => this.#inflight.delete(hash));
      this.#inflight.set(hash, pending);
    }
    return await pending;
  }

  async #check(token: string, hash: string): Promise<TokenVerdict> {
    const ttl = this.#o.ttlMs ?? 300_000;
    try {
      const valid = await this.#o.check(token);
      this.#o.logger.log("info", "token:checked", { valid, cached: false });
      if (valid) {
        this.#remember(hash, "valid", ttl);
        await this.#o.known.set(hash, this.#now()).catch(() => {});
        return "valid";
      }
      this.#remember(hash, "invalid", this.#o.refusalTtlMs ?? 30_000);
      await this.#o.known.delete(hash).catch(() => {});
      return "invalid";
    } catch (err) {
      this.#o.logger.log("warn", "token:check-failed", { error: errorText(err) });
      const seen = await this.#o.known.get(hash).catch(() => null);
      if (seen === null) return "unavailable";
      // Known from before: keep serving it, and ask again soon.
      this.#remember(hash, "valid", Math.min(ttl, 30_000));
      return "valid";
    }
  }

  #remember(hash: string, verdict: TokenVerdict, ms: number): void {
    if (this.#memo.size > 100_000) this.#memo.clear();
    this.#memo.set(hash, { verdict, until: this.#now() + ms });
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}

export function kvKnownTokens(kv: Deno.Kv): KnownTokens {
  return {
    async get(hash) {
      return (await kv.get<number>(["agent-token", hash])).value;
    },
    async set(hash, checkedAt) {
      await kv.set(["agent-token", hash], checkedAt);
    },
    async delete(hash) {
      await kv.delete(["agent-token", hash]);
    },
  };
}

export function memoryKnownTokens(): KnownTokens & { map: Map<string, number> } {
  const map = new Map<string, number>();
  return {
    map,
    get: (hash) => Promise.resolve(map.get(hash) ?? null),
    set: (hash, at) => {
      map.set(hash, at);
      return Promise.resolve();
    },
    delete: (hash) => {
      map.delete(hash);
      return Promise.resolve();
    },
  };
}
