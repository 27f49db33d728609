/**
 * The float64 reference GM velocity in plain JS, written independently of the tfjs code (it uses the paper's
 * unscaled formula), so tests compare two derivations.
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
