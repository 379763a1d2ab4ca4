import { createClient } from "@libsql/client/web";
import { drizzle } from "drizzle-orm/libsql/web";
import type { Config } from "../config.ts";
import * as schema from "./schema.ts";

export type Db = ReturnType<typeof openDb>;

/** drizzle over libSQL's HTTP protocol (Hrana); the client is cheap, one per request. */
export function openDb(config: Pick<Config, "libsqlUrl" | "libsqlAuthToken">) {
  const client = createClient(
    config.libsqlAuthToken === undefined
      ? { url: config.libsqlUrl }
      : { url: config.libsqlUrl, authToken: config.libsqlAuthToken },
  );
  return drizzle(client, { schema });
}
