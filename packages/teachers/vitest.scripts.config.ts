import { createVitestConfig } from '@piflow/vitest-config';

// Scripts (training the tiny FLUX-shaped teacher, benchmarks) run through vitest for TypeScript and the
// @piflow/source condition, but never in the default test run.
export default createVitestConfig({ test: { include: ['scripts/**/*.script.ts'], testTimeout: 1_200_000 } });
