// The conformance suites (core's and the GM / DX families' own) on tfjs's WebGPU backend, shared by the Node (Dawn) and Chromium test files.
// Their "fused rollout matches op by op" cases run this package's WGSL kernels.
import { describePolicyConformance } from '@piflow/core/testing';
import { dx } from '@piflow/policy-dx';
import { describeDXConformance, dxUParams, dxUSpaceReference } from '@piflow/policy-dx/testing';
import { gm } from '@piflow/policy-gm';
import {
  describeGMOracleConformance,
  gmUParams,
  gmUSpaceReference,
  gmX0Params,
} from '@piflow/policy-gm/testing';
import { describe } from 'vitest';
import { WEBGPU } from './webgpu-test-backend';

export function describeWebGPUConformance(): void {
  describePolicyConformance({
    family: gm,
    makeParams: (shape, random) => gmUParams(shape, random),
    referenceVelocity: gmUSpaceReference(),
    backends: WEBGPU,
  });
  describePolicyConformance({
    family: gm,
    makeParams: (shape, random) => gmX0Params(shape, random),
    backends: WEBGPU,
  });
  describeGMOracleConformance({ family: gm, backends: WEBGPU });

  for (const mode of ['grid', 'polynomial'] as const) {
    const options = { shift: 3.2, segmentSize: 0.4, mode };
    describe(`DX ${mode}`, () => {
      describePolicyConformance({
        family: dx,
        makeParams: (shape, random) => dxUParams(shape, random),
        createOptions: options,
        referenceVelocity: dxUSpaceReference(options),
        backends: WEBGPU,
      });
    });
  }
  describeDXConformance({ family: dx, backends: WEBGPU });
}
