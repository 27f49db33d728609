/**
 * Float64 reference implementations in plain JS, written independently of the tfjs code (the GM one uses
 * the paper's unscaled formula; the DX one indexes the grid directly), so tests compare two derivations.
 */

export interface GMReferenceInput {
  /** x0-space means, [P, K, C] flattened (P = all positions of all samples). */
  means: ArrayLike<number>;
  /** [P, K] */
  logweights: ArrayLike<number>;
  /** per position (the sample's variance repeated). */
  variance: ArrayLike<number>;
  xSrc: ArrayLike<number>;
  x: ArrayLike<number>;
  /** per position */
  sigmaSrc: ArrayLike<number>;
  sigma: ArrayLike<number>;
  K: number;
  C: number;
}

/** GM policy velocity with the paper's ζ, ν, d (float64): u = (x − Σ_k w'_k μ'_k)/σ. */
export function gmVelocityReference(input: GMReferenceInput): Float64Array {
  const { K, C } = input;
  const P = input.x.length / C;
  const out = new Float64Array(P * C);
  const logits = new Float64Array(K);
  for (let p = 0; p < P; p++) {
    const s = input.sigma[p]!;
    const ss = input.sigmaSrc[p]!;
    const v = input.variance[p]!;
    const zeta = ((1 - s) / s) ** 2 - ((1 - ss) / ss) ** 2;
    const d = v * zeta + 1;
    const nu = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      nu[c] = ((1 - s) / (s * s)) * input.x[p * C + c]! - ((1 - ss) / (ss * ss)) * input.xSrc[p * C + c]!;
    }
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let c = 0; c < C; c++) {
        const mu = input.means[(p * K + k) * C + c]!;
        acc += mu * (nu[c]! - 0.5 * zeta * mu);
      }
      logits[k] = input.logweights[p * K + k]! + acc / d;
      if (logits[k]! > max) max = logits[k]!;
    }
    let z = 0;
    for (let k = 0; k < K; k++) z += logits[k] = Math.exp(logits[k]! - max);
    for (let c = 0; c < C; c++) {
      let x0 = 0;
      for (let k = 0; k < K; k++) {
        const mu = input.means[(p * K + k) * C + c]!;
        x0 += (logits[k]! / z) * ((v * nu[c]! + mu) / d);
      }
      out[p * C + c] = (input.x[p * C + c]! - x0) / s;
    }
  }
  return out;
}

export interface DXReferenceInput {
  /** x0 grid [B, N, D] flattened (D = all positions × channels of one sample). */
  x0Grid: ArrayLike<number>;
  x: ArrayLike<number>;
  sigmaSrc: ArrayLike<number>;
  sigma: ArrayLike<number>;
  B: number;
  N: number;
  mode: 'grid' | 'polynomial';
  shift: number;
  segmentSize: number;
  eps: number;
}

/** DX policy velocity (float64), grid by floor-index interpolation, polynomial by Horner's rule. */
export function dxVelocityReference(input: DXReferenceInput): Float64Array {
  const { B, N } = input;
  const D = input.x.length / B;
  const out = new Float64Array(B * D);
  const unwarp = (sg: number) => sg / (input.shift - (input.shift - 1) * sg);
  for (let b = 0; b < B; b++) {
    const rSrc = unwarp(input.sigmaSrc[b]!);
    const rDst = Math.max(rSrc - input.segmentSize, 0);
    const len = Math.max(rSrc - rDst, input.eps);
    const s = input.sigma[b]!;
    const r = unwarp(s);
    for (let i = 0; i < D; i++) {
      const X = (n: number) => input.x0Grid[(b * N + n) * D + i]!;
      let x0: number;
      if (input.mode === 'grid') {
        if (N === 1) x0 = X(0);
        else {
          const tau = Math.min(Math.max((r - rDst) / len, 0), 1) * (N - 1);
          const i0 = Math.min(Math.max(Math.floor(tau), 0), N - 2);
          x0 = (i0 + 1 - tau) * X(i0) + (tau - i0) * X(i0 + 1);
        }
      } else {
        const dt = rSrc - r;
        x0 = 0;
        for (let n = N - 1; n >= 0; n--) x0 = x0 * dt + X(n);
      }
      out[b * D + i] = (input.x[b * D + i]! - x0) / Math.max(s, input.eps);
    }
  }
  return out;
}
