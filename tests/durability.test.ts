import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { afterAll, describe, expect, it } from "vitest";
import { startLibsqlServer } from "./support/libsql.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("the local libSQL server under kill -9", () => {
  it("keeps every write it acknowledged, across several kills at random moments", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fleetship-durable-"));
    dirs.push(dir);
    const file = join(dir, "control.db");
    let server = await startLibsqlServer({ file });
    let client = createClient({ url: server.url });
    await client.execute("CREATE TABLE accepted (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
    const acknowledged = new Set<number>();
    let next = 0;
    const faults = 5;
    for (let round = 0; round < faults; round++) {
      // Writers run flat out; the server is killed mid-stream after a random delay.
      let stop = false;
      const writers = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const id = next++;
          try {
            if (id % 3 === 0) {
              await client.batch(
                [
                  {
                    sql: "INSERT INTO accepted (id, payload) VALUES (?, ?)",
                    args: [id, `batch-${id}`],
                  },
                  { sql: "UPDATE accepted SET payload = payload || '!' WHERE id = ?", args: [id] },
                ],
                "write",
              );
            } else {
              await client.execute({
                sql: "INSERT INTO accepted (id, payload) VALUES (?, ?)",
                args: [id, `row-${id}`],
              });
            }
            acknowledged.add(id);
          } catch {
            return; // the server went away: this write was never acknowledged
          }
        }
      });
      await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 400)));
      await server.kill();
      stop = true;
      await Promise.all(writers);
      client.close();
      server = await startLibsqlServer({ file, port: server.port });
      client = createClient({ url: server.url });
    }
    const rows = await client.execute("SELECT id, payload FROM accepted");
    const stored = new Map(rows.rows.map((r) => [Number(r.id), String(r.payload)]));
    const lost = [...acknowledged].filter((id) => !stored.has(id));
    expect(acknowledged.size).toBeGreaterThan(50);
    expect(lost).toEqual([]);
    // A batch is all or nothing: no half-applied one survives the kill.
    for (const [id, payload] of stored) if (id % 3 === 0) expect(payload).toBe(`batch-${id}!`);
    const integrity = await client.execute("PRAGMA integrity_check");
    expect(integrity.rows[0]?.[0]).toBe("ok");
    client.close();
    await server.stop();
    console.log(`durability: ${faults} kills, ${acknowledged.size} acknowledged writes, 0 lost`);
  }, 60_000);
});
