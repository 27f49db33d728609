// The Vite plugin that serves the models in `vite dev` and copies them into builds, on real files and a real
// dev server on 127.0.0.1.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build, createServer } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import { piflowModels } from '../vite/models-plugin';

const work = mkdtempSync(path.join(tmpdir(), 'piflow-models-plugin-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// A models folder with one listed model, one unlisted one, and an app that is just an index.html.
const models = path.join(work, 'models');
const weights = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) % 256);
for (const name of ['toy/teacher', 'toy/secret']) {
  mkdirSync(path.join(models, name), { recursive: true });
  writeFileSync(path.join(models, name, 'model.json'), JSON.stringify({ name }));
  writeFileSync(path.join(models, name, 'weights.bin'), weights);
}
// A folder written by saveModelDirectory now: model.json lists its weights file (model.safetensors).
mkdirSync(path.join(models, 'toy/saved'), { recursive: true });
const studentJSON = {
  format: 'piflow-model',
  weightsManifest: [{ paths: ['model.safetensors'], weights: [] }],
};
writeFileSync(path.join(models, 'toy/saved', 'model.json'), JSON.stringify(studentJSON));
writeFileSync(path.join(models, 'toy/saved', 'model.safetensors'), weights);
const app = path.join(work, 'app');
mkdirSync(app);
writeFileSync(path.join(app, 'index.html'), '<!doctype html><title>app</title>');

describe('piflowModels', () => {
  it('serves the listed model files in vite dev, byte for byte, and nothing else from the folder', async () => {
    const server = await createServer({
      root: app,
      configFile: false,
      logLevel: 'silent',
      server: { host: '127.0.0.1', port: 0 },
      plugins: [piflowModels({ directory: models, models: ['toy/teacher'] })],
    });
    await server.listen();
    try {
      const { port } = server.httpServer!.address() as AddressInfo;
      const base = `http://127.0.0.1:${port}/models/`;
      const json = await fetch(`${base}toy/teacher/model.json`);
      expect(json.headers.get('content-type')).toBe('application/json');
      expect(await json.json()).toEqual({ name: 'toy/teacher' });
      const bin = await fetch(`${base}toy/teacher/weights.bin`);
      expect(bin.headers.get('content-type')).toBe('application/octet-stream');
      expect(new Uint8Array(await bin.arrayBuffer())).toEqual(weights);
      // Unlisted folders and paths outside the folder are not served as model files.
      for (const other of ['toy/secret/weights.bin', '../app/index.html', 'toy/teacher/other.bin']) {
        const response = await fetch(`${base}${other}`);
        expect(response.headers.get('content-type') ?? '').not.toBe('application/octet-stream');
        expect(response.headers.get('content-type') ?? '').not.toBe('application/json');
      }
    } finally {
      await server.close();
    }
  });

  it('copies only the listed models into the build, with the weights file each model.json lists', async () => {
    const outDir = path.join(work, 'dist');
    await build({
      root: app,
      configFile: false,
      logLevel: 'silent',
      build: { outDir, emptyOutDir: true },
      plugins: [piflowModels({ directory: models, models: ['toy/teacher', 'toy/saved'] })],
    });
    expect(new Uint8Array(readFileSync(path.join(outDir, 'models/toy/saved/model.safetensors')))).toEqual(
      weights,
    );
    expect(existsSync(path.join(outDir, 'models/toy/saved/weights.bin'))).toBe(false);
    expect(new Uint8Array(readFileSync(path.join(outDir, 'models/toy/teacher/weights.bin')))).toEqual(
      weights,
    );
    expect(JSON.parse(readFileSync(path.join(outDir, 'models/toy/teacher/model.json'), 'utf8'))).toEqual({
      name: 'toy/teacher',
    });
    expect(existsSync(path.join(outDir, 'models/toy/secret'))).toBe(false);
  });

  it('copies optional models that are there and leaves out, with a warning, those that are not', async () => {
    const outDir = path.join(work, 'dist-optional');
    const warnings: string[] = [];
    await build({
      root: app,
      configFile: false,
      logLevel: 'silent',
      build: {
        outDir,
        emptyOutDir: true,
        rollupOptions: { onwarn: (warning) => void warnings.push(String(warning.message)) },
      },
      plugins: [
        piflowModels({
          directory: models,
          models: ['toy/teacher'],
          optionalModels: ['toy/secret', 'toy/absent'],
        }),
      ],
    });
    expect(new Uint8Array(readFileSync(path.join(outDir, 'models/toy/secret/weights.bin')))).toEqual(weights);
    expect(existsSync(path.join(outDir, 'models/toy/absent'))).toBe(false);
    expect(warnings.join('\n')).toMatch(/toy\/absent.*missing: left out/);
  });

  it('stops the build with a message saying where models come from when one is missing', async () => {
    await expect(
      build({
        root: app,
        configFile: false,
        logLevel: 'silent',
        build: { outDir: path.join(work, 'dist-missing'), emptyOutDir: true },
        plugins: [piflowModels({ directory: models, models: ['toy/teacher', 'toy/student'] })],
      }),
    ).rejects.toThrow(/missing .*toy\/student\/model\.json.*train-dev-models.*PIFLOW_MODELS_DIR/s);
  });
});
