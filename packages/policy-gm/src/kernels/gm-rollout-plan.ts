import { type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';

/**
 * The fused GM rollout, reformulated so that each substep costs O(K²) per position instead of O(K·C).
 *
 * With the policy's velocity (see GMPolicy) at σ, for ρ = σ/σ_s, α = 1 − σ, α_s = 1 − σ_s, v the variance,
 *   ζ = α² − ρ²α_s²,  d = max(v·ζ + σ², 1e-20),  ν = α·x − ρ²α_s·x_src,
 *   logit_k = logw_k + (μ_k·ν − ½ζ|μ_k|²)/d,  p = softmax(logit),  m̄ = Σ_k p_k μ_k,
 *   u = [σ(x − m̄) − v·α·x − v·σ·α_s(α_s·x − x_src)/σ_s²]/d,
 * one Euler substep x' = x + Δ·u (Δ = σ' − σ < 0) is linear in x, x_src and m̄:
 *   x' = P·x + R·x_src + Q·m̄,  P = 1 + Δ(σ − vα − vσα_s²/σ_s²)/d,  R = Δ·vσα_s/(σ_s²·d),  Q = −Δσ/d.
 * So x stays in span{x_start, x_src, μ_1..μ_K}: x = a·x_start + b·x_src + Σ_k γ_k μ_k, where a and b are the
 * same for every position of a batch item (a ← P·a, b ← P·b + R) and only γ (K numbers per position) varies.
 * The logits need μ_k·x only; with the Gram matrix G = μμᵀ, y = μ·x evolves as
 *   y ← P·y + R·(μ·x_src) + G·(Q·p),
 * and logit_k = logw_k + c1·y_k − c2·(μ_k·x_src) − c3·|μ_k|², c1 = α/d, c2 = ρ²α_s/d, c3 = ζ/(2d).
 * Each substep is then K logits, a softmax and a K×K matrix-vector product; x is rebuilt once at the end.
 *
 * The per-item coefficients are computed here in float64, on exactly the σ grid the op-by-op rollout walks.
 */
export interface GMRolloutPlan {
  /** Substeps per batch item (items stop early; each item's grid has its own length). */
  readonly steps: Int32Array;
  /** Per item, 6 numbers per substep: c1, c2, c3, P, R, Q. */
  readonly coefficients: Float64Array[];
  /** Per item: x_end = a·x_start + b·x_src + Σ_k γ_k μ_k. */
  readonly a: Float64Array;
  readonly b: Float64Array;
}

export const COEFFICIENTS_PER_STEP = 6;

const TINY = 1e-20;

export function planGMRollout(
  policySigmaSrc: ArrayLike<number>,
  variance: ArrayLike<number>,
  segment: RolloutSegment,
): GMRolloutPlan {
  const grids = rolloutSigmaGrid(segment);
  const batch = grids.length;
  const steps = new Int32Array(batch);
  const coefficients: Float64Array[] = [];
  const a = new Float64Array(batch);
  const b = new Float64Array(batch);
  for (let item = 0; item < batch; item++) {
    const grid = grids[item]!;
    const n = grid.length - 1;
    steps[item] = n;
    const ss = policySigmaSrc[item]!;
    const as = 1 - ss;
    const v = variance[item]!;
    const table = new Float64Array(n * COEFFICIENTS_PER_STEP);
    let ai = 1;
    let bi = 0;
    for (let j = 0; j < n; j++) {
      // The op-by-op path evaluates in float32: round σ and the step the same way.
      const s = Math.fround(grid[j]!);
      const delta = Math.fround(grid[j + 1]! - grid[j]!);
      const al = 1 - s;
      const rho2 = (s / ss) ** 2;
      const zeta = al * al - rho2 * as * as;
      const d = Math.max(v * zeta + s * s, TINY);
      const P = 1 + (delta * (s - v * al - (v * s * as * as) / (ss * ss))) / d;
      const R = (delta * v * s * as) / (ss * ss * d);
      const Q = (-delta * s) / d;
      const o = j * COEFFICIENTS_PER_STEP;
      table[o] = al / d;
      table[o + 1] = (rho2 * as) / d;
      table[o + 2] = zeta / (2 * d);
      table[o + 3] = P;
      table[o + 4] = R;
      table[o + 5] = Q;
      ai *= P;
      bi = P * bi + R;
    }
    coefficients.push(table);
    a[item] = ai;
    b[item] = bi;
  }
  return { steps, coefficients, a, b };
}

/** The tensors of a GM rollout as flat float32 arrays (channels last). */
export interface GMRolloutArrays {
  /** Batch size B, positions per item P, components K, channels C. */
  readonly batch: number;
  readonly positions: number;
  readonly components: number;
  readonly channels: number;
  /** [B, P, C] where the rollout starts. */
  readonly x: Float32Array;
  /** [B, P, C] the policy's x_src. */
  readonly xSrc: Float32Array;
  /** [B, P, K, C] x0-space component means. */
  readonly means: Float32Array;
  /** [B, P, K] normalised log-weights (−Infinity for dropped components). */
  readonly logweights: Float32Array;
}
