export { registerTestBackend, testBackends, useBackend } from './backends';
export {
  describePolicyConformance,
  type PolicyConformanceOptions,
  type ReferenceInputs,
} from './conformance';
export { FusedKernelSpy } from './kernel-spy';
export {
  collectTensors,
  countLeaks,
  maxAbsDifference,
  readFloat32,
  readFloat64,
  relativeError,
} from './numerics';
