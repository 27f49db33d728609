import { InvalidArgumentError } from '@piflow/core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { type BackendCandidate, cpuCandidate } from './backend-candidates';
import { NoBackendAvailableError } from './errors';
import type { ModuleLoader } from './module-loader';
import { createBackendRegistry, resolveBackend } from './resolve-backend';

/**
 * Stands in for `@tensorflow/tfjs-node-gpu`, which cannot be installed on this project's machines: like the
 * real package, importing it registers a tfjs backend named 'tensorflow' (here the cpu backend's kernels).
 */
function fakeTfjsNodeGpuModule(): { version: string } {
  tf.registerBackend('tensorflow', () => new MathBackendCPU(), 3);
  for (const kernel of tf.getKernelsForBackend('cpu')) {
    if (!tf.getKernel(kernel.kernelName, 'tensorflow'))
      tf.registerKernel({ ...kernel, backendName: 'tensorflow' });
  }
  return { version: 'fake-for-tests' };
}

/** A loader that counts calls and delegates to real `import()` unless overridden for a specifier. */
function countingLoader(overrides: Record<string, () => unknown> = {}) {
  const calls: string[] = [];
  const loader: ModuleLoader = async (specifier) => {
    calls.push(specifier);
    const override = overrides[specifier];
    return override ? override() : import(/* @vite-ignore */ specifier);
  };
  return { loader, calls };
}

afterEach(async () => {
  if (tf.findBackend('tensorflow') || tf.findBackendFactory('tensorflow')) tf.removeBackend('tensorflow');
  await tf.setBackend('cpu');
});

