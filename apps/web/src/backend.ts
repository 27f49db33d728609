import { setupWebGPU } from '@piflow/backend-webgpu';
import { InvalidArgumentError } from '@piflow/core';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import threadedFactorySource from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js?raw';
import * as tf from '@tensorflow/tfjs-core';

export type BackendName = 'webgpu' | 'webgl' | 'wasm';

export const backendOrder: readonly BackendName[] = ['webgpu', 'webgl', 'wasm'];

export interface BackendChoice {
  backend: BackendName;
  /** Threads of the wasm backend's pool (1 unless the page is cross-origin isolated); absent on other backends. */
  threads?: number;
  /** Backends tried before it, each with the reason it was not used (empty when WebGPU worked). */
  skipped: { backend: BackendName; reason: string }[];
  /** With `probe`: the warm time of the probe workload on each backend measured, fastest first. */
  probe?: { backend: BackendName; milliseconds: number }[];
}

/**
 * Milliseconds of a small workload shaped like the demo's networks (a 3×3 convolution over 16 digit-sized
 * 32-channel maps and a 512² matMul, result read back) on the active backend: one untimed run (shader
 * compilation, allocation), then the best of two.
 */
export async function probeBackend(): Promise<number> {
  const inputs = tf.tidy(() => ({
    x: tf.randomNormal([16, 28, 28, 32], 0, 1, 'float32', 1),
    w: tf.randomNormal([3, 3, 32, 32], 0, 0.1, 'float32', 2),
    a: tf.randomNormal([512, 512], 0, 1, 'float32', 3),
  }));
  const run = async () => {
    const started = performance.now();
    const y = tf.tidy(() => {
      const conv = tf.relu(tf.conv2d(inputs.x as tf.Tensor4D, inputs.w as tf.Tensor4D, 1, 'same'));
      return tf.add(tf.sum(conv), tf.sum(tf.matMul(inputs.a as tf.Tensor2D, inputs.a as tf.Tensor2D)));
    });
    await y.data();
    y.dispose();
    return performance.now() - started;
  };
  try {
    await run();
    return Math.min(await run(), await run());
  } finally {
    tf.dispose([inputs.x, inputs.w, inputs.a]);
  }
}

/** The most threads the demo gives the wasm backend (tfjs starts 8 pthread workers; small nets gain little past 4). */
export const maxWasmThreads = 4;

/**
 * Threads for the wasm backend: `requested` (the page's `?threads=`) or every core up to {@link maxWasmThreads},
 * and 1 when the page is not cross-origin isolated (threads need SharedArrayBuffer, which browsers give only to
 * pages served with COOP `same-origin` and COEP `require-corp`, as the demo's servers do).
 */
export function wasmThreads(
  requested: number | undefined,
  environment: { crossOriginIsolated: boolean; hardwareConcurrency: number },
): number {
  if (!environment.crossOriginIsolated) return 1;
  const wanted = requested ?? environment.hardwareConcurrency;
  return Math.max(1, Math.min(maxWasmThreads, Math.floor(wanted) || 1));
}

let wasmThreadCount: number | undefined;

/** How tfjs starts the script it hands its pthread workers: the module factory's source, from `toString()`. */
const FACTORY_PREFIX = 'var WasmBackendModuleThreadedSimd = ';

/**
 * Sets up tfjs's wasm backend with `threads` threads. Two things are adjusted while the module starts, and
 * restored after:
 * - tfjs caps its pool at half of `navigator.hardwareConcurrency` (it assumes two hardware threads per core),
 *   which is 1 thread on a 2-core machine: the page reports `2 · threads` cores;
 * - tfjs gives its workers the module factory as `factory.toString()`, which a minifying bundler breaks (the
 *   minified function refers to names outside it): the Blob it builds gets the package's own factory file.
 */
async function activateWasm(threads: number): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths({
    'tfjs-backend-wasm.wasm': wasmUrl,
    'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
  });
  const firstStart = tf.engine().registry.wasm === undefined;
  // One thread: the plain SIMD binary (the threaded one would start its 8 pthread workers anyway).
  if (firstStart && threads === 1) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (firstStart) wasm.setThreadsCount(threads);
  const shadow = firstStart && threads > 1;
  const NativeBlob = globalThis.Blob;
  if (shadow) {
    Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, value: 2 * threads });
    globalThis.Blob = class extends NativeBlob {
      constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
        const first = parts?.[0];
        const factory = typeof first === 'string' && first.startsWith(FACTORY_PREFIX);
        super(factory ? [threadedFactorySource] : parts, options);
      }
    };
  }
  try {
    const ok = await tf.setBackend('wasm');
    if (!ok || tf.getBackend() !== 'wasm') throw new Error("tfjs could not initialise the 'wasm' backend");
    await tf.ready();
  } finally {
    if (shadow) {
      // The own property shadowed Navigator.prototype's getter; removing it restores the real value.
      delete (navigator as { hardwareConcurrency?: number }).hardwareConcurrency;
      globalThis.Blob = NativeBlob;
    }
  }
  wasmThreadCount = wasm.getThreadsCount();
}

