import { defineConfig } from 'vitest/config';

// Self-contained (no shared config package), so the folder works as it stands when copied out of the piflow
// repository. The conformance suites run on the cpu and wasm backends (PIFLOW_TEST_BACKENDS=cpu to narrow).
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
