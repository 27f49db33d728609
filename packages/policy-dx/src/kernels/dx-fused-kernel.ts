import { type FusedRolloutKernel, type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
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
  plan: { readonly a: ArrayLike<number>; readonly c: ArrayLike<number> },
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

/**
 * The tfjs kernel name of the fused DX rollout. Every backend registers its kernel under this one name:
 * @piflow/policy-dx provides cpu and wasm (`dxFusedRolloutKernel.kernels`, registered on first use by core's
 * `runFusedRollout`), @piflow/backend-webgpu registers 'webgpu'.
 */
export const DX_FUSED_ROLLOUT_KERNEL = 'PiflowDXFusedRollout';

/**
 * Attributes of a fused DX rollout call, the same on every backend: the plan (planDXRollout, plain JS from the
 * policy and the segment, in float64) as plain numbers. Inputs, the same on every backend: `x`
 * [B, …positions, C] and `x0Grid` [B, N, …positions, C]. The output has x's shape.
 */
export interface DXFusedRolloutAttrs {
  /** [B] coefficient of x_start per item. */
  a: number[];
  /** [B·N] coefficients of the grid entries per item. */
  c: number[];
  /** Grid entries N. */
  numPoints: number;
}

/** The attributes of a fused rollout of `policy` over `segment` (its plan). */
export function dxFusedRolloutAttrs(policy: DXPolicyState, segment: RolloutSegment): DXFusedRolloutAttrs {
  const { a, c } = planDXRollout(policy, segment);
  return { a: Array.from(a), c: Array.from(c), numPoints: policy.x0Grid.shape[1]! };
}

type AnyBackend = {
  typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array;
  makeOutput?: (shape: number[], dtype: tf.DataType) => tf.TensorInfo;
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values: Float32Array) => tf.TensorInfo;
};

/** The cpu and wasm kernel: the plan's one combination, a single pass over x and the grid. */
function dxFusedRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const be = backend as AnyBackend;
  const plan = attrs as unknown as DXFusedRolloutAttrs;
  const x = inputs.x!;
  const grid = inputs.x0Grid!;
  const batch = x.shape[0]!;
  const numPoints = plan.numPoints;
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
 * The DX family's fused rollout kernel: its name and the cpu and wasm kernels this package provides
 * (registered on first use). Other backends register theirs under the same name (@piflow/backend-webgpu).
 */
export const dxFusedRolloutKernel: FusedRolloutKernel = {
  kernelName: DX_FUSED_ROLLOUT_KERNEL,
  kernels: {
    cpu: dxFusedRolloutKernelFunc as tf.KernelFunc,
    wasm: dxFusedRolloutKernelFunc as tf.KernelFunc,
  },
};
