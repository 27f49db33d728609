import { setupWebGPU } from '@piflow/backend-webgpu';
import { InvalidArgumentError } from '@piflow/core';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import * as tf from '@tensorflow/tfjs-core';

export type BackendName = 'webgpu' | 'webgl' | 'wasm';

export const backendOrder: readonly BackendName[] = ['webgpu', 'webgl', 'wasm'];

export interface BackendChoice {
  backend: BackendName;
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

async function activate(name: BackendName): Promise<void> {
  if (name === 'webgpu') {
    // Adapter requests ask for featureLevel 'compatibility' (software GPUs offer only that), and piflow's
    // fused WGSL rollout kernels are registered.
    await setupWebGPU({ node: false });
    return;
  }
  if (name === 'webgl') {
    await import('@tensorflow/tfjs-backend-webgl');
  } else {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths({
      'tfjs-backend-wasm.wasm': wasmUrl,
      'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
    });
  }
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
  options: { probe?: boolean } = {},
): Promise<BackendChoice> {
  if (!Array.isArray(order) || order.length === 0 || order.some((b) => !backendOrder.includes(b))) {
    throw new InvalidArgumentError('order', "a non-empty list of 'webgpu', 'webgl', 'wasm'", String(order));
  }
  const skipped: BackendChoice['skipped'] = [];
  for (const backend of order) {
    try {
      await activate(backend);
    } catch (error) {
      skipped.push({ backend, reason: (error as Error)?.message ?? String(error) });
      continue;
    }
    if (!options.probe || backend !== 'webgpu') return { backend, skipped };
    const gpu = await probeBackend();
    let cpu: number;
    try {
      await activate('wasm');
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
    return { backend: 'wasm', skipped, probe };
  }
  throw new Error(`No backend works here: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
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
