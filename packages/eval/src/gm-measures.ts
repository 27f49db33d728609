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
  const n = rowCount(flow, values, 'values');
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

export interface ModeShift {
  /** Total variation between the two sample sets' component frequencies. */
  tv: number;
  /** Share of rows whose most likely component differs from the reference row's. */
  moved: number;
}

/**
 * Mode shift of samples against reference samples drawn from the same noise (row i of each from noise row i),
 * e.g. a few-step student against the teacher's ODE: the frequencies' TV and the share of rows that end in
 * another component. The reference's own sampling noise cancels, so the TV shows a sampler's bias in mode
 * weights at sample counts where coverage TV against the weights is still at its noise floor.
 */
export function gaussianMixtureModeShift(
  flow: AnalyticGMFlow,
  values: ArrayLike<number>,
  reference: ArrayLike<number>,
): ModeShift {
  if (values.length !== reference.length) {
    throw new InvalidArgumentError(
      'reference',
      `as many values as the samples (${values.length}), row i from the same noise as row i`,
      `${reference.length} values`,
    );
  }
  const n = rowCount(flow, values, 'values');
  const assigned = flow.assignComponents(values);
  const expected = flow.assignComponents(reference);
  const net = new Array<number>(flow.numComponents).fill(0);
  let moved = 0;
  for (let i = 0; i < n; i++) {
    if (assigned[i] === expected[i]) continue;
    moved += 1;
    net[assigned[i]!]! += 1;
    net[expected[i]!]! -= 1;
  }
  return { tv: (0.5 * net.reduce((a, v) => a + Math.abs(v), 0)) / n, moved: moved / n };
}

function rowCount(flow: AnalyticGMFlow, values: ArrayLike<number>, name: string): number {
  const C = flow.dimension;
  const n = values.length / C;
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(
      name,
      `rows of ${C} values (the mixture's dimension)`,
      `${values.length} values`,
    );
  }
  return n;
}
