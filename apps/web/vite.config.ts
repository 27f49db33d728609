import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig } from 'vite';
import { piflowModels } from './vite/models-plugin.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Where the models come from: the repository's models/ folder, or PIFLOW_MODELS_DIR (relative to apps/web),
 * e.g. `PIFLOW_MODELS_DIR=.dev-models` for the 2-D stand-ins of scripts/train-dev-models.ts.
 */
const modelsDirectory = path.resolve(here, process.env.PIFLOW_MODELS_DIR ?? '../../models');
/** The image view's students: required from the repository's models/, optional in a development folder. */
const mnistModels = ['mnist/gm-4', 'fashion-mnist/gm-4'];

/**
 * Cross-origin isolation (COOP + COEP): browsers give SharedArrayBuffer, which the wasm backend's threads need,
 * only to pages served with these headers. A host of the built demo should send them too, or it runs on one thread.
 */
export const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  base: './',
  resolve: {
    // Sibling packages resolve to their TypeScript sources: no build of the workspace is needed first.
    conditions: ['@piflow/source', ...defaultClientConditions],
  },
  plugins: [
    piflowModels({
      directory: modelsDirectory,
      models: [
        'checkerboard/teacher',
        'checkerboard/gm-1',
        'checkerboard/gm-2',
        'checkerboard/gm-4',
        ...(process.env.PIFLOW_MODELS_DIR ? [] : mnistModels),
      ],
      optionalModels: process.env.PIFLOW_MODELS_DIR ? mnistModels : [],
    }),
  ],
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
  server: { host: '127.0.0.1', headers: isolationHeaders },
  preview: { host: '127.0.0.1', headers: isolationHeaders },
});
