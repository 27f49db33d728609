export { gmUParams, gmUSpaceReference, gmX0Params } from './fixtures';
export { describeGMOracleConformance, type GMOracleOptions } from './oracle-conformance';
export { type GMReferenceInput, gmVelocityReference } from './references';
