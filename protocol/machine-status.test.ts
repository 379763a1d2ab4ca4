import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canaryBucket } from "./goal.ts";
import {
  aggregateMachines,
  answerMachinesQuery,
  type MachineReport,
  summaryMessageSchema,
} from "./machine-status.ts";

const m = (id: string, fields: Partial<MachineReport> = {}): MachineReport => ({
  machine_id: id,
  app: "web",
  build_id: 7,
  generation: 3,
  state: "healthy",
  detail: null,
  connected: true,
  ...fields,
});

describe("aggregateMachines()", () => {
  it("counts connected machines by build, generation, state and canary share; away ones apart", () => {
    const goals = new Map([["web", { generation: 3, deployment_id: 9, canary: { percent: 50 } }]]);
    const machines = ["a", "b", "c", "d"].map((id) => m(id));
    machines.push(m("e", { connected: false }), m("f", { state: "downloading", generation: 2 }));
    const agg = aggregateMachines(machines, goals);
    const canary = ["a", "b", "c", "d"].filter((id) => canaryBucket(id, 9) < 50).length;
    expect(agg.apps).toHaveLength(1);
    const web = agg.apps[0]!;
    expect(web.goal_generation).toBe(3);
    expect(web.away).toBe(1);
    const n = (canaryFlag: boolean) =>
      web.counts.find((c) => c.state === "healthy" && c.canary === canaryFlag)?.n ?? 0;
    expect(n(true)).toBe(canary);
    expect(n(false)).toBe(4 - canary);
    expect(web.counts.find((c) => c.state === "downloading")).toMatchObject({
      generation: 2,
      n: 1,
    });
  });

  it("samples problem machines, failed first, and counts them all", () => {
    const machines = [
      m("r1", { restarts: 2 }),
      m("x1", { connected: false }),
      m("f2", { state: "failed", detail: "boom" }),
      m("f1", { state: "failed", detail: "boom" }),
    ];
    const agg = aggregateMachines(machines, new Map(), 3);
    expect(agg.problems.map((p) => [p.machine_id, p.problem])).toEqual([
      ["f1", "failed"],
      ["f2", "failed"],
      ["x1", "away"],
    ]);
    expect(agg.problems_total).toBe(4);
  });

  it("keeps a message's size to apps × states however many healthy machines there are", () => {
    const sizes = [100, 20_000].map((count) => {
      const machines = Array.from({ length: count }, (_, i) => m(`m${i}`));
      const msg = {
        type: "summary",
        relay_id: "r",
        machines: count,
        ...aggregateMachines(machines, new Map()),
      };
      expect(summaryMessageSchema.safeParse(msg).success).toBe(true);
      return JSON.stringify(msg).length;
    });
    expect(sizes[1]! - sizes[0]!).toBeLessThan(8);
  });
});

describe("answerMachinesQuery()", () => {
  it("pages through every matching machine once, in (machine, app) order", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/), fc.constantFrom("web", "api")),
          {
            selector: ([id, app]) => `${id}/${app}`,
            maxLength: 60,
          },
        ),
        fc.integer({ min: 1, max: 7 }),
        (keys, limit) => {
          const machines = keys.map(([id, app]) => m(id, { app }));
          const seen: string[] = [];
          let after: [string, string] | null = null;
          for (let i = 0; i < 100; i++) {
            const page = answerMachinesQuery(machines, {
              type: "machines_query",
              id: i,
              app: null,
              state: null,
              after,
              limit,
            });
            seen.push(...page.machines.map((x) => `${x.machine_id}/${x.app}`));
            if (!page.more) break;
            const last = page.machines.at(-1)!;
            after = [last.machine_id, last.app];
          }
          const want = machines
            .map((x) => [x.machine_id, x.app] as const)
            .sort((p, q) =>
              p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : p[1] < q[1] ? -1 : p[1] > q[1] ? 1 : 0,
            )
            .map(([id, app]) => `${id}/${app}`);
          expect(seen).toEqual(want);
        },
      ),
    );
  });
});
