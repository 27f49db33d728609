import { createVitestConfig } from '@piflow/vitest-config';

// The suites start real server processes (and nginx): run the files one after another.
export default createVitestConfig({
  test: { fileParallelism: false, testTimeout: 120_000, hookTimeout: 120_000 },
});
