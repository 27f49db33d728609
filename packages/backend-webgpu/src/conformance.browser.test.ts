// The core conformance suites, rerun on tfjs's WebGPU backend (Dawn in Node; navigator.gpu in Chromium).
// Their "fused rollout matches op by op" cases run this package's WGSL kernels.
import {
  describeDXConformance,
  describeGMOracleConformance,
  describePolicyConformance,
} from '@piflow/core/testing';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import { describe } from 'vitest';
import { dxParams, dxReference, gmReferenceU, gmUParams, gmX0Params } from './__fixtures__/policies';
import { WEBGPU } from './__fixtures__/webgpu-test-backend';

describePolicyConformance({
  family: gm,
  makeParams: gmUParams,
  referenceVelocity: gmReferenceU,
  backends: WEBGPU,
});
describePolicyConformance({ family: gm, makeParams: gmX0Params, backends: WEBGPU });
describeGMOracleConformance({ family: gm, backends: WEBGPU });

for (const mode of ['grid', 'polynomial'] as const) {
  const options = { shift: 3.2, segmentSize: 0.4, mode };
  describe(`DX ${mode}`, () => {
    describePolicyConformance({
      family: dx,
      makeParams: dxParams,
      createOptions: options,
      referenceVelocity: dxReference(options),
      backends: WEBGPU,
    });
  });
}
describeDXConformance({ family: dx, backends: WEBGPU });
