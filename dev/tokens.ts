import { parseArgs } from "node:util";
import { createClient } from "@libsql/client";
import { newToken } from "../control-plane/src/auth/token-format.ts";
import { ROLES, type Role } from "../control-plane/src/db/schema.ts";

/**
 * Mints a token straight into the database: how the first admin token comes to exist (later
 * tokens can be minted through POST /v1/tokens). The pepper must be the Worker's TOKEN_PEPPER.
 */
export async function mintToken(
  url: string,
  pepper: string,
  opts: { role: Role; name: string; region?: string; authToken?: string },
): Promise<{ id: string; token: string }> {
  const t = await newToken(pepper);
  const client = createClient(opts.authToken ? { url, authToken: opts.authToken } : { url });
  try {
    await client.batch(
      [
        {
          sql: "INSERT INTO tokens (id, name, role, region, secret_hash, created_by) VALUES (?, ?, ?, ?, ?, 'local mint')",
          args: [t.id, opts.name, opts.role, opts.region ?? null, t.secretHash],
        },
        {
          sql: "INSERT INTO audit_log (actor, role, action, target, details) VALUES ('local mint', 'system', 'token.create', ?, ?)",
          args: [`token:${t.id}`, JSON.stringify({ name: opts.name, role: opts.role })],
        },
      ],
      "write",
    );
  } finally {
    client.close();
  }
  return { id: t.id, token: t.token };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      url: { type: "string", default: "http://127.0.0.1:8080" },
      role: { type: "string", default: "admin" },
      name: { type: "string", default: "local admin" },
      region: { type: "string" },
    },
  });
  if (!(ROLES as readonly string[]).includes(values.role)) {
    console.error(`--role must be one of ${ROLES.join(", ")}`);
    Deno.exit(2);
  }
  const pepper = Deno.env.get("TOKEN_PEPPER");
  if (!pepper) {
    console.error(
      "set TOKEN_PEPPER to the control plane's TOKEN_PEPPER (npm start keeps it in .data/.dev.vars)",
    );
    Deno.exit(2);
  }
  const t = await mintToken(values.url, pepper, {
    role: values.role as Role,
    name: values.name,
    ...(values.region ? { region: values.region } : {}),
    ...(Deno.env.get("LIBSQL_AUTH_TOKEN") ? { authToken: Deno.env.get("LIBSQL_AUTH_TOKEN")! } : {}),
  });
  console.log(t.token);
}
