import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/testing/index.ts', 'src/testing/rollout-benchmark.ts', 'src/wasm.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // tfjs packages are peers (the backends only for the testing entry): never bundle them
  external: ['vitest', /^@tensorflow\//],
});
