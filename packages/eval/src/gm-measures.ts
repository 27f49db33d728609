import { type AnalyticGMFlow, InvalidArgumentError } from '@piflow/core';

export interface GMMeasures {
  /** Total variation between each sample's most likely component frequencies and the true weights (0 = exact). */
  coverageTV: number;
  /** Mean squared distance to the assigned component mean over C·std² (1 = the data's spread). */
  spread: number;
  /** Mean log-density of the samples under the data distribution (nats). */
  logDensity: number;
  /** Per-component frequencies. */
  frequencies: number[];
}

/**
 * Low-noise quality measures against an exact Gaussian-mixture data distribution: mode coverage, spread
 * inside modes and log-density. Sample-based distances (sliced W) are dominated by sampling noise at a few
 * thousand samples; these are not.
 */
export function gaussianMixtureMeasures(flow: AnalyticGMFlow, values: ArrayLike<number>): GMMeasures {
  const C = flow.dimension;
  const n = values.length / C;
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(
      'values',
      `rows of ${C} values (the mixture's dimension)`,
      `${values.length} values`,
    );
  }
  const assigned = flow.assignComponents(values);
  const counts = new Array<number>(flow.numComponents).fill(0);
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const k = assigned[i]!;
    counts[k]! += 1;
    for (let c = 0; c < C; c++) sq += (values[i * C + c]! - flow.means[k]![c]!) ** 2;
  }
  const frequencies = counts.map((c) => c / n);
  const coverageTV = 0.5 * frequencies.reduce((a, f, k) => a + Math.abs(f - flow.weights[k]!), 0);
  const spread = sq / n / (C * flow.std * flow.std);
  const logp = flow.logDensity(values);
  const logDensity = logp.reduce((a, b) => a + b, 0) / n;
  return { coverageTV, spread, logDensity, frequencies };
}
