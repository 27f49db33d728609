// The package's one import-time side effect (listed in package.json "sideEffects"): importing
// '@piflow/backend-webgpu/register' registers the fused WGSL rollout kernels for 'webgpu'. The WebGPU backend
// itself still needs `await setupWebGPU()`.
import { registerWebGPUKernels } from './register-kernels';

registerWebGPUKernels();
