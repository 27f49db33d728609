// The one wasm BatchMatMul override lives in @piflow/core (the training kernels of @piflow/models use it too).
export {
  installWasmBatchMatMulFix,
  isWasmBatchMatMulFixInstalled,
  uninstallWasmBatchMatMulFix,
} from '@piflow/core';
export {
  type BackendCandidate,
  type BackendInitContext,
  BackendInitError,
  cpuCandidate,
  defaultBackendCandidates,
  tfjsNodeCandidate,
  tfjsNodeGpuCandidate,
  wasmCandidate,
  webgpuCandidate,
} from './backend-candidates';
export { NoBackendAvailableError, type SkippedBackend } from './errors';
export { describeLoadError, importModule, type ModuleLoader } from './module-loader';
export {
  type BackendRegistry,
  createBackendRegistry,
  type ResolveBackendOptions,
  type ResolvedBackend,
  resolveBackend,
} from './resolve-backend';
export {
  locateWasmFiles,
  type SetupWasmOptions,
  setupWasm,
  type WasmSetup,
  wasmBinaryNames,
} from './setup-wasm';
export {
  createNodeWasmThreadPool,
  type NodeWasmThreadPoolOptions,
} from './wasm-thread-pool';
export { maxWasmThreads } from './wasm-threads';
