export { type DXConformanceOptions, describeDXConformance } from './conformance';
export { dxUParams, dxUSpaceReference } from './fixtures';
export { type DXReferenceInput, dxVelocityReference } from './references';
