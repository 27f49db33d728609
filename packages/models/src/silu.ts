import { type KernelBackend, kernelIO } from '@piflow/core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { siluSimd } from './silu-simd';

/**
 * SiLU, x·σ(x). On the cpu and wasm backends its gradient is one fused kernel, dx = dy·s·(1 + x·(1 − s)) from
 * the input and the forward's s = σ(x) (one pass, where the composed ops' autodiff makes about six); the
 * forward is tfjs's sigmoid and multiply (XNNPACK's sigmoid on wasm is faster than anything simpler we could
 * write). On wasm the pass is WebAssembly SIMD in the backend's heap (silu-simd.ts), on cpu a JS loop. Other
 * backends (WebGPU) and non-float32 inputs run the composed ops throughout.
 */
export function silu(x: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && hasFusedKernels(tf.getBackend())) return fused(x);
  return composedSilu(x);
}

/** SiLU from tfjs ops (the reference the fused kernels are tested against). */
export function composedSilu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

const BACKWARD = 'PiflowSiluGrad';
const FUSED_BACKENDS = ['cpu', 'wasm'] as const;

function fused(x: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const s = tf.sigmoid(input);
    save([input, s]);
    return {
      value: tf.mul(input, s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(BACKWARD, { dy, x: saved[0]!, s: saved[1]! }) as tf.Tensor,
    };
  });
  return (op as (a: tf.Tensor) => tf.Tensor)(x);
}

interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: KernelBackend;
}

function backwardKernel({ inputs, backend }: KernelArgs): TensorInfo {
  const x = inputs.x!;
  const access = kernelIO(backend);
  const { infos, views } = access.outputs([x.shape]);
  const [dx] = views() as [Float32Array];
  const [xs, s, dy] = [x, inputs.s!, inputs.dy!].map((t) => access.read(t)) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const simd = access.memory ? siluSimd(access.memory) : undefined;
  const done = simd ? xs.length - (xs.length % 4) : 0;
  if (simd) simd.siluGrad(xs.byteOffset, s.byteOffset, dy.byteOffset, dx.byteOffset, done / 4);
  for (let i = done; i < xs.length; i++) dx[i] = dy[i]! * s[i]! * (1 + xs[i]! * (1 - s[i]!));
  return infos[0]!;
}

function hasFusedKernels(backend: string): boolean {
  if (!(FUSED_BACKENDS as readonly string[]).includes(backend)) return false;
  if (!tf.getKernel(BACKWARD, backend)) {
    tf.registerKernel({ kernelName: BACKWARD, backendName: backend, kernelFunc: backwardKernel as never });
  }
  return true;
}
