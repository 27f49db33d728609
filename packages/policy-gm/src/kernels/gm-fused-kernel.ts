import { assertOneOf, canFuseRollout, ensureKernel, type RolloutSegment } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { GMPolicyState } from '../gm-policy';
import { gmRolloutJS } from './gm-rollout-js';
import { type GMRolloutArrays, type GMRolloutPlan, planGMRollout } from './gm-rollout-plan';
import { gmRolloutSimd } from './gm-rollout-simd';

/** Name of the tfjs kernel that runs a whole GM rollout (registered lazily for 'cpu' and 'wasm'). */
export const GMFusedRolloutKernel = 'PiflowGMFusedRollout';

/** Backends with a built-in fused GM rollout. */
export const gmFusedBackends: readonly string[] = ['cpu', 'wasm'];

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

interface Attrs {
  plan: GMRolloutPlan;
  positions: number;
  components: number;
  channels: number;
}

type AnyBackend = {
  typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array;
  makeOutput?: (shape: number[], dtype: tf.DataType) => tf.TensorInfo;
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values: Float32Array) => tf.TensorInfo;
};

class NotRunnable extends Error {}

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
  const { plan, positions, components, channels } = attrs as unknown as Attrs;
  const x = inputs.x!;
  const read = (t: tf.TensorInfo): Float32Array =>
    be.typedArrayFromHeap ? be.typedArrayFromHeap(t) : (be.readSync(t.dataId) as Float32Array);
  const arrays: GMRolloutArrays = {
    batch: x.shape[0]!,
    positions,
    components,
    channels,
    x: read(x),
    xSrc: read(inputs.xSrc!),
    means: read(inputs.means!),
    logweights: read(inputs.logweights!),
  };
  const values = runGMRolloutArrays(arrays, plan);
  if (!values) throw new NotRunnable();
  if (be.makeOutput && be.typedArrayFromHeap) {
    const out = be.makeOutput(x.shape, 'float32');
    be.typedArrayFromHeap(out).set(values); // view taken after the allocation (the heap may have grown)
    return out;
  }
  return be.makeTensorInfo!(x.shape, 'float32', values);
}

/**
 * The built-in fused GM rollout for the cpu and wasm backends: one kernel call for all substeps of all
 * positions. Returns undefined (the caller then goes op by op) on other backends, while a gradient tape is
 * recording (fused rollouts are detached), or when no implementation can run.
 */
export function builtinGMFusedRollout(
  policy: GMPolicyState,
  x: tf.Tensor,
  segment: RolloutSegment,
): tf.Tensor | undefined {
  if (!canFuseRollout(x, policy.xSrc, gmFusedBackends)) return undefined;
  const shape = policy.xSrc.shape;
  const K = policy.means.shape[policy.means.rank - 2]!;
  const C = shape[shape.length - 1]!;
  const B = shape[0]!;
  const positions = x.size / (B * C);
  const plan = planGMRollout(policy.sigmaSrc, policy.variance.dataSync(), segment);
  ensureKernel(GMFusedRolloutKernel, tf.getBackend(), kernelFunc);
  const attrs: Attrs = { plan, positions, components: K, channels: C };
  try {
    return tf
      .engine()
      .runKernel(
        GMFusedRolloutKernel,
        { x, xSrc: policy.xSrc, means: policy.means, logweights: policy.logweights },
        attrs as unknown as tf.NamedAttrMap,
      );
  } catch (error) {
    if (error instanceof NotRunnable) return undefined;
    throw error;
  }
}