describe('resolveBackend', () => {
  it('on this machine (no native packages) chooses webgpu or wasm and says why tfjs-node(-gpu) were skipped', async () => {
    const { loader } = countingLoader();
    const result = await resolveBackend({ loader });
    expect(['webgpu', 'wasm']).toContain(result.name);
    expect(tf.getBackend()).toBe(result.backendName);
    const gpu = result.skipped.find((s) => s.name === 'tfjs-node-gpu');
    const node = result.skipped.find((s) => s.name === 'tfjs-node');
    expect(gpu?.reason).toMatch(/^not installed \(@tensorflow\/tfjs-node-gpu cannot be found\)/);
    expect(gpu?.installHint).toMatch(/CUDA/);
    expect(node?.reason).toMatch(/^not installed/);
    expect(result.skipped.map((s) => s.name)).toEqual(
      ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'].filter((n) => n !== result.name),
    );
    expect(result.skipped.at(-1)?.reason).toBe(`not tried: "${result.name}" comes first`);
  });

  it('chooses tfjs-node-gpu first when the loader provides it, and activates its backend', async () => {
    const { loader, calls } = countingLoader({ '@tensorflow/tfjs-node-gpu': fakeTfjsNodeGpuModule });
    const result = await resolveBackend({ loader });
    expect(result).toMatchObject({ name: 'tfjs-node-gpu', backendName: 'tensorflow' });
    expect(tf.getBackend()).toBe('tensorflow');
    expect(calls).toEqual(['@tensorflow/tfjs-node-gpu']);
    expect(result.skipped.map((s) => [s.name, s.reason])).toEqual([
      ['tfjs-node', 'not tried: "tfjs-node-gpu" comes first'],
      ['webgpu', 'not tried: "tfjs-node-gpu" comes first'],
      ['wasm', 'not tried: "tfjs-node-gpu" comes first'],
      ['cpu', 'not tried: "tfjs-node-gpu" comes first'],
    ]);
    // The backend really computes.
    const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
    expect(Array.from(await y.data())).toEqual([11]);
    y.dispose();
  });

  it('honours prefer (a name or an ordered list) and falls back by priority', async () => {
    const { loader } = countingLoader({ '@tensorflow/tfjs-node-gpu': fakeTfjsNodeGpuModule });
    const wasm = await resolveBackend({ loader, prefer: 'wasm' });
    expect(wasm.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(wasm.skipped.map((s) => s.name)).toEqual(['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'cpu']);

    const listed = await resolveBackend({ loader, prefer: ['tfjs-node', 'cpu'] });
    expect(listed.name).toBe('cpu');
    expect(listed.skipped[0]).toMatchObject({
      name: 'tfjs-node',
      reason: expect.stringMatching(/^not installed/),
    });

    // Cached: the same loader reuses its registry, so tfjs-node was loaded once across both calls.
    const again = await resolveBackend({ loader, prefer: ['tfjs-node', 'cpu'] });
    expect(again.name).toBe('cpu');
  });

  it('initialises each candidate once: a failure is cached with its reason', async () => {
    const { loader, calls } = countingLoader();
    const registry = createBackendRegistry({ loader });
    await registry.resolve({ prefer: ['tfjs-node', 'cpu'], fallback: false });
    await registry.resolve({ prefer: ['tfjs-node', 'cpu'], fallback: false });
    expect(calls.filter((c) => c === '@tensorflow/tfjs-node')).toHaveLength(1);
    expect(calls.filter((c) => c === '@tensorflow/tfjs-backend-cpu')).toHaveLength(1);
  });

  it('with fallback false tries only the preferred candidates and reports the others as excluded', async () => {
    const result = await createBackendRegistry().resolve({ prefer: 'cpu', fallback: false });
    expect(result.name).toBe('cpu');
    expect(result.skipped.map((s) => s.reason)).toEqual(
      Array(4).fill('not tried: not in `prefer` and `fallback` is false'),
    );
  });

  it('throws one error naming every backend with its reason and install hint when nothing works', async () => {
    const registry = createBackendRegistry();
    const error = await registry
      .resolve({ prefer: ['tfjs-node-gpu', 'tfjs-node'], fallback: false })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoBackendAvailableError);
    const failures = (error as NoBackendAvailableError).failures;
    expect(failures.map((f) => f.name)).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    const message = (error as Error).message;
    expect(message).toMatch(/No tfjs backend could be initialised/);
    expect(message).toMatch(/tfjs-node-gpu: not installed/);
    expect(message).toMatch(/npm i @tensorflow\/tfjs-node-gpu@4\.22\.0 .*CUDA 11\.2 and cuDNN 8\.1/);
    expect(message).toMatch(/tfjs-node: not installed/);
  });

  it('lists all five candidates when the loader can load nothing', async () => {
    const loader: ModuleLoader = async (specifier) => {
      throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
    };
    const error = (await createBackendRegistry({ loader })
      .resolve()
      .catch((e: unknown) => e)) as NoBackendAvailableError;
    expect(error).toBeInstanceOf(NoBackendAvailableError);
    expect(error.failures.map((f) => f.name)).toEqual([
      'tfjs-node-gpu',
      'tfjs-node',
      'webgpu',
      'wasm',
      'cpu',
    ]);
    for (const f of error.failures) {
      expect(f.reason).toMatch(/not installed/);
      expect(error.message).toContain(f.installHint);
    }
  });

  it('reports a package that loads but registers no backend, and a missing setupWebGPU', async () => {
    const { loader } = countingLoader({
      '@tensorflow/tfjs-node-gpu': () => ({}),
      '@piflow/backend-webgpu': () => ({ somethingElse: 1 }),
    });
    const result = await resolveBackend({ loader, prefer: ['tfjs-node-gpu', 'webgpu', 'cpu'] });
    expect(result.name).toBe('cpu');
    expect(result.skipped[0]?.reason).toMatch(/loaded but registered no tfjs backend "tensorflow"/);
    expect(result.skipped[1]?.reason).toMatch(/exports no setupWebGPU function/);
  });

  it('reports a setupWebGPU that throws (e.g. no adapter)', async () => {
    const { loader } = countingLoader({
      '@piflow/backend-webgpu': () => ({
        setupWebGPU: async () => {
          throw new Error('No WebGPU adapter: install the `webgpu` package (Dawn)');
        },
      }),
    });
    const result = await resolveBackend({ loader, prefer: ['webgpu', 'cpu'] });
    expect(result.skipped[0]).toMatchObject({
      name: 'webgpu',
      reason: 'setupWebGPU failed: No WebGPU adapter: install the `webgpu` package (Dawn)',
    });
  });

  it('orders registered candidates by priority', async () => {
    const custom: BackendCandidate = {
      name: 'custom-cpu',
      backendName: 'custom-cpu',
      priority: 100,
      installHint: 'nothing to install',
      async init() {
        if (!tf.findBackendFactory('custom-cpu')) {
          tf.registerBackend('custom-cpu', () => new MathBackendCPU());
          for (const kernel of tf.getKernelsForBackend('cpu')) {
            tf.registerKernel({ ...kernel, backendName: 'custom-cpu' });
          }
        }
      },
    };
    const registry = createBackendRegistry({ candidates: [cpuCandidate] });
    registry.register(custom);
    expect(registry.candidates().map((c) => c.name)).toEqual(['custom-cpu', 'cpu']);
    expect(() => registry.register(custom)).toThrow(/registered twice/);
    const result = await registry.resolve();
    expect(result.name).toBe('custom-cpu');
    expect(tf.getBackend()).toBe('custom-cpu');
  });

  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    await createBackendRegistry().resolve({ prefer: 'cpu' });
    await createBackendRegistry().resolve({ prefer: 'wasm' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('validates its arguments', async () => {
    await expect(resolveBackend({ prefer: 'cuda' })).rejects.toThrow(InvalidArgumentError);
    await expect(resolveBackend({ prefer: 'cuda' })).rejects.toThrow(
      /Invalid argument `options.prefer`: expected one of "tfjs-node-gpu", "tfjs-node", "webgpu", "wasm", "cpu"/,
    );
    await expect(resolveBackend({ prefer: ['wasm', 3 as unknown as string] })).rejects.toThrow(
      /options.prefer\[1\]/,
    );
    await expect(resolveBackend({ prefer: [] })).rejects.toThrow(/non-empty array/);
    await expect(resolveBackend({ fallback: 'no' as unknown as boolean })).rejects.toThrow(
      /options.fallback/,
    );
    await expect(resolveBackend({ loader: 'import' as unknown as ModuleLoader })).rejects.toThrow(
      /options.loader/,
    );
    expect(() => createBackendRegistry().register({ name: 'x' } as BackendCandidate)).toThrow(
      InvalidArgumentError,
    );
  });
});
