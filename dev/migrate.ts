import { parseArgs } from "node:util";
import { createClient } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { log } from "./log.ts";

/** Applies drizzle/ migrations to the libSQL database at `url` (idempotent). */
export async function migrateDatabase(url: string, authToken?: string): Promise<void> {
  const client = createClient(authToken ? { url, authToken } : { url });
  try {
    await migrate(drizzle(client), {
      migrationsFolder: new URL("../drizzle", import.meta.url).pathname,
    });
  } finally {
    client.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { url: { type: "string", default: "http://127.0.0.1:8080" } },
  });
  const url = values.url;
  await migrateDatabase(url, Deno.env.get("LIBSQL_AUTH_TOKEN") || undefined);
  log("info", "db:migrated", { url });
}
