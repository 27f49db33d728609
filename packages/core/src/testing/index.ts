/**
 * The conformance suite every policy family and backend reruns (vitest), backend set-up for tests, and
 * numeric helpers.
 * @module @piflow/core/testing
 */
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
