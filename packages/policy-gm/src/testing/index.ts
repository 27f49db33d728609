/**
 * The GM family's float64 oracles and suites, for its tests and every backend's (vitest).
 * @module @piflow/policy-gm/testing
 */
export { gmUParams, gmUSpaceReference, gmX0Params } from './fixtures';
export { describeGMOracleConformance, type GMOracleOptions } from './oracle-conformance';
export { type GMReferenceInput, gmVelocityReference } from './references';
