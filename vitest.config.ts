import { createServer } from "node:net";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateSigningKeys } from "./protocol/signing.ts";

/** A free loopback port, chosen before the projects start so workerd's bindings can name it. */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

// One Ed25519 key per test run: the Worker signs with it, tests verify with its public half.
const keys = await generateSigningKeys();
process.env.TEST_SIGNING_PUBLIC_KEY = keys.publicKey;

const libsqlPort = Number(process.env.TEST_LIBSQL_PORT ?? (await freePort()));
process.env.TEST_LIBSQL_PORT = String(libsqlPort);

/** Integration tests light enough to run beside the rest: they start no control plane. */
const LIGHT_INTEGRATION = [
  "tests/libsql-server.test.ts",
  "tests/durability.test.ts",
  "tests/flags.test.ts",
];

// One runner, three projects: `node` runs unit tests of runtime-neutral code and light
// integration tests; `stack` runs, one file at a time, the tests that start the local stack and
// real Deno processes; `workers` runs the control plane inside workerd against the real local
// libSQL server that its global setup starts and stops.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "node",
          environment: "node",
          include: ["protocol/**/*.test.ts", "dev/libsql/**/*.test.ts", ...LIGHT_INTEGRATION],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "stack",
          environment: "node",
          include: ["tests/**/*.test.ts"],
          exclude: LIGHT_INTEGRATION,
          // Each file starts its own local stack (wrangler dev, libSQL, Deno processes): one at
          // a time, so two workerd instances never race for ports on a 2-core machine.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                LIBSQL_URL: `http://127.0.0.1:${libsqlPort}`,
                TOKEN_PEPPER: "test-pepper",
                SIGNING_KEY: keys.privateKey,
                ENROLLMENT_SECRET: "test-enrollment-secret",
                TEST_SIGNING_PUBLIC_KEY: keys.publicKey,
                LOG_LEVEL: "warn",
              },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["control-plane/**/*.test.ts"],
          globalSetup: ["./control-plane/test/global-setup.ts"],
          // The libSQL database is shared by the files of this project: run them one at a time,
          // each starting from an emptied database (control-plane/test/helpers.ts).
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
