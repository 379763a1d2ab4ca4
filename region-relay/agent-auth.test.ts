import assert from "node:assert/strict";
import { AgentAuth, memoryKnownTokens } from "./agent-auth.ts";
import { silentLogger } from "./log.ts";

const GOOD = "fst_agent_good_secret";
const BAD = "fst_agent_bad_secret";

function setup() {
  const calls: string[] = [];
  let reachable = true;
  let now = 1_000_000;
  const known = memoryKnownTokens();
  const auth = new AgentAuth({
    check: async (token) => {
      calls.push(token);
      await new Promise((r) => setTimeout(r, 10));
      if (!reachable) throw new Error("connection refused");
      return token === GOOD;
    },
    known,
    logger: silentLogger,
    ttlMs: 60_000,
    refusalTtlMs: 5_000,
    now: () => now,
  });
  return {
    auth,
    calls,
    known,
    setReachable: (r: boolean) => {
      reachable = r;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

Deno.test("AgentAuth.verify() asks the control plane once per token per TTL, concurrent callers included", async () => {
  const t = setup();
  const verdicts = await Promise.all([1, 2, 3].map(() => t.auth.verify(GOOD)));
  assert.deepEqual(verdicts, ["valid", "valid", "valid"]);
  assert.equal(await t.auth.verify(GOOD), "valid");
  assert.equal(t.calls.length, 1);
  t.advance(61_000);
  assert.equal(await t.auth.verify(GOOD), "valid");
  assert.equal(t.calls.length, 2);
});

Deno.test("AgentAuth.verify() refuses a refused token, remembers briefly, then asks again", async () => {
  const t = setup();
  assert.equal(await t.auth.verify(BAD), "invalid");
  assert.equal(await t.auth.verify(BAD), "invalid");
  assert.equal(t.calls.length, 1);
  t.advance(6_000);
  assert.equal(await t.auth.verify(BAD), "invalid");
  assert.equal(t.calls.length, 2);
  assert.equal(await t.auth.verify("x"), "invalid", "malformed tokens are refused without a call");
  assert.equal(t.calls.length, 2);
});

Deno.test("AgentAuth.verify() keeps known agents in while the control plane is unreachable, not strangers", async () => {
  const t = setup();
  assert.equal(await t.auth.verify(GOOD), "valid");
  assert.equal(t.known.map.size, 1, "a valid token is remembered as a hash");
  assert.ok(![...t.known.map.keys()].some((k) => k.includes(GOOD)));
  t.advance(61_000);
  t.setReachable(false);
  assert.equal(await t.auth.verify(GOOD), "valid");
  assert.equal(await t.auth.verify("fst_agent_never_seen"), "unavailable");
});
