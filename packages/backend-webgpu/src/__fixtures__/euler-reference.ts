// Float64 Euler rollouts of GM and DX policies in plain JS, from the policy's state (x0-space parameters),
// using the families' independent float64 velocity formulas (@piflow/policy-gm/testing and
// @piflow/policy-dx/testing). They walk rolloutSigmaGrid's grid.
import { type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import type { DXPolicy } from '@piflow/policy-dx';
import { dxVelocityReference } from '@piflow/policy-dx/testing';
import type { GMPolicy } from '@piflow/policy-gm';
import { gmVelocityReference } from '@piflow/policy-gm/testing';

/** Euler steps per item over its own σ grid; `velocity(x, σ per item)` gives u for every item. */
function euler(
  x: Float64Array,
  B: number,
  segment: RolloutSegment,
  velocity: (x: Float64Array, sigma: number[]) => Float64Array,
): Float64Array {
  const grids = rolloutSigmaGrid(segment);
  const D = x.length / B;
  const current = Float64Array.from(x);
  const maxSteps = Math.max(...grids.map((g) => g.length - 1));
  for (let j = 0; j < maxSteps; j++) {
    const sigma = grids.map((g) => (j < g.length - 1 ? g[j]! : g[0]!));
    const u = velocity(current, sigma);
    grids.forEach((g, b) => {
      if (j >= g.length - 1) return;
      const delta = g[j + 1]! - g[j]!;
      for (let i = b * D; i < (b + 1) * D; i++) current[i]! += u[i]! * delta;
    });
  }
  return current;
}

export async function gmEulerReference(
  policy: GMPolicy,
  x: Float64Array,
  segment: RolloutSegment,
): Promise<Float64Array> {
  const B = policy.batchSize;
  const K = policy.numComponents;
  const C = policy.xSrc.shape[policy.xSrc.rank - 1]!;
  const means = await policy.means.data();
  const logweights = await policy.logweights.data();
  const variance = await policy.variance.data();
  const xSrc = await policy.xSrc.data();
  const positions = x.length / C;
  const perItem = positions / B;
  const perPosition = (values: ArrayLike<number>) =>
    Float64Array.from({ length: positions }, (_, p) => values[Math.floor(p / perItem)]!);
  return euler(x, B, segment, (current, sigma) =>
    gmVelocityReference({
      means,
      logweights,
      variance: perPosition(variance),
      xSrc,
      x: current,
      sigmaSrc: perPosition(policy.sigmaSrc),
      sigma: perPosition(sigma),
      K,
      C,
    }),
  );
}

export async function dxEulerReference(
  policy: DXPolicy,
  x: Float64Array,
  segment: RolloutSegment,
): Promise<Float64Array> {
  const x0Grid = await policy.x0Grid.data();
  return euler(x, policy.batchSize, segment, (current, sigma) =>
    dxVelocityReference({
      x0Grid,
      x: current,
      sigmaSrc: policy.sigmaSrc,
      sigma,
      B: policy.batchSize,
      N: policy.numPoints,
      mode: policy.mode,
      shift: policy.shift,
      segmentSize: policy.segmentSize,
      eps: policy.eps,
    }),
  );
}
