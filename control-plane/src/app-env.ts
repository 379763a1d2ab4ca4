import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Principal } from "./auth/tokens.ts";
import type { Config } from "./config.ts";
import type { Db } from "./db/client.ts";
import type { Env } from "./env.ts";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    config: Config;
    db: Db;
    principal: Principal;
  };
}

export type App = OpenAPIHono<AppEnv>;
