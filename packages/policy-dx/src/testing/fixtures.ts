/**
 * The parameter maker and the float64 reference velocity for the DX family in the student's u-space, shared
 * by this package's tests and by every backend that reruns the conformance suites.
 */
import type { Random } from '@piflow/core';
import type { ReferenceInputs } from '@piflow/core/testing';
import { dxVelocityReference } from './references';

/** Random u-space DX parameters ([B, N, …positions, C]). */
export function dxUParams(shape: number[], random: Random, N = 4) {
  return { space: 'u' as const, uGrid: random.normalTensor([shape[0]!, N, ...shape.slice(1)]) };
}

/** Float64 reference for u-space DX parameters with the given family options. */
export function dxUSpaceReference(
  options: { shift: number; segmentSize: number; mode: 'grid' | 'polynomial' },
  N = 4,
) {
  return (params: Record<string, Float64Array>, inputs: ReferenceInputs): Float64Array => {
    const B = inputs.shape[0]!;
    const D = inputs.x.length / B;
    const x0Grid = new Float64Array(B * N * D);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++)
        for (let i = 0; i < D; i++)
          x0Grid[(b * N + n) * D + i] =
            inputs.xSrc[b * D + i]! - inputs.sigmaSrc[b]! * params.uGrid![(b * N + n) * D + i]!;
    return dxVelocityReference({
      x0Grid,
      x: inputs.x,
      sigmaSrc: inputs.sigmaSrc,
      sigma: inputs.sigma,
      B,
      N,
      eps: 1e-4,
      ...options,
    });
  };
}
