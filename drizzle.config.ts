import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes migrations to drizzle/ from the schema; never hand-edit them.
export default defineConfig({
  dialect: "turso",
  schema: "./control-plane/src/db/schema.ts",
  out: "./drizzle",
});
