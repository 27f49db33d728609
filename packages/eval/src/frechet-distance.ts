import { InvalidArgumentError } from '@piflow/core';
import type { Samples } from './sample-metrics';

/** Mean and covariance (float64) of rows of features. */
export function featureStatistics(features: Samples): { mean: Float64Array; covariance: Float64Array } {
  const d = features.dimension;
  const n = features.values.length / d;
  if (!Number.isInteger(n) || n < 2) {
    throw new InvalidArgumentError(
      'features',
      `at least 2 rows of ${d} values`,
      `${features.values.length} values`,
    );
  }
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) mean[c]! += features.values[i * d + c]! / n;
  const covariance = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      const da = features.values[i * d + a]! - mean[a]!;
      for (let b = a; b < d; b++)
        covariance[a * d + b]! += (da * (features.values[i * d + b]! - mean[b]!)) / (n - 1);
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) covariance[a * d + b] = covariance[b * d + a]!;
  return { mean, covariance };
}

/** Eigen-decomposition of a symmetric matrix (cyclic Jacobi, float64): eigenvalues and column eigenvectors. */
export function symmetricEigen(
  matrix: Float64Array,
  d: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q]! - a[p * d + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p]!;
          const akq = a[k * d + q]!;
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k]!;
          const aqk = a[q * d + k]!;
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i]!;
  return { values, vectors: v };
}

/**
 * Fréchet distance between Gaussians fitted to two feature sets (the FID formula):
 * ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^½ Σ₂ Σ₁^½)^½).
 */
export function frechetDistance(a: Samples, b: Samples): number {
  if (a.dimension !== b.dimension) {
    throw new InvalidArgumentError('b.dimension', `${a.dimension} (the dimension of a)`, String(b.dimension));
  }
  const d = a.dimension;
  const sa = featureStatistics(a);
  const sb = featureStatistics(b);
  const ea = symmetricEigen(sa.covariance, d);
  // Σa^½ = V diag(√λ) Vᵀ
  const rootA = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++)
        s += ea.vectors[i * d + k]! * Math.sqrt(Math.max(ea.values[k]!, 0)) * ea.vectors[j * d + k]!;
      rootA[i * d + j] = s;
    }
  const tmp = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += rootA[i * d + k]! * sb.covariance[k * d + j]!;
      tmp[i * d + j] = s;
    }
  const middle = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += tmp[i * d + k]! * rootA[k * d + j]!;
      middle[i * d + j] = s;
    }
  for (let i = 0; i < d; i++)
    for (let j = 0; j < i; j++)
      middle[i * d + j] = middle[j * d + i] = 0.5 * (middle[i * d + j]! + middle[j * d + i]!);
  const em = symmetricEigen(middle, d);
  let traceRoot = 0;
  for (let i = 0; i < d; i++) traceRoot += Math.sqrt(Math.max(em.values[i]!, 0));
  let meanTerm = 0;
  let trace = 0;
  for (let i = 0; i < d; i++) {
    meanTerm += (sa.mean[i]! - sb.mean[i]!) ** 2;
    trace += sa.covariance[i * d + i]! + sb.covariance[i * d + i]!;
  }
  return meanTerm + trace - 2 * traceRoot;
}
