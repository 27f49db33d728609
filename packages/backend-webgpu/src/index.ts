export {
  DX_MAX_UNROLLED,
  dxRolloutShader,
  dxRolloutTable,
  dxTableRowSize,
} from './dx-rollout-kernel';
export {
  GM_MAX_GRAM_COMPONENTS,
  GM_MAX_UNROLLED,
  gmRolloutShader,
  gmRolloutTable,
  gmUsesGramForm,
} from './gm-rollout-kernel';
export { registerWebGPUKernels } from './register-kernels';
export {
  LLVMPIPE_MAX_THREADS,
  llvmpipeThreadCount,
  type NodeWebGPUOptions,
  type SetupWebGPUOptions,
  setupWebGPU,
  type WebGPUSetup,
  WebGPUUnavailableError,
} from './setup-webgpu';
export { MAX_PROGRAM_INPUTS, WORKGROUP_SIZE } from './webgpu-program';
