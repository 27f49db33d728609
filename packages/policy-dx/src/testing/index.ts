/**
 * The DX family's float64 oracles and suites, for its tests and every backend's (vitest).
 * @module @piflow/policy-dx/testing
 */
export { type DXConformanceOptions, describeDXConformance } from './conformance';
export { dxUParams, dxUSpaceReference } from './fixtures';
export { type DXReferenceInput, dxVelocityReference } from './references';
