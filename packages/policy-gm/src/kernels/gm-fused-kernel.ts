import {
  assertOneOf,
  FusedRolloutDeclined,
  type FusedRolloutKernel,
  type RolloutSegment,
} from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import { gmRolloutJS } from './gm-rollout-js';
import { type GMRolloutArrays, type GMRolloutPlan, planGMRollout } from './gm-rollout-plan';
import { gmRolloutSimd } from './gm-rollout-simd';

/**
 * The tfjs kernel name of the fused GM rollout. Every backend registers its kernel under this one name:
 * @piflow/policy-gm provides cpu and wasm (`gmFusedRolloutKernel.kernels`, registered on first use by core's
 * `runFusedRollout`), @piflow/backend-webgpu registers 'webgpu'.
 */
export const GM_FUSED_ROLLOUT_KERNEL = 'PiflowGMFusedRollout';

/**
 * Attributes of a fused GM rollout call, the same on every backend: the policy's σ_src and the rollout
 * segment (`RolloutSegment`, as plain numbers). What a backend needs beyond that (a plan, a table) its kernel
 * computes from these.
 *
 * Inputs, the same on every backend: `x` and `xSrc` [B, …positions, C], `means` [B, …positions, K, C],
 * `logweights` [B, …positions, K], `variance` [B] — the x0-space state of a GMPolicy (after temperature and
 * dropout). The output has x's shape.
 */
export interface GMFusedRolloutAttrs {
  /** [B] the policy's own σ_src. */
  policySigmaSrc: number[];
  /** [B] where the segment starts. */
  sigmaSrc: number[];
  /** [B] where it ends. */
  sigmaDst: number[];
  /** Euler substeps per unit of raw time. */
  substeps: number;
  /** Time-warp shift of the substep grid. */
  shift: number;
}

/** The attributes of a fused GM rollout over `segment` for a policy built at `policySigmaSrc`. */
export function gmFusedRolloutAttrs(
  policySigmaSrc: ArrayLike<number>,
  segment: RolloutSegment,
): GMFusedRolloutAttrs {
  return {
    policySigmaSrc: Array.from(policySigmaSrc),
    sigmaSrc: Array.from(segment.sigmaSrc),
    sigmaDst: Array.from(segment.sigmaDst),
    substeps: segment.substeps,
    shift: segment.shift,
  };
}

/** The rollout segment of a fused GM rollout call's attributes. */
export function gmFusedRolloutSegment(attrs: GMFusedRolloutAttrs): RolloutSegment {
  return {
    sigmaSrc: Float32Array.from(attrs.sigmaSrc),
    sigmaDst: Float32Array.from(attrs.sigmaDst),
    substeps: attrs.substeps,
    shift: attrs.shift,
  };
}

export type GMFusedImplementation = 'auto' | 'simd' | 'js';

let implementation: GMFusedImplementation = 'auto';

/**
 * Chooses the built-in kernel's inner loop: 'auto' (WebAssembly SIMD where available, else JavaScript),
 * 'simd' (SIMD or nothing: the rollout falls back to op by op) or 'js'. Returns the previous choice.
 */
export function setGMFusedImplementation(choice: GMFusedImplementation): GMFusedImplementation {
  assertOneOf('choice', choice, ['auto', 'simd', 'js']);
  const previous = implementation;
  implementation = choice;
  return previous;
}

/** Runs the fused rollout on flat arrays with the chosen implementation (undefined: none could run). */
export function runGMRolloutArrays(
  arrays: GMRolloutArrays,
  plan: GMRolloutPlan,
  choice: GMFusedImplementation = implementation,
): Float32Array | undefined {
  if (choice !== 'js') {
    const out = gmRolloutSimd(arrays, plan);
    if (out || choice === 'simd') return out;
  }
  return gmRolloutJS(arrays, plan);
}

type AnyBackend = {
  typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array;
  makeOutput?: (shape: number[], dtype: tf.DataType) => tf.TensorInfo;
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values: Float32Array) => tf.TensorInfo;
};

/**
 * The cpu and wasm kernel: plans the rollout (planGMRollout, from the policy's σ_src, the variance it reads
 * from the backend and the segment) and runs it on flat arrays. Throws FusedRolloutDeclined when the chosen
 * implementation cannot run (setGMFusedImplementation('simd') without WebAssembly SIMD, or a mixture too
 * large for the SIMD kernel): the rollout then goes op by op.
 */
function gmFusedRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const be = backend as AnyBackend;
  const a = attrs as unknown as GMFusedRolloutAttrs;
  const { x, xSrc, means, logweights, variance } = inputs as Record<string, tf.TensorInfo>;
  const read = (t: tf.TensorInfo): Float32Array =>
    be.typedArrayFromHeap ? be.typedArrayFromHeap(t) : (be.readSync(t.dataId) as Float32Array);
  const B = x!.shape[0]!;
  const C = x!.shape[x!.shape.length - 1]!;
  const K = means!.shape[means!.shape.length - 2]!;
  const size = x!.shape.reduce((p, d) => p * d, 1);
  const plan = planGMRollout(a.policySigmaSrc, read(variance!), gmFusedRolloutSegment(a));
  const arrays: GMRolloutArrays = {
    batch: B,
    positions: size / (B * C),
    components: K,
    channels: C,
    x: read(x!),
    xSrc: read(xSrc!),
    means: read(means!),
    logweights: read(logweights!),
  };
  const values = runGMRolloutArrays(arrays, plan);
  if (!values) {
    throw new FusedRolloutDeclined(
      `The fused GM rollout (${implementation}) cannot run K = ${K}, C = ${C} here.`,
    );
  }
  if (be.makeOutput && be.typedArrayFromHeap) {
    const out = be.makeOutput(x!.shape, 'float32');
    be.typedArrayFromHeap(out).set(values); // view taken after the allocation (the heap may have grown)
    return out;
  }
  return be.makeTensorInfo!(x!.shape, 'float32', values);
}

/**
 * The GM family's fused rollout kernel: its name and the cpu and wasm kernels this package provides
 * (registered on first use). Other backends register theirs under the same name (@piflow/backend-webgpu).
 */
export const gmFusedRolloutKernel: FusedRolloutKernel = {
  kernelName: GM_FUSED_ROLLOUT_KERNEL,
  kernels: {
    cpu: gmFusedRolloutKernelFunc as tf.KernelFunc,
    wasm: gmFusedRolloutKernelFunc as tf.KernelFunc,
  },
};
