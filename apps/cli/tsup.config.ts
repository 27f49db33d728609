import { cpSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The shipped models the installed `piflow` finds (`--model checkerboard`, `--teacher mnist`, `--teacher
 * fashion-mnist`, eval-mnist's students and classifiers): copied from the repository's models/ (their single
 * source) into this package's models/ folder (git-ignored, listed in package.json `files`) after every build.
 */
export const shippedModels = [
  'checkerboard/teacher',
  'checkerboard/gm-1',
  'checkerboard/gm-2',
  'checkerboard/gm-4',
  'mnist/teacher',
  'mnist/classifier',
  'mnist/gm-1',
  'mnist/gm-2',
  'mnist/gm-4',
  'mnist/dx-4',
  'mnist/x0-4',
  'fashion-mnist/teacher',
  'fashion-mnist/classifier',
  'fashion-mnist/gm-4',
];

function copyShippedModels(): void {
  const source = path.resolve(here, '../../models');
  const target = path.join(here, 'models');
  rmSync(target, { recursive: true, force: true });
  for (const model of shippedModels) {
    if (!existsSync(path.join(source, model))) throw new Error(`models/${model} is missing`);
    cpSync(path.join(source, model), path.join(target, model), { recursive: true });
  }
  cpSync(path.join(source, 'README.md'), path.join(target, 'README.md'));
}

export default defineConfig({
  entry: ['src/main.ts'],
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  banner: { js: '#!/usr/bin/env node' },
  onSuccess: async () => copyShippedModels(),
});
