import { FusedRolloutDeclined, type RolloutSegment, rolloutRawSteps } from '@piflow/core';
import { type GMFusedRolloutAttrs, gmFusedRolloutSegment } from '@piflow/policy-gm';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import {
  dot,
  fitsDispatch,
  loadFloats,
  makeProgram,
  range,
  runProgram,
  storeFloats,
  treeMax,
  treeSum,
  unroll,
} from './webgpu-program';

/** Largest K·C the fused GM kernel unrolls; bigger mixtures fall back to the op-by-op rollout. */
export const GM_MAX_UNROLLED = 2048;

/**
 * log2(e): the kernel keeps the logits in base 2 (log-weights and logit coefficients scaled once), so each
 * softmax term is one exp2 — llvmpipe's exp(x) is exp2(x·log2 e), a multiply per component per substep.
 */
const LOG2E = 1.4426950408889634;

/** Largest K run in the Gram form (it keeps K(K+1)/2 inner products per position in registers). */
export const GM_MAX_GRAM_COMPONENTS = 32;

/**
 * Whether the kernel tracks x through its coordinates in span{x_start, x_src, μ_1…μ_K} (the Gram form)
 * rather than channel by channel: every Euler substep maps x to α·x + β·x_src − γ·Σ_k w_k·μ_k, so
 * x = c_x·x_start + c_s·x_src + Σ_k c_k·μ_k at every substep, and the logits only need μ_k·x =
 * c_x·(μ_k·x_start) + c_s·(μ_k·x_src) + Σ_l c_l·(μ_k·μ_l). A substep then costs K(K + 2) multiply-adds
 * instead of 2·K·C, which pays whenever K ≤ 2·C (K = 8, C = 16: 80 instead of 256). The cpu/wasm kernel of
 * @piflow/policy-gm uses the same reformulation (gm-rollout-plan.ts) with coefficients from the CPU; here the
 * shader computes them, as the variance tensor has no synchronous readback on WebGPU in Node.
 */
export function gmUsesGramForm(K: number, C: number): boolean {
  return K <= 2 * C && K <= GM_MAX_GRAM_COMPONENTS;
}

/**
 * WGSL for the fused GM rollout, one invocation per position. The loop walks the item's σ grid
 * (rolloutSigmaGrid's, in closed form from gmRolloutTable: no loads inside the loop, which llvmpipe would
 * issue lane by lane) and applies every Euler substep of the GMFlow-posterior velocity
 *   u = (s·(x − μ̄) − v·a·x − st·(a_src·x − x_src)) / d,  d = v·ζ + s²,  st = v·s·a_src/σ_src²,
 * with μ̄ = Σ_k w_k·μ_k, w = softmax_k(log w_k + (μ_k·ν − ζ/2·|μ_k|²)/d) (in base 2, see LOG2E),
 * ν = a·x − ρ²·a_src·x_src, a = 1 − s, ρ = s/σ_src, ζ = a² − ρ²·a_src² — what GMPolicy.velocity computes
 * op by op. In the Gram form (gmUsesGramForm) the state is the coordinates (c_x, c_s, c_k) of x; otherwise
 * the C channels of x.
 * `startsAtSource`: the rollout starts at x_src itself (as every sampling step does), so x is not loaded and
 * the Gram form drops c_x and the K products μ_k·x_start.
 */
