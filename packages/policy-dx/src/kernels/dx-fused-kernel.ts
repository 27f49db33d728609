import { canFuseRollout, ensureKernel, type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { DXPolicyState } from '../dx-policy';

/**
 * The fused DX rollout. A DX velocity u = (x − Σ_n w_n(σ)·X[n])/max(σ, eps) is linear in x with weights
 * that depend on σ only, so one Euler substep x' = x + Δ·u = (1 + f)·x − f·Σ_n w_n X[n] (f = Δ/max(σ, eps))
 * keeps x in span{x_start, X[0..N−1]} with coefficients shared by every position of a batch item:
 *   x_end = a·x_start + Σ_n c_n·X[n],   a ← (1 + f)·a,   c_n ← (1 + f)·c_n − f·w_n(σ).
 * The coefficients are accumulated in float64 over exactly the op-by-op σ grid (B·N numbers per item), and
 * the kernel is then a single pass over the data: N + 1 multiply-adds per element instead of ~6 ops over
 * the whole [B, N, …, C] grid at each of the substeps.
 */
export interface DXRolloutPlan {
  /** [B] coefficient of x_start. */
  readonly a: Float64Array;
  /** [B, N] coefficients of the grid entries. */
  readonly c: Float64Array;
}

export function planDXRollout(policy: DXPolicyState, segment: RolloutSegment): DXRolloutPlan {
  const grids = rolloutSigmaGrid(segment);
  const B = grids.length;
  const N = policy.x0Grid.shape[1]!;
  const a = new Float64Array(B).fill(1);
  const c = new Float64Array(B * N);
  const maxSteps = grids.reduce((m, g) => Math.max(m, g.length - 1), 0);
  const sigma = new Float32Array(B);
  const eps = Math.fround(policy.eps);
  for (let j = 0; j < maxSteps; j++) {
    // the op-by-op path evaluates σ and the step in float32
    for (let b = 0; b < B; b++) {
      const g = grids[b]!;
      sigma[b] = j < g.length - 1 ? g[j]! : g[g.length - 1]!;
    }
    const w = policy.weightsAt(sigma);
    for (let b = 0; b < B; b++) {
      const g = grids[b]!;
      if (j >= g.length - 1) continue;
      const f = Math.fround(g[j + 1]! - g[j]!) / Math.max(sigma[b]!, eps);
      a[b] = (1 + f) * a[b]!;
      for (let n = 0; n < N; n++) c[b * N + n] = (1 + f) * c[b * N + n]! - f * w[b * N + n]!;
    }
  }
  return { a, c };
}

/** out[b, i] = a_b·x[b, i] + Σ_n c_bn·grid[b, n, i] (i over the D = positions·C entries of an item). */
export function combineDXRollout(
  x: Float32Array,
  grid: Float32Array,
  plan: DXRolloutPlan,
  batch: number,
  numPoints: number,
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  const D = x.length / batch;
  const acc = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    const ab = plan.a[b]!;
    const o = b * D;
    for (let i = 0; i < D; i++) acc[i] = ab * x[o + i]!;
    for (let n = 0; n < numPoints; n++) {
      const cn = plan.c[b * numPoints + n]!;
      if (cn === 0) continue;
      const g = (b * numPoints + n) * D;
      for (let i = 0; i < D; i++) acc[i] = acc[i]! + cn * grid[g + i]!;
    }
    for (let i = 0; i < D; i++) out[o + i] = acc[i]!;
  }
  return out;
}

/** Name of the tfjs kernel that runs a whole DX rollout (registered lazily for 'cpu' and 'wasm'). */
export const DXFusedRolloutKernel = 'PiflowDXFusedRollout';

/** Backends with a built-in fused DX rollout. */
export const dxFusedBackends: readonly string[] = ['cpu', 'wasm'];

interface Attrs {
  plan: DXRolloutPlan;
}

type AnyBackend = {
  typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array;
  makeOutput?: (shape: number[], dtype: tf.DataType) => tf.TensorInfo;
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values: Float32Array) => tf.TensorInfo;
};

function kernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const be = backend as AnyBackend;
  const { plan } = attrs as unknown as Attrs;
  const x = inputs.x!;
  const grid = inputs.x0Grid!;
  const batch = x.shape[0]!;
  const numPoints = grid.shape[1]!;
  if (be.makeOutput && be.typedArrayFromHeap) {
    const out = be.makeOutput(x.shape, 'float32'); // allocate first: the heap may grow
    combineDXRollout(
      be.typedArrayFromHeap(x),
      be.typedArrayFromHeap(grid),
      plan,
      batch,
      numPoints,
      be.typedArrayFromHeap(out),
    );
    return out;
  }
  const values = combineDXRollout(
    be.readSync(x.dataId) as Float32Array,
    be.readSync(grid.dataId) as Float32Array,
    plan,
    batch,
    numPoints,
  );
  return be.makeTensorInfo!(x.shape, 'float32', values);
}

/**
 * The built-in fused DX rollout for the cpu and wasm backends (one kernel call). Returns undefined (the
 * caller then goes op by op) on other backends or while a gradient tape is recording.
 */
export function builtinDXFusedRollout(
  policy: DXPolicyState,
  x: tf.Tensor,
  segment: RolloutSegment,
): tf.Tensor | undefined {
  if (!canFuseRollout(x, policy.xSrc, dxFusedBackends)) return undefined;
  const plan = planDXRollout(policy, segment);
  ensureKernel(DXFusedRolloutKernel, tf.getBackend(), kernelFunc);
  return tf
    .engine()
    .runKernel(DXFusedRolloutKernel, { x, x0Grid: policy.x0Grid }, { plan } as unknown as tf.NamedAttrMap);
}
