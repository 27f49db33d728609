import { createVitestConfig } from '@piflow/vitest-config';

// Packing, installing from the registry and `changeset version` take seconds each on a busy machine.
export default createVitestConfig({ test: { testTimeout: 240_000, hookTimeout: 240_000 } });
