import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/testing/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // tfjs packages and vitest (the testing entry's) are peers: never bundle them
  external: ['vitest', /^@tensorflow\//],
});
