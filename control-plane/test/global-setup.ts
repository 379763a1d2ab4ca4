import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { startLibsqlServer } from "../../tests/support/libsql.ts";

/** Starts the real local libSQL server for the workerd tests and applies the migrations. */
export default async function setup(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), "fleetship-cp-"));
  const port = Number(process.env.TEST_LIBSQL_PORT);
  const server = await startLibsqlServer({ file: join(dir, "control.db"), port });
  const client = createClient({ url: server.url });
  await migrate(drizzle(client), { migrationsFolder: "drizzle" });
  client.close();
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
