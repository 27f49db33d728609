import {
  canFuseRollout,
  type FusedRolloutCall,
  type FusedRolloutKernel,
  type RolloutSegment,
  rolloutSigmaGrid,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { GaussianPolicy } from './gaussian-policy';

/**
 * A fused rollout as a tfjs kernel (the tfjs pattern: one kernel name, one kernel per backend, dispatched by
 * core's `runFusedRollout` through `runKernel`). It runs every Euler substep of a segment in one pass over plain
 * typed arrays, in float64, with the same σ grid as core's op-by-op rollout (`rolloutSigmaGrid`). Another
 * package (a GPU backend, say) can register its own kernel for its backend under the same name.
 */
export const GAUSSIAN_FUSED_ROLLOUT_KERNEL = 'PiflowGaussianRollout';

/** Attributes of a call: what the kernel needs besides its inputs x, xSrc, mean and variance. */
interface Attrs {
  /** Per batch item, the σ values visited (first = σ_src of the segment). */
  grids: number[][];
  /** Per batch item, the policy's own σ_src. */
  policySigmaSrc: number[];
}

interface BackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeTensorInfo?(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
  makeOutput?(shape: number[], dtype: 'float32', memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
}

/** The cpu and wasm kernel. */
function gaussianRolloutKernelFunc({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x, xSrc, mean, variance } = inputs as Record<'x' | 'xSrc' | 'mean' | 'variance', tf.TensorInfo>;
  const { grids, policySigmaSrc } = attrs as unknown as Attrs;
  const b = backend as BackendLike;
  const xs = b.readSync(x.dataId);
  const src = b.readSync(xSrc.dataId);
  const mu = b.readSync(mean.dataId);
  const v = b.readSync(variance.dataId);
  const B = x.shape[0]!;
  const per = xs.length / B;
  const out = new Float32Array(xs.length);
  for (let batch = 0; batch < B; batch++) {
    const grid = grids[batch]!;
    const ss = policySigmaSrc[batch]!;
    const alphaSquared = ((1 - ss) / ss) ** 2;
    const beta = (1 - ss) / (ss * ss);
    for (let i = batch * per; i < (batch + 1) * per; i++) {
      let xi = xs[i]!;
      const m = mu[i]!;
      const vi = v[i]!;
      const betaSrc = beta * src[i]!;
      for (let j = 0; j + 1 < grid.length; j++) {
        const s = grid[j]!;
        const t = 1 - s;
        const numerator = s * (xi - m) - vi * t * xi + s * vi * (betaSrc - alphaSquared * xi);
        const denominator = Math.max(vi * t * t + s * s * (1 - vi * alphaSquared), 1e-30);
        xi += (numerator / denominator) * (grid[j + 1]! - s);
      }
      out[i] = xi;
    }
  }
  if (typeof b.makeTensorInfo === 'function' && tf.getBackend() !== 'wasm') {
    return b.makeTensorInfo(x.shape, 'float32', out);
  }
  return b.makeOutput!(x.shape, 'float32', undefined, out);
}

/**
 * The family's fused rollout kernel (its `fusedRollout`): the name, and the kernels this package provides,
 * which core registers for the active backend on first use (importing the package registers nothing).
 */
export const gaussianFusedRolloutKernel: FusedRolloutKernel = {
  kernelName: GAUSSIAN_FUSED_ROLLOUT_KERNEL,
  kernels: { cpu: gaussianRolloutKernelFunc, wasm: gaussianRolloutKernelFunc },
};

/**
 * The fused rollout call of a Gaussian policy over `segment` (what `GaussianPolicy.fusedRolloutCall` returns),
 * or undefined when x is not a float32 tensor of x_src's shape (core's `rollout` then goes op by op). Core runs
 * it on the active backend's kernel, when there is one and no gradient tape records (the kernel has no
 * gradient).
 */
export function gaussianFusedRolloutCall(
  policy: GaussianPolicy,
  x: tf.Tensor,
  segment: RolloutSegment,
): FusedRolloutCall | undefined {
  if (!canFuseRollout(x, policy.xSrc)) return undefined;
  const attrs: Attrs = {
    grids: rolloutSigmaGrid(segment).map((g) => Array.from(g)),
    policySigmaSrc: Array.from(policy.sigmaSrc),
  };
  return {
    kernel: gaussianFusedRolloutKernel,
    inputs: { x, xSrc: policy.xSrc, mean: policy.mean, variance: policy.variance },
    attrs: attrs as unknown as tf.NamedAttrMap,
  };
}