export function gmRolloutShader(K: number, C: number, startsAtSource = false): string {
  const vecX = C % 4 === 0;
  const m = (k: number, c: number) => `m${k}_${c}`;
  const G = (k: number, l: number) => (k >= l ? `g${k}_${l}` : `g${l}_${k}`);
  const head = `
fn main(index : i32) {
  if (index >= uniforms.numPositions) { return; }
  let b = index / uniforms.positionsPerItem;
  let walk = tableIn[2 * b];
  let consts = tableIn[2 * b + 1];
  let rawSrc = walk.y;
  let rawStep = walk.z;
  let count = i32(walk.w);
  let shift = consts.x;
  let invSs = consts.y;
  let stScale = consts.z;
  let as_ = consts.w;
  let v = varianceIn[b];
${startsAtSource ? '' : loadFloats('xIn', `index * ${C}`, C, (c) => `x${c}`, vecX)}
${loadFloats('xSrcIn', `index * ${C}`, C, (c) => `xs${c}`, vecX)}
${loadFloats('meansIn', `index * ${K * C}`, K * C, (i) => m(Math.floor(i / C), i % C), vecX)}
${loadFloats('logwIn', `index * ${K}`, K, (k) => `lw${k}raw`, K % 4 === 0)}
${unroll(K, (k) => `  let lw${k} = select(lw${k}raw * ${LOG2E}, -1e30, lw${k}raw < -1e30);`)}`;
  const loop = (state: string, body: string) => `${state}
  var s = walk.x;
  for (var j = 0; j < count; j++) {
    let r = max(rawSrc - f32(j + 1) * rawStep, 0.0);
    let sNext = shift * r / (1.0 + (shift - 1.0) * r);
    let delta = sNext - s;
    let a = 1.0 - s;
    let rho2 = (s * invSs) * (s * invSs);
    let zeta = a * a - rho2 * (as_ * as_);
    let rs = rho2 * as_;
    let invD = 1.0 / max(v * zeta + s * s, 1e-20);
    let invDl = invD * ${LOG2E};
    let st = v * s * stScale;
${body}
    let mx = ${treeMax(range(K, (k) => `l${k}`))};
${unroll(K, (k) => `    let e${k} = exp2(l${k} - mx);`)}`;
  const store = (value: (c: number) => string) => storeFloats(`index * ${C}`, C, value, vecX);
  if (gmUsesGramForm(K, C)) {
    // x = c_x·x_start + c_s·x_src + Σ_k c_k·μ_k; with startsAtSource x_start is x_src and c_x folds into c_s.
    // The c_x·(…) term of a dot product, absent when the rollout starts at x_src.
    const startTerm = (factor: string): Array<[string, string]> => (startsAtSource ? [] : [['cx', factor]]);
    const state = `${unroll(K, (k) => `${startsAtSource ? '' : `  let px${k} = ${dot(range(C, (c) => [m(k, c), `x${c}`]))};\n`}  let ps${k} = ${dot(range(C, (c) => [m(k, c), `xs${c}`]))};`)}
${unroll(K, (k) => unroll(k + 1, (l) => `  let ${G(k, l)} = ${dot(range(C, (c) => [m(k, c), m(l, c)]))};`))}
  var cx = 1.0;
  var cs = ${startsAtSource ? '1.0' : '0.0'};
${unroll(K, (k) => `  var c${k} = 0.0;`)}`;
    const logits = `    let A = a * invDl;
    let Bs = -rs * invDl;
    let H = -0.5 * zeta * invDl;
${unroll(K, (k) => `    let l${k} = fma(A, ${dot([...startTerm(`px${k}`), ['cs', `ps${k}`], ...range(K, (l): [string, string] => [`c${l}`, G(k, l)])])}, fma(Bs, ps${k}, fma(H, ${G(k, k)}, lw${k})));`)}`;
    return `${head}
${loop(state, logits)}
    let g = delta * invD;
    let alpha = 1.0 + g * (s - v * a - st * as_);
    let w = g * s / ${treeSum(range(K, (k) => `e${k}`))};
    ${startsAtSource ? '' : 'cx = alpha * cx;'}
    cs = fma(alpha, cs, g * st);
${unroll(K, (k) => `    c${k} = fma(alpha, c${k}, -w * e${k});`)}
    s = sNext;
  }
${store((c) => dot([...startTerm(`x${c}`), ['cs', `xs${c}`], ...range(K, (k): [string, string] => [`c${k}`, m(k, c)])]))}
}
`;
  }
  const state = `${unroll(C, (c) => `  var y${c} = ${startsAtSource ? 'xs' : 'x'}${c};`)}
${unroll(K, (k) => `  let n${k} = ${dot(range(C, (c) => [m(k, c), m(k, c)]))};`)}`;
  const logits = `${unroll(C, (c) => `    let nu${c} = a * y${c} - rs * xs${c};`)}
${unroll(K, (k) => `    let l${k} = fma(${dot(range(C, (c) => [m(k, c), `nu${c}`]))} - 0.5 * zeta * n${k}, invDl, lw${k});`)}`;
  return `${head}
${loop(state, logits)}
    let inv = 1.0 / ${treeSum(range(K, (k) => `e${k}`))};
${unroll(C, (c) => `    let mbar${c} = ${dot(range(K, (k) => [`e${k}`, m(k, c)]))} * inv;`)}
${unroll(C, (c) => `    y${c} = y${c} + ((s * (y${c} - mbar${c}) - v * a * y${c} - st * (as_ * y${c} - xs${c})) * invD) * delta;`)}
    s = sNext;
  }
${store((c) => `y${c}`)}
}
`;
}

