import { createVitestConfig } from '@piflow/vitest-config';

export default createVitestConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The end-to-end test builds the app and drives Chromium: it gets its own, longer limit.
    testTimeout: 60_000,
  },
});
