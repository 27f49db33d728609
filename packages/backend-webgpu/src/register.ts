// The package's one import-time side effect (listed in package.json "sideEffects"): importing
// '@piflow/backend-webgpu/register' registers the fused WGSL rollout kernels and hooks. The WebGPU backend
// itself still needs `await setupWebGPU()`.
import { registerWebGPUKernels } from './register-kernels';

registerWebGPUKernels();
