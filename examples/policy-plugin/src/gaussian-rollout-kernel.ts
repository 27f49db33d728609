import { canFuseRollout, ensureKernel, type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { GaussianPolicy } from './gaussian-policy';

/**
 * A fused rollout as a tfjs kernel (the tfjs pattern: a kernel name, one registration per backend, and a thin
 * call through `runKernel`). It runs every Euler substep of a segment in one pass over plain typed arrays, in
 * float64, with the same σ grid as core's op-by-op rollout (`rolloutSigmaGrid`).
 */
export const GaussianRolloutKernel = 'PiflowGaussianRollout';

/** Backends this package registers the kernel for. */
export const gaussianFusedBackends = ['cpu', 'wasm'] as const;

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
 * The fused rollout of a Gaussian policy on the current backend, or undefined when this backend has no
 * kernel (core's `rollout` then goes op by op) or a gradient tape is recording (the kernel has no gradient).
 */
export function gaussianFusedRollout(
  policy: GaussianPolicy,
  x: tf.Tensor,
  segment: RolloutSegment,
): tf.Tensor | undefined {
  if (!canFuseRollout(x, policy.xSrc, gaussianFusedBackends)) return undefined;
  ensureKernel(GaussianRolloutKernel, tf.getBackend(), gaussianRolloutKernelFunc);
  const attrs: Attrs = {
    grids: rolloutSigmaGrid(segment).map((g) => Array.from(g)),
    policySigmaSrc: Array.from(policy.sigmaSrc),
  };
  return tf
    .engine()
    .runKernel(
      GaussianRolloutKernel,
      { x, xSrc: policy.xSrc, mean: policy.mean, variance: policy.variance },
      attrs as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
}
