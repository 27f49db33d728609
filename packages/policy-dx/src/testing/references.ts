/**
 * The float64 reference DX velocity in plain JS, written independently of the tfjs code (it indexes the grid
 * directly), so tests compare two derivations.
 */

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
