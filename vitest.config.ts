import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests import shared from source, so a change there needs no rebuild to be tested in-process.
    // Tests that spawn services run their dist build (npm test builds first).
    alias: [
      { find: /^@orderflow\/shared\/testing$/, replacement: src("./shared/src/testing/index.ts") },
      { find: /^@orderflow\/shared\/tables$/, replacement: src("./shared/src/db/tables.ts") },
      { find: /^@orderflow\/shared$/, replacement: src("./shared/src/index.ts") },
    ],
  },
  test: {
    include: ["shared/src/**/*.test.ts", "services/*/src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["test/deploy/**", "**/node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: ["default"],
  },
});
