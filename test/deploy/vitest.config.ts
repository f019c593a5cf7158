import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The deploy suite (npm run test:deploy): chart, manifests, skaffold, image build and the
// kubelet-style run. Separate from the default suite: it needs root, buildah and ip netns.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/deploy/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 900_000,
    // The image build and pod run use both cores; the chart tests are quick either way.
    fileParallelism: false,
    reporters: ["default"],
  },
});