/**
 * The kernel's per-item constants, read as two vec4s per item: [σ at the rollout's start, its raw time,
 * the raw step, the substep count] (rolloutRawSteps; the kernel walks σ_j = warp(r_j) in closed form) and
 * [shift, 1/σ_src, (1 − σ_src)/σ_src², 1 − σ_src] of the policy's σ_src.
 */
export function gmRolloutTable(sigmaSrc: ArrayLike<number>, segment: RolloutSegment): Float32Array {
  const walks = rolloutRawSteps(segment);
  const table = new Float32Array(8 * walks.length);
  walks.forEach(({ rawSrc, rawStep, count }, b) => {
    const ss = sigmaSrc[b]!;
    table.set(
      [segment.sigmaSrc[b]!, rawSrc, rawStep, count, segment.shift, 1 / ss, (1 - ss) / (ss * ss), 1 - ss],
      8 * b,
    );
  });
  return table;
}

/**
 * The WebGPU kernel of @piflow/policy-gm's fused rollout (registered for 'webgpu' under its kernel name,
 * GM_FUSED_ROLLOUT_KERNEL): the whole rollout as one dispatch. Takes the family's inputs (x, xSrc [B, …positions,
 * C], means [B, …, K, C], logweights [B, …, K], variance [B]; read flat, so they go in as they are) and
 * attributes (the policy's σ_src and the segment), and builds its table (gmRolloutTable) here. When x is the
 * policy's own x_src (sampling rolls out from there; the policy keeps a clone: the same data), x is not bound.
 * Throws FusedRolloutDeclined (the rollout then goes op by op) when K·C is too large to unroll, x is empty,
 * or there are too many positions for one dispatch. The output has x's shape.
 */
export function gmRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { x, xSrc, means, logweights, variance } = inputs as Record<string, tf.TensorInfo>;
  const C = x!.shape[x!.shape.length - 1]!;
  const K = means!.shape[means!.shape.length - 2]!;
  const size = tf.util.sizeFromShape(x!.shape);
  if (K * C > GM_MAX_UNROLLED) {
    throw new FusedRolloutDeclined(
      `K·C = ${K * C} is more than the WGSL kernel unrolls (${GM_MAX_UNROLLED}).`,
    );
  }
  if (size === 0) throw new FusedRolloutDeclined('x is empty.');
  const numPositions = size / C;
  if (!fitsDispatch(numPositions)) {
    throw new FusedRolloutDeclined(`${numPositions} positions are too many for one dispatch.`);
  }
  const B = x!.shape[0]!;
  const positionsPerItem = numPositions / B;
  const a = attrs as unknown as GMFusedRolloutAttrs;
  const be = backend as WebGPUBackend;
  const tableData = gmRolloutTable(a.policySigmaSrc, gmFusedRolloutSegment(a));
  const table = be.makeTensorInfo([tableData.length], 'float32', tableData);
  const same = x!.dataId === xSrc!.dataId;
  const vecX = C % 4 === 0 ? 4 : 1;
  // An unused binding is an error (the compiler strips it from the layout), so x is bound only when read.
  const program = makeProgram({
    variableNames: [...(same ? [] : ['xIn']), 'xSrcIn', 'meansIn', 'logwIn', 'varianceIn', 'tableIn'],
    variableComponents: [...(same ? [] : [vecX]), vecX, vecX, K % 4 === 0 ? 4 : 1, 1, 4],
    outputComponent: vecX,
    outputShape: x!.shape,
    shaderKey: `piflowGMRollout_K${K}_C${C}${same ? '_fromSource' : ''}`,
    numInvocations: numPositions,
    uniforms: 'numPositions : i32, positionsPerItem : i32,',
    body: () => gmRolloutShader(K, C, same),
  });
  try {
    return runProgram(
      backend,
      program,
      [...(same ? [] : [x!]), xSrc!, means!, logweights!, variance!, table],
      [
        { type: 'int32', data: [numPositions] },
        { type: 'int32', data: [positionsPerItem] },
      ],
    );
  } finally {
    be.disposeData(table.dataId);
  }
}
