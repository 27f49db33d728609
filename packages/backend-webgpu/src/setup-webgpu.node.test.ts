import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from '@piflow/core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  importDawn,
  LLVMPIPE_MAX_THREADS,
  llvmpipeThreadCount,
  setupWebGPU,
  WebGPUUnavailableError,
} from './setup-webgpu';

/** The highest N among this process's threads named llvmpipe-N (llvmpipe's rasterizer threads), or -1. */
function highestLlvmpipeThread(): number {
  let highest = -1;
  for (const task of readdirSync('/proc/self/task')) {
    const name = readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim();
    const match = /^llvmpipe-(\d+)$/.exec(name);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return highest;
}

describe('setupWebGPU in Node (Dawn)', () => {
  it('sets up the webgpu backend on Dawn with a compatibility (OpenGL ES) adapter', async () => {
    const setup = await setupWebGPU();
    expect(setup).toMatchObject({ backend: 'webgpu', platform: 'node' });
    expect(tf.getBackend()).toBe('webgpu');
    expect(process.env.EGL_PLATFORM).toBe('surfaceless');
    const adapter = await setup.gpu.requestAdapter();
    // Dawn's OpenGL ES backend offers only compatibility adapters: getting one shows the wrapping worked.
    expect(adapter?.info.description).toMatch(/OpenGL ES/);
    expect(adapter?.features.has('core-features-and-limits')).toBe(false);
    const backend = tf.backend() as unknown as WebGPUBackend;
    expect(backend.device.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    const sum = tf.add(tf.tensor1d([1, 2, 3]), tf.tensor1d([10, 20, 30]));
    expect(Array.from(await sum.data())).toEqual([11, 22, 33]);
    sum.dispose();
    // llvmpipe was started with the thread count setupWebGPU chose (unless the environment set one).
    const expected = Number(process.env.LP_NUM_THREADS ?? llvmpipeThreadCount(availableParallelism()) ?? 0);
    if (expected > 1) expect(highestLlvmpipeThread()).toBeGreaterThanOrEqual(expected - 1);
    // Later calls reuse the first setup.
    expect(await setupWebGPU({ setBackend: false })).toBe(setup);
  });

  it('a missing `webgpu` package gives an error naming it and the install command', async () => {
    const error = await importDawn('webgpu-package-that-is-not-installed').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebGPUUnavailableError);
    expect((error as Error).message).toMatch(/optional peer dependency `webgpu`/);
    expect((error as Error).message).toMatch(/npm install webgpu@0\.6/);
  });

  it('rejects bad options with InvalidArgumentError naming the option', async () => {
    const argument = async (fn: () => Promise<unknown>) => {
      const error = await fn().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      return (error as InvalidArgumentError).argument;
    };
    expect(await argument(() => setupWebGPU(42 as never))).toBe('options');
    expect(await argument(() => setupWebGPU({ featureLevel: 'fast' as never }))).toBe('options.featureLevel');
    expect(await argument(() => setupWebGPU({ node: 'yes' as never }))).toBe('options.node');
    expect(await argument(() => setupWebGPU({ node: null as never }))).toBe('options.node');
    for (const llvmpipeThreads of [-1, 1.5, LLVMPIPE_MAX_THREADS + 1, 'many', true]) {
      expect(await argument(() => setupWebGPU({ node: { llvmpipeThreads: llvmpipeThreads as never } }))).toBe(
        'options.node.llvmpipeThreads',
      );
    }
    expect(await argument(() => setupWebGPU({ node: { dawnOptions: 'backend=vulkan' as never } }))).toBe(
      'options.node.dawnOptions',
    );
  });

  it('llvmpipeThreadCount: twice the cores, at least 16, at most llvmpipe’s 32; none on one core', () => {
    expect(llvmpipeThreadCount(1)).toBeUndefined();
    expect(llvmpipeThreadCount(2)).toBe(16);
    expect(llvmpipeThreadCount(8)).toBe(16);
    expect(llvmpipeThreadCount(12)).toBe(24);
    expect(llvmpipeThreadCount(64)).toBe(LLVMPIPE_MAX_THREADS);
    expect(llvmpipeThreadCount(Number.NaN)).toBeUndefined();
  });
});
