import { registerDXFusedRollout } from '@piflow/policy-dx';
import { registerGMFusedRollout } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { DX_ROLLOUT_KERNEL, dxFusedRollout, dxRolloutKernelFunc } from './dx-rollout-kernel';
import { GM_ROLLOUT_KERNEL, gmFusedRollout, gmRolloutKernelFunc } from './gm-rollout-kernel';

let unregisterHooks: (() => void) | undefined;

/**
 * Registers the fused GM and DX rollout kernels for tfjs's 'webgpu' backend and installs them as the
 * policies' fused-rollout hooks, so `rollout()` uses them whenever the active backend is 'webgpu' (and no
 * gradient is being recorded). Idempotent. Returns a function that removes the hooks again (the tfjs kernels
 * stay registered: they only run when called by name).
 */
export function registerWebGPUKernels(): () => void {
  for (const [kernelName, kernelFunc] of [
    [GM_ROLLOUT_KERNEL, gmRolloutKernelFunc],
    [DX_ROLLOUT_KERNEL, dxRolloutKernelFunc],
  ] as const) {
    if (!tf.getKernel(kernelName, 'webgpu')) {
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc });
    }
  }
  if (!unregisterHooks) {
    const removeGM = registerGMFusedRollout(gmFusedRollout);
    const removeDX = registerDXFusedRollout(dxFusedRollout);
    unregisterHooks = () => {
      removeGM();
      removeDX();
      unregisterHooks = undefined;
    };
  }
  return unregisterHooks;
}
