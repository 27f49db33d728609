import { assertNumber, createRandom, InvalidArgumentError, type Random } from '@piflow/core';
import type { Samples } from './sample-metrics';

function rowCount(samples: Samples, argument: string, min: number): number {
  const { values, dimension } = samples ?? {};
  assertNumber(`${argument}.dimension`, dimension, { min: 1, integer: true });
  const n = values?.length / dimension;
  if (!Number.isInteger(n) || n < min) {
    throw new InvalidArgumentError(
      argument,
      `at least ${min} rows of ${dimension} values`,
      `${values?.length} values`,
    );
  }
  return n;
}

function checkSameDimension(a: Samples, b: Samples): void {
  if (a.dimension !== b.dimension) {
    throw new InvalidArgumentError('b.dimension', `${a.dimension} (the dimension of a)`, String(b.dimension));
  }
}

/** Squared distances between every row of `a` and every row of `b` (float64, row-major n_a × n_b). */
function squaredDistances(a: Samples, na: number, b: Samples, nb: number): Float64Array {
  const d = a.dimension;
  const out = new Float64Array(na * nb);
  for (let i = 0; i < na; i++) {
    for (let j = 0; j < nb; j++) {
      let acc = 0;
      for (let c = 0; c < d; c++) {
        const t = a.values[i * d + c]! - b.values[j * d + c]!;
        acc += t * t;
      }
      out[i * nb + j] = acc;
    }
  }
  return out;
}

/** Squared distance of each row to its k-th nearest other row of the same set. */
function kthNeighbourRadii(set: Samples, n: number, k: number): Float64Array {
  const distances = squaredDistances(set, n, set, n);
  const radii = new Float64Array(n);
  const row = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < n; j++) if (j !== i) row[m++] = distances[i * n + j]!;
    row.sort();
    radii[i] = row[k - 1]!;
  }
  return radii;
}

/** Fraction of the rows of `query` inside at least one k-NN ball of `manifold`. */
function coveredFraction(
  query: Samples,
  nq: number,
  manifold: Samples,
  nm: number,
  radii: Float64Array,
): number {
  const distances = squaredDistances(query, nq, manifold, nm);
  let inside = 0;
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < nm; j++) {
      if (distances[i * nm + j]! <= radii[j]!) {
        inside++;
        break;
      }
    }
  }
  return inside / nq;
}

export interface PrecisionRecall {
  /** Fraction of generated samples inside the real samples' k-NN manifold (fidelity). */
  precision: number;
  /** Fraction of real samples inside the generated samples' k-NN manifold (coverage, diversity). */
  recall: number;
}

/**
 * Improved precision and recall (Kynkäänniemi et al., 2019): each set's manifold is the union of balls around
 * its rows reaching their k-th nearest neighbour in the same set; precision is the fraction of generated rows
 * inside the real manifold, recall the fraction of real rows inside the generated one. O(n²·D) in float64.
 */
export function precisionRecall(
  real: Samples,
  generated: Samples,
  options: { k?: number } = {},
): PrecisionRecall {
  const k = options.k ?? 3;
  assertNumber('options.k', k, { min: 1, integer: true });
  const nr = rowCount(real, 'real', k + 1);
  const ng = rowCount(generated, 'generated', k + 1);
  checkSameDimension(real, generated);
  return {
    precision: coveredFraction(generated, ng, real, nr, kthNeighbourRadii(real, nr, k)),
    recall: coveredFraction(real, nr, generated, ng, kthNeighbourRadii(generated, ng, k)),
  };
}

export interface KernelInceptionDistance {
  /** Mean over subsets of the unbiased MMD² with the cubic polynomial kernel. */
  kid: number;
  /** Standard deviation of the subset estimates. */
  std: number;
}

/**
 * Kernel Inception Distance (Bińkowski et al., 2018) in any feature space: the unbiased estimate of MMD² with
 * k(x, y) = (x·y/D + 1)³, averaged over `subsets` random subsets of `subsetSize` rows of each set (default: one
 * subset of all rows when both sets have at most 1000, else 10 subsets of 1000). Unbiased: it can be slightly
 * negative when the distributions agree.
 */
export function kernelInceptionDistance(
  a: Samples,
  b: Samples,
  options: { subsets?: number; subsetSize?: number; random?: Random } = {},
): KernelInceptionDistance {
  const na = rowCount(a, 'a', 2);
  const nb = rowCount(b, 'b', 2);
  checkSameDimension(a, b);
  const whole = Math.min(na, nb);
  const subsetSize = options.subsetSize ?? Math.min(whole, 1000);
  assertNumber('options.subsetSize', subsetSize, { min: 2, max: whole, integer: true });
  const subsets = options.subsets ?? (subsetSize === na && subsetSize === nb ? 1 : 10);
  assertNumber('options.subsets', subsets, { min: 1, integer: true });
  const random = options.random ?? createRandom(0);
  const d = a.dimension;
  const kernel = (x: ArrayLike<number>, i: number, y: ArrayLike<number>, j: number) => {
    let dot = 0;
    for (let c = 0; c < d; c++) dot += x[i * d + c]! * y[j * d + c]!;
    return (dot / d + 1) ** 3;
  };
  const pick = (n: number) => {
    if (subsetSize === n) return Array.from({ length: n }, (_, i) => i);
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < subsetSize; i++) {
      const j = i + random.integer(n - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order.slice(0, subsetSize);
  };
  const m = subsetSize;
  const estimates: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const ia = pick(na);
    const ib = pick(nb);
    let kxx = 0;
    let kyy = 0;
    let kxy = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        kxy += kernel(a.values, ia[i]!, b.values, ib[j]!);
        if (j > i) {
          kxx += kernel(a.values, ia[i]!, a.values, ia[j]!);
          kyy += kernel(b.values, ib[i]!, b.values, ib[j]!);
        }
      }
    }
    estimates.push((2 * (kxx + kyy)) / (m * (m - 1)) - (2 * kxy) / (m * m));
  }
  const kid = estimates.reduce((x, y) => x + y, 0) / subsets;
  const variance = estimates.reduce((x, y) => x + (y - kid) ** 2, 0) / Math.max(subsets - 1, 1);
  return { kid, std: Math.sqrt(variance) };
}

/**
 * The Inception-Score form on any classifier: exp(E_x KL(p(y|x) ‖ p(y))) from logits (rows of `numClasses`),
 * p(y) the mean prediction. 1 when every prediction is the same; `numClasses` when predictions are confident
 * and the classes equally frequent.
 */
export function classifierScore(logits: ArrayLike<number>, numClasses: number): number {
  assertNumber('numClasses', numClasses, { min: 2, integer: true });
  const n = logits.length / numClasses;
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('logits', `rows of ${numClasses} values`, `${logits.length} values`);
  }
  const probabilities = new Float64Array(n * numClasses);
  const marginal = new Float64Array(numClasses);
  for (let i = 0; i < n; i++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < numClasses; k++) max = Math.max(max, logits[i * numClasses + k]!);
    let sum = 0;
    for (let k = 0; k < numClasses; k++) sum += Math.exp(logits[i * numClasses + k]! - max);
    for (let k = 0; k < numClasses; k++) {
      const p = Math.exp(logits[i * numClasses + k]! - max) / sum;
      probabilities[i * numClasses + k] = p;
      marginal[k]! += p / n;
    }
  }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < numClasses; k++) {
      const p = probabilities[i * numClasses + k]!;
      if (p > 0) kl += p * (Math.log(p) - Math.log(marginal[k]!));
    }
  }
  return Math.exp(kl / n);
}
