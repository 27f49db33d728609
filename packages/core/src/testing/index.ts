export { registerTestBackend, testBackends, useBackend } from './backends';
export {
  type DXConformanceOptions,
  describeDXConformance,
  describeGMOracleConformance,
  describePolicyConformance,
  type GMOracleOptions,
  type PolicyConformanceOptions,
  type ReferenceInputs,
} from './conformance';
export { collectTensors, countLeaks, maxAbsDifference, relativeError } from './numerics';
export { dxUParams, dxUSpaceReference, gmUParams, gmUSpaceReference, gmX0Params } from './policy-fixtures';
export {
  type DXReferenceInput,
  dxVelocityReference,
  type GMReferenceInput,
  gmVelocityReference,
} from './references';
