import { COEFFICIENTS_PER_STEP, type GMRolloutArrays, type GMRolloutPlan } from './gm-rollout-plan';

/**
 * The fused GM rollout as a plain JavaScript loop (float64 state), position by position: the portable
 * kernel, used on the cpu backend where WebAssembly SIMD is unavailable and for K too large to unroll.
 * See gm-rollout-plan.ts for the reformulation it runs.
 */
export function gmRolloutJS(arrays: GMRolloutArrays, plan: GMRolloutPlan): Float32Array {
  const { batch: B, positions: P, components: K, channels: C, x, xSrc, means, logweights } = arrays;
  const out = new Float32Array(B * P * C);
  const gram = new Float64Array(K * K);
  const mxs = new Float64Array(K);
  const norms = new Float64Array(K);
  const y = new Float64Array(K);
  const gamma = new Float64Array(K);
  const logw = new Float64Array(K);
  const e = new Float64Array(K);
  for (let item = 0; item < B; item++) {
    const n = plan.steps[item]!;
    const table = plan.coefficients[item]!;
    const a = plan.a[item]!;
    const b = plan.b[item]!;
    for (let p = item * P; p < (item + 1) * P; p++) {
      const mu = p * K * C;
      const xo = p * C;
      for (let k = 0; k < K; k++) {
        const mk = mu + k * C;
        let dx = 0;
        let ds = 0;
        for (let c = 0; c < C; c++) {
          dx += means[mk + c]! * x[xo + c]!;
          ds += means[mk + c]! * xSrc[xo + c]!;
        }
        y[k] = dx;
        mxs[k] = ds;
        gamma[k] = 0;
        logw[k] = logweights[p * K + k]!;
        for (let l = k; l < K; l++) {
          const ml = mu + l * C;
          let g = 0;
          for (let c = 0; c < C; c++) g += means[mk + c]! * means[ml + c]!;
          gram[k * K + l] = g;
          gram[l * K + k] = g;
        }
        norms[k] = gram[k * K + k]!;
      }
      for (let j = 0; j < n; j++) {
        const o = j * COEFFICIENTS_PER_STEP;
        const c1 = table[o]!;
        const c2 = table[o + 1]!;
        const c3 = table[o + 2]!;
        const stepP = table[o + 3]!;
        const stepR = table[o + 4]!;
        const stepQ = table[o + 5]!;
        let max = Number.NEGATIVE_INFINITY;
        for (let k = 0; k < K; k++) {
          const logit = logw[k]! + c1 * y[k]! - c2 * mxs[k]! - c3 * norms[k]!;
          e[k] = logit;
          if (logit > max) max = logit;
        }
        let sum = 0;
        for (let k = 0; k < K; k++) {
          const w = Math.exp(e[k]! - max);
          e[k] = w;
          sum += w;
        }
        const q = stepQ / sum;
        for (let k = 0; k < K; k++) {
          const w = e[k]! * q;
          e[k] = w;
          gamma[k] = stepP * gamma[k]! + w;
        }
        for (let l = 0; l < K; l++) {
          let acc = stepP * y[l]! + stepR * mxs[l]!;
          const row = l * K;
          for (let k = 0; k < K; k++) acc += gram[row + k]! * e[k]!;
          y[l] = acc;
        }
      }
      for (let c = 0; c < C; c++) {
        let acc = a * x[xo + c]! + b * xSrc[xo + c]!;
        for (let k = 0; k < K; k++) acc += gamma[k]! * means[mu + k * C + c]!;
        out[xo + c] = acc;
      }
    }
  }
  return out;
}
