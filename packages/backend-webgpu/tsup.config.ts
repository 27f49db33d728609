import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/register.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // Loaded at run time (after navigator.gpu exists), never bundled.
  external: ['webgpu', '@tensorflow/tfjs-backend-webgpu'],
});
