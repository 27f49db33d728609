import * as tf from '@tensorflow/tfjs-core';

/**
 * Whether a fused rollout kernel may run for `x`: the active backend is one of `backends`, no gradient tape is
 * recording (fused rollouts are detached; under a tape `rollout` must stay op by op and differentiable), and x
 * is a float32 tensor of the policy's x_src shape (anything else goes op by op, where the policy's velocity
 * reports the mismatch as an InvalidArgumentError). Every family's fused-kernel hook checks this first.
 */
export function canFuseRollout(x: tf.Tensor, xSrc: tf.Tensor, backends: readonly string[]): boolean {
  return (
    backends.includes(tf.getBackend()) &&
    !tf.engine().isTapeOn() &&
    x.dtype === 'float32' &&
    tf.util.arraysEqual(x.shape, xSrc.shape)
  );
}

/** Registers a kernel for a backend on first use (never at import time); later calls do nothing. */
export function ensureKernel(kernelName: string, backendName: string, kernelFunc: tf.KernelFunc): void {
  if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc });
}