async function activate(name: BackendName, threads = 1): Promise<void> {
  if (name === 'wasm') {
    await activateWasm(threads);
    return;
  }
  if (name === 'webgpu') {
    // Adapter requests ask for featureLevel 'compatibility' (software GPUs offer only that), and piflow's
    // fused WGSL rollout kernels are registered.
    await setupWebGPU({ node: false });
    return;
  }
  await import('@tensorflow/tfjs-backend-webgl');
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`tfjs could not initialise the '${name}' backend`);
  await tf.ready();
}

/**
 * Makes the first backend of `order` that initialises the active tfjs backend: WebGPU (with piflow's fused
 * kernels), then WebGL, then wasm. Throws when none works, naming each with its reason.
 *
 * With `probe`, a WebGPU that initialises is not taken on trust: {@link probeBackend} runs on it and on wasm,
 * and the faster one is kept. A WebGPU adapter can be a software rasteriser (Mesa llvmpipe, SwiftShader) that
 * runs the same arithmetic many times slower than WebAssembly on the same CPU, and browsers do not always say
 * so in the adapter's info.
 */
export async function initBackend(
  order: readonly BackendName[] = backendOrder,
  options: { probe?: boolean; threads?: number } = {},
): Promise<BackendChoice> {
  if (!Array.isArray(order) || order.length === 0 || order.some((b) => !backendOrder.includes(b))) {
    throw new InvalidArgumentError('order', "a non-empty list of 'webgpu', 'webgl', 'wasm'", String(order));
  }
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new InvalidArgumentError('options.threads', 'an integer from 1 to 8', String(options.threads));
  }
  const withThreads = (choice: BackendChoice): BackendChoice =>
    choice.backend === 'wasm' ? { ...choice, threads: wasmThreadCount ?? 1 } : choice;
  const skipped: BackendChoice['skipped'] = [];
  for (const backend of order) {
    try {
      await activate(backend, threads);
    } catch (error) {
      skipped.push({ backend, reason: (error as Error)?.message ?? String(error) });
      continue;
    }
    if (!options.probe || backend !== 'webgpu') return withThreads({ backend, skipped });
    const gpu = await probeBackend();
    let cpu: number;
    try {
      await activate('wasm', threads);
      cpu = await probeBackend();
    } catch {
      await activate('webgpu');
      return { backend, skipped, probe: [{ backend: 'webgpu', milliseconds: gpu }] };
    }
    const probe: NonNullable<BackendChoice['probe']> = [
      { backend: 'webgpu' as const, milliseconds: gpu },
      { backend: 'wasm' as const, milliseconds: cpu },
    ].sort((a, b) => a.milliseconds - b.milliseconds);
    if (probe[0]!.backend === 'webgpu') {
      await activate('webgpu');
      return { backend: 'webgpu', skipped, probe };
    }
    skipped.push({
      backend: 'webgpu',
      reason: `slower than WebAssembly here: a probe took ${gpu.toFixed(0)} ms on WebGPU, ${cpu.toFixed(0)} ms on wasm`,
    });
    return withThreads({ backend: 'wasm', skipped, probe });
  }
  throw new Error(`No backend works here: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
}

/** The page's `?threads=` parameter (1 to 8), if given and valid. */
export function threadsFromQuery(search: string): number | undefined {
  const value = new URLSearchParams(search).get('threads');
  if (value === null || !/^[1-8]$/.test(value)) return undefined;
  return Number(value);
}

/** The order to try, from the page's `?backend=` parameter (that backend first), else WebGPU first. */
export function backendOrderFromQuery(search: string): { order: BackendName[]; requested?: BackendName } {
  const requested = new URLSearchParams(search).get('backend');
  if (requested && (backendOrder as readonly string[]).includes(requested)) {
    const first = requested as BackendName;
    return { order: [first, ...backendOrder.filter((b) => b !== first)], requested: first };
  }
  return { order: [...backendOrder] };
}
