import { existsSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, isWasmBatchMatMulFixInstalled } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { locateWasmFiles, setupWasm, wasmBinaryNames } from './setup-wasm';

describe('setupWasm', () => {
  it('locates the .wasm binaries in the installed package dist/ folder', () => {
    const dir = locateWasmFiles();
    expect(dir.endsWith(`${path.sep}dist${path.sep}`)).toBe(true);
    expect(dir).toContain(`${path.sep}@tensorflow${path.sep}tfjs-backend-wasm${path.sep}`);
    for (const name of wasmBinaryNames) expect(existsSync(path.join(dir, name))).toBe(true);
  });

  it('rejects a directory without the binaries before touching the wasm backend', async () => {
    await expect(setupWasm({ wasmDirectory: '/nonexistent-dir' })).rejects.toThrow(InvalidArgumentError);
    await expect(setupWasm({ wasmDirectory: '/nonexistent-dir' })).rejects.toThrow(
      /options.wasmDirectory.*lacks tfjs-backend-wasm.wasm/,
    );
    await expect(setupWasm({ batchMatMulFix: 'yes' as unknown as boolean })).rejects.toThrow(
      /options.batchMatMulFix/,
    );
  });

  it('sets the paths, installs the BatchMatMul fix, and the wasm backend then initialises and computes', async () => {
    const setup = await setupWasm();
    expect(setup).toEqual({ wasmDirectory: locateWasmFiles(), batchMatMulFix: true, threads: 1 });
    expect(isWasmBatchMatMulFixInstalled()).toBe(true);
    expect(await tf.setBackend('wasm')).toBe(true);
    const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]), false, false);
    expect(Array.from(await y.data())).toEqual([11]);
    y.dispose();
    // A second call keeps the directory in use and stays valid after initialisation.
    expect(await setupWasm()).toEqual(setup);
    // The thread pool starts with the backend: asking for threads now is refused, and nothing changes.
    await expect(setupWasm({ threads: 2 })).rejects.toThrow(/before the wasm backend initialises/);
    expect(await setupWasm({ threads: 1 })).toEqual(setup);
  });

  it('reports a loader that cannot provide the package', async () => {
    await expect(
      setupWasm({
        loader: async () => {
          throw Object.assign(new Error("Cannot find package '@tensorflow/tfjs-backend-wasm'"), {
            code: 'ERR_MODULE_NOT_FOUND',
          });
        },
      }),
    ).rejects.toThrow('not installed (@tensorflow/tfjs-backend-wasm cannot be found)');
  });
});
