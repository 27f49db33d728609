import * as tf from '@tensorflow/tfjs-core';
import { PiflowError } from './errors';
import type { FusedRolloutCall } from './policy-family';

/**
 * Thrown by a fused rollout kernel that cannot run this call on its backend (e.g. a mixture too large to
 * unroll in WGSL, or WebAssembly SIMD missing when SIMD was required): `runFusedRollout` then returns
 * undefined and `rollout` goes op by op. Any other error propagates.
 */
export class FusedRolloutDeclined extends PiflowError {
  override name = 'FusedRolloutDeclined';
}

/**
 * Whether x suits a fused rollout of a policy built at xSrc: a float32 tensor of the policy's x_src shape
 * (anything else goes op by op, where the policy's velocity reports a mismatch as an InvalidArgumentError).
 * Families check this in `fusedRolloutCall` before preparing a call.
 */
export function canFuseRollout(x: tf.Tensor, xSrc: tf.Tensor): boolean {
  return x.dtype === 'float32' && tf.util.arraysEqual(x.shape, xSrc.shape);
}

/**
 * The one dispatch path of fused rollouts, as tfjs dispatches its ops: runs `call.kernel.kernelName` on the
 * active backend when a kernel is registered there under that name (the family's own kernels for this backend
 * are registered on first use) and no gradient tape records (fused rollouts are detached; under a tape
 * `rollout` stays op by op and differentiable). Returns undefined when no kernel ran: none on this backend, or
 * the kernel threw {@link FusedRolloutDeclined}. Any other error the kernel throws propagates.
 */
export function runFusedRollout(call: FusedRolloutCall): tf.Tensor | undefined {
  const engine = tf.engine();
  if (engine.isTapeOn()) return undefined;
  const backend = tf.getBackend();
  const { kernelName, kernels } = call.kernel;
  const own = kernels?.[backend];
  if (own && !tf.getKernel(kernelName, backend)) {
    tf.registerKernel({ kernelName, backendName: backend, kernelFunc: own });
  }
  const kernel = tf.getKernel(kernelName, backend);
  if (!kernel) return undefined;
  if (engine.state.profiling || tf.env().getBool('DEBUG')) return runProfiled(kernel, call);
  try {
    return engine.runKernel(kernelName, call.inputs, call.attrs) as tf.Tensor;
  } catch (error) {
    if (error instanceof FusedRolloutDeclined) return undefined;
    throw error;
  }
}

/**
 * While tfjs profiles kernels (`tf.profile`, or the DEBUG flag) it runs each inside an asynchronous backend
 * timer, where an error the kernel throws is lost (an unhandled rejection) and the call fails with an
 * unrelated TypeError. So then the kernel runs through a guarded copy, registered for this one call: when it
 * throws, the copy returns its first input instead (a stand-in output, disposed, and its profile entry dropped),
 * and the error is handled here as above.
 */
function runProfiled(kernel: tf.KernelConfig, call: FusedRolloutCall): tf.Tensor | undefined {
  const engine = tf.engine();
  const { kernelName, backendName } = kernel;
  let failed = false;
  let failure: unknown;
  const guarded: tf.KernelFunc = (args) => {
    try {
      return kernel.kernelFunc(args);
    } catch (error) {
      const standIn = Object.values(args.inputs)[0];
      if (!standIn) throw error;
      failed = true;
      failure = error;
      (args.backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(standIn.dataId);
      return { dataId: standIn.dataId, shape: standIn.shape, dtype: standIn.dtype };
    }
  };
  tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ ...kernel, kernelFunc: guarded });
  let out: tf.Tensor;
  try {
    out = engine.runKernel(kernelName, call.inputs, call.attrs) as tf.Tensor;
  } finally {
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel(kernel);
  }
  if (!failed) return out;
  out.dispose();
  const profiled = engine.state.profiling ? engine.state.activeProfile.kernels : [];
  if (profiled[profiled.length - 1]?.name === kernelName) profiled.pop();
  if (failure instanceof FusedRolloutDeclined) return undefined;
  throw failure;
}

/** Whether a fused kernel for this family's rollout is registered (or provided by the family) on a backend. */
export function hasFusedRolloutKernel(
  kernel: FusedRolloutCall['kernel'],
  backend = tf.getBackend(),
): boolean {
  return Boolean(kernel.kernels?.[backend] || tf.getKernel(kernel.kernelName, backend));
}
