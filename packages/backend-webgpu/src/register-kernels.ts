import { DX_FUSED_ROLLOUT_KERNEL } from '@piflow/policy-dx';
import { GM_FUSED_ROLLOUT_KERNEL } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { dxRolloutKernelFunc } from './dx-rollout-kernel';
import { gmRolloutKernelFunc } from './gm-rollout-kernel';

/** The fused rollout kernels this package provides for tfjs's 'webgpu' backend, by the families' kernel names. */
const webgpuKernels: ReadonlyArray<readonly [string, tf.KernelFunc]> = [
  [GM_FUSED_ROLLOUT_KERNEL, gmRolloutKernelFunc as tf.KernelFunc],
  [DX_FUSED_ROLLOUT_KERNEL, dxRolloutKernelFunc as tf.KernelFunc],
];

/**
 * Registers the fused WGSL rollout kernels for tfjs's 'webgpu' backend under the GM and DX families' kernel
 * names (`GM_FUSED_ROLLOUT_KERNEL` of @piflow/policy-gm, `DX_FUSED_ROLLOUT_KERNEL` of @piflow/policy-dx), the
 * names under which those packages register their cpu and wasm kernels: `rollout()` then runs them whenever
 * the active backend is 'webgpu' and no gradient tape records, through core's one dispatch path
 * (`runFusedRollout`). Idempotent: a name already registered for 'webgpu' is left as it is. Returns the
 * kernel names (to look for in `tf.profile`, or to `tf.unregisterKernel(name, 'webgpu')` for op by op).
 */
export function registerWebGPUKernels(): readonly string[] {
  for (const [kernelName, kernelFunc] of webgpuKernels) {
    if (!tf.getKernel(kernelName, 'webgpu'))
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
  }
  return webgpuKernels.map(([kernelName]) => kernelName);
}
