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
 */
export async function initBackend(order: readonly BackendName[] = backendOrder): Promise<BackendChoice> {
  if (!Array.isArray(order) || order.length === 0 || order.some((b) => !backendOrder.includes(b))) {
    throw new InvalidArgumentError('order', "a non-empty list of 'webgpu', 'webgl', 'wasm'", String(order));
  }
  const skipped: BackendChoice['skipped'] = [];
  for (const backend of order) {
    try {
      await activate(backend);
      return { backend, skipped };
    } catch (error) {
      skipped.push({ backend, reason: (error as Error)?.message ?? String(error) });
    }
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
